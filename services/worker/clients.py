"""The worker's HTTP calls: the scheduler's worker protocol and the version service's internal API.

Transient failures (connection errors, 502/503/504, 429) are retried with back-off for as long as the
caller allows; any other 4xx is a definite answer and raised as :class:`Refused`.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any, Callable
from uuid import UUID

import httpx

log = logging.getLogger(__name__)

_TRANSIENT = {429, 500, 502, 503, 504}


class Refused(Exception):
    """A definite non-2xx answer (409 stale lease or claim refused, 404, 422...)."""

    def __init__(self, status: int, body: Any) -> None:
        detail = body.get("detail") if isinstance(body, dict) else body
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.body = body

    @property
    def code(self) -> str | None:
        return self.body.get("code") if isinstance(self.body, dict) else None


class Unavailable(Exception):
    """The service did not give a definite answer in the time allowed."""


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


class _Service:
    def __init__(self, name: str, base_url: str, token: str, *, actor: str, timeout: float) -> None:
        self.name = name
        self.http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, trust_env=False,
            headers={"x-cairn-internal-token": token, "x-cairn-actor": actor, "x-cairn-role": "worker"},
        )

    async def call(
        self,
        method: str,
        path: str,
        *,
        retry_for: float,
        stop: Callable[[], bool] = lambda: False,
        ok: tuple[int, ...] = (200, 201),
        **kwargs: Any,
    ) -> httpx.Response:
        deadline = time.monotonic() + retry_for
        delay = 0.2
        while True:
            try:
                response = await self.http.request(method, path, **kwargs)
                if response.status_code in ok:
                    return response
                if response.status_code not in _TRANSIENT:
                    raise Refused(response.status_code, _body(response))
                problem = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if time.monotonic() + delay > deadline or stop():
                raise Unavailable(f"{self.name} {method} {path}: {problem}")
            log.warning("%s unavailable; retrying", self.name, extra={"path": path, "problem": problem, "retry_in_s": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        await self.http.aclose()


class SchedulerClient(_Service):
    def __init__(self, base_url: str, token: str, *, worker: str, timeout: float) -> None:
        super().__init__("training-scheduler", base_url, token, actor=f"worker:{worker}", timeout=timeout)
        self.worker = worker

    async def claim(self, job_id: UUID, *, attempt: int, device: str, stop: Callable[[], bool]) -> dict[str, Any]:
        """The claim (lease, spec, resume...); Refused(409) when the job is not ours to run."""
        response = await self.call("POST", f"/internal/training-jobs/{job_id}/claim", retry_for=float("inf"), stop=stop,
                                   json={"attempt": attempt, "worker": self.worker, "device": device})
        return response.json()

    async def heartbeat(self, job_id: UUID, lease_id: str) -> bool:
        """Whether to stop (cancelled). One try: the next heartbeat comes soon."""
        response = await self.call("POST", f"/internal/training-jobs/{job_id}/heartbeat", retry_for=0,
                                   json={"lease_id": lease_id})
        return bool(response.json()["cancel"])

    async def progress(self, job_id: UUID, lease_id: str, report: dict[str, Any], *, retry_for: float) -> bool:
        response = await self.call("POST", f"/internal/training-jobs/{job_id}/progress", retry_for=retry_for,
                                   json={"lease_id": lease_id, **report})
        return bool(response.json()["cancel"])

    async def complete(self, job_id: UUID, lease_id: str, result: dict[str, Any], *, retry_for: float) -> dict[str, Any]:
        response = await self.call("POST", f"/internal/training-jobs/{job_id}/complete", retry_for=retry_for,
                                   json={"lease_id": lease_id, **result})
        return response.json()

    async def fail(self, job_id: UUID, lease_id: str, reason: str, *, retry_for: float) -> dict[str, Any]:
        response = await self.call("POST", f"/internal/training-jobs/{job_id}/fail", retry_for=retry_for,
                                   json={"lease_id": lease_id, "reason": reason})
        return response.json()

    async def release(self, job_id: UUID, lease_id: str, reason: str, *, retry_for: float) -> dict[str, Any]:
        response = await self.call("POST", f"/internal/training-jobs/{job_id}/release", retry_for=retry_for,
                                   json={"lease_id": lease_id, "reason": reason})
        return response.json()


class VersionClient(_Service):
    """Creates the version a job produced and uploads its artifact."""

    def __init__(self, base_url: str, token: str, *, actor: str, timeout: float) -> None:
        super().__init__("version", base_url, token, actor=actor, timeout=timeout)

    async def create_version(self, model_id: str, body: dict[str, Any], *, actor: str, retry_for: float) -> tuple[dict[str, Any], bool]:
        """The version, and whether it already existed (a retried job: same ``lineage.training_job_id``)."""
        response = await self.call("POST", f"/internal/models/{model_id}/versions", json=body, retry_for=retry_for,
                                   headers={"x-cairn-actor": actor})
        return response.json(), response.status_code == 200

    async def get_version(self, model_id: str, version: str, *, retry_for: float) -> dict[str, Any]:
        response = await self.call("GET", f"/internal/models/{model_id}/versions/{version}", retry_for=retry_for)
        return response.json()

    async def put_artifact(self, model_id: str, version: str, data: bytes, *, actor: str, retry_for: float) -> tuple[str, bool]:
        """Upload the artifact; returns its sha256 and whether the version already had one (409)."""
        sha256 = hashlib.sha256(data).hexdigest()
        try:
            await self.call(
                "PUT", f"/internal/models/{model_id}/versions/{version}/artifact", content=data, retry_for=retry_for,
                headers={"x-content-sha256": sha256, "content-type": "application/octet-stream", "x-cairn-actor": actor},
            )
        except Refused as exc:
            if exc.status == 409:
                return sha256, True
            raise
        return sha256, False
