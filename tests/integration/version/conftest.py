"""The version service in-process on real loopback ports, next to the registry it falls back to: one
instance on the folder store and one on S3 (a real S3 server, moto_server), both on the real Postgres,
Kafka-protocol broker and Redis of the session. Tests talk to them over HTTP with the internal token."""
from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from libs.events import topics
from libs.storage.testing import MotoS3Server
from services.registry.app import create_app as create_registry
from services.registry.settings import RegistrySettings
from services.version.app import create_app as create_version
from services.version.settings import VersionSettings
from tests.conftest import scratch_dir
from tests.support.kafka import TopicWatcher
from tests.support.servers import RunningServer, serve

LINK_SECRET = "test-link-secret-0123456789abcdef"
PUBLIC_URL = "http://cairn.test"
MAX_ARTIFACT_BYTES = 12 << 20
MIB = 1 << 20


@dataclass
class VersionSystem:
    registry: RunningServer
    folder: RunningServer
    s3: RunningServer
    folder_root: Path
    moto: MotoS3Server
    bucket: str
    kafka_bootstrap: str
    internal_token: str

    def headers(self, actor: str = "tester") -> dict[str, str]:
        return {"x-cairn-internal-token": self.internal_token, "x-cairn-actor": actor, "x-cairn-role": "editor"}

    def client(self, server: RunningServer, actor: str = "tester") -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=server.url, headers=self.headers(actor), timeout=60)

    def pool(self, server: RunningServer):
        return server.app.state.runtime.pool

    def blob_path(self, sha256: str) -> Path:
        return self.folder_root / "blobs" / "sha256" / sha256[:2] / sha256

    def internal_link(self, server: RunningServer, download_url: str) -> str:
        """What the gateway does with a folder-store link: the same path and query, on the version service."""
        prefix = f"{PUBLIC_URL}/api/v1/artifacts/"
        assert download_url.startswith(prefix), download_url
        return f"{server.url}/internal/artifacts/{download_url[len(prefix):]}"

    async def register_model(self, name: str | None = None, **extra) -> dict:
        body = {"name": name or f"vm-{uuid.uuid4().hex[:10]}", "type": "classification", **extra}
        async with self.client(self.registry) as registry:
            response = await registry.post("/internal/models", json=body)
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture(scope="session")
def version_moto_s3():
    with MotoS3Server() as server:
        yield server


@pytest.fixture(scope="session")
async def versions(service_env, version_moto_s3) -> VersionSystem:
    root = scratch_dir("cairn-test-objects-")
    bucket = f"cairn-versions-{uuid.uuid4().hex[:12]}"
    registry = await serve(create_registry(RegistrySettings(**service_env)))
    common = dict(
        link_secret=LINK_SECRET, public_url=PUBLIC_URL, registry_url=registry.url,
        max_artifact_bytes=MAX_ARTIFACT_BYTES,
    )
    folder = await serve(create_version(VersionSettings(**service_env, object_store_url=f"file://{root}", **common)))
    s3 = await serve(create_version(VersionSettings(
        **service_env, object_store_url=version_moto_s3.url_for(bucket, part_size=5 * MIB), **common)))
    yield VersionSystem(
        registry=registry, folder=folder, s3=s3, folder_root=root, moto=version_moto_s3, bucket=bucket,
        kafka_bootstrap=service_env["kafka_bootstrap"], internal_token=service_env["internal_token"],
    )
    for server in (s3, folder, registry):
        await server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
async def versions_topic(versions) -> TopicWatcher:
    """One watcher of cairn.versions.v1 for the session (joining a consumer group takes seconds); tests
    pick their own events out by model id, which is unique per test."""
    async with TopicWatcher(versions.kafka_bootstrap, topics.VERSIONS) as watcher:
        yield watcher
