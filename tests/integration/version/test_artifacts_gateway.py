"""Artifact bytes through the public gateway into the folder-store version service: the gateway streams
uploads over its own keep-alive pool (by Content-Length, or chunked when the client sends no length).
A client that stops midway leaves nothing behind (no artifact, no temp file) and does not spoil the
pooled connection for the next upload; a body over the limit is refused with a problem and not kept."""
from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from services.gateway.app import create_app as create_gateway
from services.gateway.settings import GatewaySettings
from tests.integration.version.conftest import MAX_ARTIFACT_BYTES, MIB
from tests.support.servers import serve

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
async def gateway(system, versions, service_env):
    server = await serve(create_gateway(GatewaySettings(
        **service_env, registry_url=versions.registry.url, audit_url=system.services["audit"].url,
        version_url=versions.folder.url, rate_limit_per_minute=100_000)))
    yield server
    await server.stop()


def _api(gateway, system) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gateway.url, headers={"authorization": f"Bearer {system.admin_token}"},
                             timeout=60)


async def _version(api: httpx.AsyncClient) -> str:
    model = await api.post("/api/v1/models", json={"name": f"gw-art-{uuid.uuid4().hex[:10]}", "type": "other"})
    assert model.status_code == 201, model.text
    model_id = model.json()["model_id"]
    created = await api.post(f"/api/v1/models/{model_id}/versions", json={"version": "1.0.0"})
    assert created.status_code == 201, created.text
    return model_id


def _files_since(root: Path, since: float) -> list[Path]:
    found = []
    for folder in (root / ".tmp", root / "incoming"):
        if folder.exists():
            found += [p for p in folder.rglob("*") if p.is_file() and p.stat().st_mtime >= since]
    return found


async def _pieces(data: bytes, size: int = 300_000):
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def test_a_cut_upload_keeps_nothing_and_the_next_one_streams_whole(system, versions, gateway):
    started = time.time() - 1
    async with _api(gateway, system) as api:
        model_id = await _version(api)
        path = f"/api/v1/models/{model_id}/versions/1.0.0/artifact"
        parts = urlsplit(gateway.url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        writer.write((f"PUT {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {system.admin_token}\r\n"
                      f"content-type: application/octet-stream\r\ncontent-length: {8 * MIB}\r\n\r\n").encode())
        writer.write(os.urandom(3 * MIB))  # then the client goes away
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.close()

        deadline = time.monotonic() + 20
        while _files_since(versions.folder_root, started) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert _files_since(versions.folder_root, started) == []  # the temp file went with the cut request
        shown = await api.get(f"/api/v1/models/{model_id}/versions/1.0.0")
        assert shown.status_code == 200 and shown.json()["artifact"] is None

        data = os.urandom(5 * MIB + 4321)
        sha = hashlib.sha256(data).hexdigest()
        stored = await api.put(path, content=_pieces(data),  # no length: chunked, to the service as well
                               headers={"content-type": "application/octet-stream", "x-content-sha256": sha})
        assert stored.status_code == 201, stored.text
        assert (stored.json()["sha256"], stored.json()["size"]) == (sha, len(data))
        link = (await api.get(f"/api/v1/models/{model_id}/download")).json()["download_url"]
        url = urlsplit(link)
        downloaded = await api.get(f"{url.path}?{url.query}")
    assert downloaded.status_code == 200 and hashlib.sha256(downloaded.content).hexdigest() == sha


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_body_over_the_limit_is_refused_through_the_gateway(system, versions, gateway, declared):
    async with _api(gateway, system) as api:
        model_id = await _version(api)
        data = b"\0" * (MAX_ARTIFACT_BYTES + MIB)
        headers = {"content-type": "application/octet-stream"}
        if declared:
            headers["content-length"] = str(len(data))
        refused = await api.put(f"/api/v1/models/{model_id}/versions/1.0.0/artifact",
                                content=_pieces(data, MIB), headers=headers)
        assert refused.status_code == 413, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        shown = await api.get(f"/api/v1/models/{model_id}/versions/1.0.0")
    assert shown.json()["artifact"] is None
