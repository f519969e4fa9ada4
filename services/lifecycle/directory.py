"""Asks the owning services about models and versions whose events have not arrived yet (a user may
publish milliseconds after uploading). Read-only, over their internal APIs."""
from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx

log = logging.getLogger(__name__)


class LookupUnavailable(Exception):
    """The owning service did not answer; the caller decides whether that is fatal."""


class Directory:
    def __init__(self, *, version_url: str, registry_url: str, internal_token: str, timeout_s: float = 5.0) -> None:
        self._urls = {"version": version_url.rstrip("/"), "registry": registry_url.rstrip("/")}
        self._headers = {"x-cairn-internal-token": internal_token, "x-cairn-actor": "lifecycle"}
        self._timeout = httpx.Timeout(timeout_s, connect=2.0)
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self._timeout, headers=self._headers)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def _get(self, service: str, path: str) -> dict[str, Any] | None:
        assert self._client is not None, "Directory.start() was not called"
        url = self._urls[service] + path
        try:
            response = await self._client.get(url)
        except httpx.HTTPError as exc:
            raise LookupUnavailable(f"{service} service unreachable: {type(exc).__name__}") from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise LookupUnavailable(f"{service} service answered {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise LookupUnavailable(f"{service} service answered with a body that is not JSON") from None

    async def model(self, ref: str | UUID) -> dict[str, Any] | None:
        """``{model_id, name, revision, ...}`` from the registry, or None if it has no such live model."""
        return await self._get("registry", f"/internal/models/{quote(str(ref), safe='')}")

    async def version(self, model_id: UUID, version: str) -> dict[str, Any] | None:
        """``{model_id, version_id, version, artifact: {sha256, size, storage} | null}``, or None."""
        return await self._get(
            "version", f"/internal/models/{model_id}/versions/{quote(version, safe='')}"
        )
