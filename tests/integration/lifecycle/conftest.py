"""The lifecycle service in-process on a real port, with the registry (real), a stand-in for the version
service's internal API (the version service is written elsewhere; tests announce versions themselves
by publishing VersionCreated/ArtifactStored), a folder object store with real blobs, and the session's
real Postgres, Kafka and Redis."""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Header, HTTPException

from libs.events.base import Event
from libs.events.envelope import Envelope
from libs.events.versions import ArtifactRef, ArtifactStored, VersionCreated
from libs.storage.cas import ContentAddressedStore
from libs.storage.factory import open_object_store
from services.lifecycle.app import create_app as create_lifecycle
from services.lifecycle.settings import LifecycleSettings
from services.registry.app import create_app as create_registry
from services.registry.settings import RegistrySettings
from tests.support.kafka import eventually
from tests.support.servers import RunningServer, serve


def fake_version_service(token: str, versions: dict[tuple[str, str], dict[str, Any]]) -> FastAPI:
    """``GET /internal/models/{model}/versions/{version}`` answered from ``versions``."""
    app = FastAPI()

    @app.get("/internal/models/{model}/versions/{version}")
    async def get_version(model: str, version: str, x_cairn_internal_token: str = Header("")) -> dict:
        if x_cairn_internal_token != token:
            raise HTTPException(401)
        found = versions.get((model, version))
        if found is None:
            raise HTTPException(404)
        return found

    return app


@dataclass
class Version:
    model_id: str
    version_id: str
    version: str
    sha256: str | None
    size: int | None
    content: bytes | None


@dataclass
class Lifecycle:
    """Everything a lifecycle test needs; ``server`` is replaced when a test restarts the service."""

    server: RunningServer
    settings: LifecycleSettings
    registry: RunningServer
    version_service: RunningServer
    versions: dict[tuple[str, str], dict[str, Any]]
    blobs: ContentAddressedStore
    objects_root: Path
    producer: AIOKafkaProducer
    redis: aioredis.Redis
    kafka_bootstrap: str
    token: str
    database_url: str
    environments: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def app(self) -> FastAPI:
        return self.server.app

    @property
    def handlers(self):
        return self.server.app.state.handlers

    @property
    def pool(self):
        return self.server.app.state.runtime.pool

    def api(self, actor: str = "tests") -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30,
                                 headers={"x-cairn-internal-token": self.token, "x-cairn-actor": actor})

    async def restart(self) -> None:
        """A fresh lifecycle app on the same port (as after the process was killed and started again)."""
        self.server = await serve(create_lifecycle(self.settings), port=self.server.port)

    # -- arranging the world -----------------------------------------------------------------------

    async def create_model(self, name: str | None = None) -> dict[str, Any]:
        name = name or f"lc-{uuid.uuid4().hex[:10]}"
        async with httpx.AsyncClient(base_url=self.registry.url, timeout=30,
                                     headers={"x-cairn-internal-token": self.token, "x-cairn-actor": "tests"}) as api:
            response = await api.post("/internal/models", json={"name": name, "type": "other"})
        assert response.status_code == 201, response.text
        return response.json()

    async def send(self, event: Event, *, envelope: Envelope | None = None, actor: str = "tests") -> Envelope:
        """Publish straight to Kafka, as any producer may."""
        envelope = envelope or Envelope(data=event, source="tests", actor=actor)
        await self.producer.send_and_wait(
            envelope.topic, key=envelope.subject.encode(), value=envelope.body(),
            headers=[(k, v.encode()) for k, v in envelope.headers().items()],
        )
        return envelope

    async def create_version(
        self, model_id: str, version: str, *, artifact: bool = True, announce: bool = True, wait: bool = True,
    ) -> Version:
        """Store real bytes in the object store and announce the version the way the version service does."""
        version_id = str(uuid.uuid4())
        content = sha256 = size = None
        if artifact:
            content = f"weights of {model_id} {version} {uuid.uuid4()}".encode() * 64

            async def chunks():
                yield content

            ref = await self.blobs.put_stream(chunks())
            sha256, size = ref.sha256, ref.size
            assert sha256 == hashlib.sha256(content).hexdigest()
        artifact_ref = {"sha256": sha256, "size": size, "storage": "folder"} if artifact else None
        self.versions[(model_id, version)] = {
            "model_id": model_id, "version_id": version_id, "version": version, "artifact": artifact_ref,
        }
        if announce:
            await self.send(VersionCreated(
                model_id=model_id, version_id=version_id, version=version, version_type="release",
                created_by="tests", created_at=datetime.now(timezone.utc),
            ))
            if artifact:
                await self.send(ArtifactStored(
                    model_id=model_id, version_id=version_id, version=version,
                    artifact=ArtifactRef(sha256=sha256, size=size, storage="folder"), deduplicated=False,
                ))
            if wait:
                await self.wait_version_known(version_id, with_artifact=artifact)
        return Version(model_id, version_id, version, sha256, size, content)

    async def wait_version_known(self, version_id: str, *, with_artifact: bool) -> None:
        sql = "SELECT artifact_sha256 IS NOT NULL FROM lifecycle.versions WHERE id = $1"

        async def known():
            has_artifact = await self.pool.fetchval(sql, uuid.UUID(version_id))
            return has_artifact is not None and (has_artifact or not with_artifact)

        await eventually(known, timeout=30)

    async def cache_settled(self, model_id: str) -> None:
        """Wait until the lifecycle-cache consumer has applied every lifecycle event of the model (its inbox
        row commits after its Redis write), so no late refresh races the test."""
        sql = """
            SELECT count(*) FROM lifecycle.outbox o
             WHERE o.key = $1 AND o.headers->>'ce_type' <> 'RollbackFailed'
               AND NOT EXISTS (SELECT 1 FROM lifecycle.inbox i
                                WHERE i.consumer = 'lifecycle-cache' AND i.event_id = o.event_id)"""

        async def settled():
            return await self.pool.fetchval(sql, model_id) == 0

        await eventually(settled, timeout=30)

    def blob_path(self, sha256: str) -> Path:
        return self.objects_root / self.blobs.key_for(sha256)

    async def move(self, model: str, version: str, environment: str, to_stage: str, reason: str = "") -> httpx.Response:
        async with self.api() as api:
            return await api.post(f"/internal/models/{model}/versions/{version}/transitions",
                                  json={"environment": environment, "to_stage": to_stage, "reason": reason})

    async def go_live(self, model: str, version: str, environment: str = "production") -> dict[str, Any]:
        """draft (or archived) → staging → production, immediately."""
        async with self.api() as api:
            stages = (await api.get(f"/internal/models/{model}/stages", params={"environment": environment})).json()
            stage = next(s["stage"] for s in stages["stages"] if s["version"] == version)
            if stage != "staging":
                moved = await self.move(model, version, environment, "staging")
                assert moved.status_code == 200, moved.text
            published = await api.post(f"/internal/models/{model}/versions/{version}/publish",
                                       json={"environment": environment})
        assert published.status_code == 200, published.text
        return published.json()


@pytest.fixture(scope="session")
async def lifecycle(service_env, shared_objects_root) -> Lifecycle:
    token = service_env["internal_token"]
    objects_root = shared_objects_root
    versions: dict[tuple[str, str], dict[str, Any]] = {}
    registry = await serve(create_registry(RegistrySettings(**service_env)))
    version_service = await serve(fake_version_service(token, versions))
    settings = LifecycleSettings(
        **service_env, object_store_url=f"file://{objects_root}", version_url=version_service.url,
        registry_url=registry.url, rollout_tick_s=0.1,
    )
    server = await serve(create_lifecycle(settings))
    producer = AIOKafkaProducer(bootstrap_servers=service_env["kafka_bootstrap"], enable_idempotence=False)
    await producer.start()
    redis = aioredis.from_url(service_env["redis_url"])
    harness = Lifecycle(
        server=server, settings=settings, registry=registry, version_service=version_service, versions=versions,
        blobs=ContentAddressedStore(open_object_store(f"file://{objects_root}")), objects_root=objects_root,
        producer=producer, redis=redis, kafka_bootstrap=service_env["kafka_bootstrap"], token=token,
        database_url=service_env["database_url"], environments=list(settings.environments),
    )
    yield harness
    await redis.aclose()
    await producer.stop()
    for running in (harness.server, version_service, registry):
        await running.stop()
