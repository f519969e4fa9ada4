"""The scheduler's calls to other services' internal APIs: the registry (a model's type and metadata) and
the version service (does a parent version exist)."""
from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import httpx

from libs.events.envelope import child_traceparent
from libs.kit.errors import NotFound, UpstreamUnavailable
from libs.kit.http import Caller

log = logging.getLogger(__name__)


def _client(base_url: str, token: str, timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, headers={"x-cairn-internal-token": token}, timeout=timeout,
                             trust_env=False)


def _headers(caller: Caller) -> dict[str, str]:
    return {"x-cairn-actor": caller.actor, "x-cairn-role": caller.role,
            "traceparent": child_traceparent(caller.traceparent)}


class RegistryClient:
    def __init__(self, base_url: str, token: str, timeout: float) -> None:
        self._http = _client(base_url, token, timeout)

    async def model(self, ref: str, caller: Caller) -> dict[str, Any]:
        """The live model named by id or name (``model_id``, ``type``, ``metadata``...); NotFound otherwise."""
        try:
            response = await self._http.get(f"/internal/models/{quote(ref, safe='')}", headers=_headers(caller))
        except httpx.TransportError:
            raise UpstreamUnavailable("the registry service is not reachable; try again shortly") from None
        if response.status_code == 404:
            raise NotFound(f"model {ref!r} not found")
        if response.status_code != 200:
            log.warning("registry answered %s", response.status_code, extra={"model_ref": ref})
            raise UpstreamUnavailable(f"the registry service answered {response.status_code}")
        return response.json()

    async def close(self) -> None:
        await self._http.aclose()


class VersionClient:
    def __init__(self, base_url: str, token: str, timeout: float) -> None:
        self._http = _client(base_url, token, timeout)

    async def version_exists(self, model_id: str, version: str, caller: Caller) -> bool | None:
        """True or False when the version service says so; None when it cannot tell (unreachable)."""
        try:
            response = await self._http.get(
                f"/internal/models/{model_id}/versions/{quote(version, safe='')}", headers=_headers(caller))
        except httpx.TransportError:
            return None
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        return None

    async def close(self) -> None:
        await self._http.aclose()
