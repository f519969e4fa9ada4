"""The internal APIs this service calls: the registry (model names) and the version service (versions
not seen in events yet; storing measured metrics on a version). One pooled client per upstream."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx

from libs.kit.errors import NotFound, UpstreamUnavailable

log = logging.getLogger(__name__)

ACTOR = "evaluation"


@dataclass(frozen=True)
class ModelRef:
    id: UUID
    name: str


@dataclass(frozen=True)
class PushResult:
    """Outcome of storing metrics on a version: ``ok``; otherwise ``retry`` says whether trying again may help."""

    ok: bool
    retry: bool
    detail: str


class Upstreams:
    def __init__(self, *, registry_url: str, version_url: str, internal_token: str, timeout_s: float) -> None:
        headers = {"x-cairn-internal-token": internal_token, "x-cairn-actor": ACTOR, "x-cairn-role": "admin"}
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))
        self.registry = httpx.AsyncClient(base_url=registry_url, headers=headers, timeout=timeout)
        self.versions = httpx.AsyncClient(base_url=version_url, headers=headers, timeout=timeout)

    async def close(self) -> None:
        await self.registry.aclose()
        await self.versions.aclose()

    async def resolve_model(self, ref: str) -> ModelRef:
        """A live model by id or name, as the registry knows it. NotFound if it has no such model."""
        try:
            response = await self.registry.get(f"/internal/models/{quote(ref, safe='')}")
        except httpx.TransportError as exc:
            log.warning("registry unreachable", extra={"error": type(exc).__name__})
            raise UpstreamUnavailable("the registry is not reachable to resolve the model; try again shortly") from None
        if response.status_code == 404:
            raise NotFound(f"model {ref!r} not found")
        if response.status_code != 200:
            raise UpstreamUnavailable(f"the registry answered {response.status_code} for model {ref!r}")
        body = response.json()
        return ModelRef(id=UUID(body["model_id"]), name=body["name"])

    async def fetch_version(self, model_id: UUID, version: str) -> dict[str, Any] | None:
        """The version as the version service has it (``VersionOut``), or None if it has no such version.
        Raises UpstreamUnavailable when it cannot tell."""
        path = f"/internal/models/{model_id}/versions/{quote(version, safe='')}"
        try:
            response = await self.versions.get(path)
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(f"the version service is not reachable ({type(exc).__name__})") from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise UpstreamUnavailable(f"the version service answered {response.status_code} for {path}")
        return response.json()

    async def push_metrics(self, model_id: UUID, version: str, metrics: dict[str, float]) -> PushResult:
        """``POST /internal/models/{model_id}/versions/{version}/metrics`` with ``source: evaluation``."""
        path = f"/internal/models/{model_id}/versions/{quote(version, safe='')}/metrics"
        try:
            response = await self.versions.post(path, json={"metrics": metrics, "source": ACTOR})
        except httpx.TransportError as exc:
            return PushResult(ok=False, retry=True, detail=f"version service unreachable: {type(exc).__name__}")
        if response.status_code < 300:
            return PushResult(ok=True, retry=False, detail=str(response.status_code))
        detail = f"version service answered {response.status_code}: {response.text[:300]}"
        # 404: the version may be on its way; 409/429/5xx: transient. Anything else will not change.
        retry = response.status_code in (404, 408, 409, 425, 429) or response.status_code >= 500
        return PushResult(ok=False, retry=retry, detail=detail)
