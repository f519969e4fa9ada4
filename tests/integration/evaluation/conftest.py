"""The evaluation service in-process on a real port, with the registry (real), a stand-in for the version
service's internal API (records the metrics it is sent; answers version lookups from a dict), a folder
object store holding real weights, and the session's real Postgres and Kafka. Tests announce versions
by publishing VersionCreated/ArtifactStored themselves, as the version service would.

Weights are trained here, once per package, with libs.ml on the digits dataset: a good CNN, a weak
narrow CNN, and an MLP classifier (another architecture on the same data)."""
from __future__ import annotations

import asyncio
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Header, HTTPException, Request, Response

from libs.events import topics
from libs.events.base import Event
from libs.events.envelope import Envelope
from libs.events.versions import ArtifactRef, ArtifactStored, VersionCreated
from libs.ml.datasets import load_dataset, suggest_config
from libs.ml.trainer import Hyperparameters, Trainer
from libs.ml.zoo import build_model
from libs.storage.cas import ContentAddressedStore
from libs.storage.factory import open_object_store
from services.evaluation.app import create_app as create_evaluation
from services.evaluation.settings import EvaluationSettings
from services.registry.app import create_app as create_registry
from services.registry.settings import RegistrySettings
from tests.conftest import scratch_dir
from tests.support.kafka import TopicWatcher
from tests.support.servers import RunningServer, serve


# -- weights ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trained:
    model_type: str
    config: dict[str, Any]
    artifact: bytes
    parameters: int
    state_dict_bytes: int


def _train(model_type: str, epochs: int, **config_overrides: Any) -> Trained:
    import torch

    data = load_dataset("digits", seed=0, for_model_type=model_type)
    torch.manual_seed(0)
    model = build_model(model_type, {**suggest_config(model_type, data), **config_overrides})
    result = Trainer(model, data, Hyperparameters(epochs=epochs, learning_rate=3e-3, device="cpu")).run()
    return Trained(
        model_type=model_type, config=dict(model.config), artifact=result.artifact,
        parameters=sum(p.numel() for p in model.parameters()),
        state_dict_bytes=sum(t.numel() * t.element_size() for t in model.state_dict().values()),
    )


@dataclass(frozen=True)
class Weights:
    good_cnn: Trained  # vision, base_channels 16, 4 epochs: ≥ 0.9 accuracy
    weak_cnn: Trained  # vision, base_channels 4, 1 epoch
    mlp: Trained  # classification MLP on the flat digits features


@pytest.fixture(scope="package")
async def weights() -> Weights:
    def train_all() -> Weights:
        return Weights(
            good_cnn=_train("vision", 4, base_channels=16),
            weak_cnn=_train("vision", 1, base_channels=4),
            mlp=_train("classification", 3, hidden_sizes=[32]),
        )

    return await asyncio.to_thread(train_all)


# -- a stand-in for the version service -----------------------------------------------------------


@dataclass
class FakeVersionService:
    """``GET /internal/models/{model}/versions/{version}`` from ``versions``; ``POST .../metrics`` recorded.
    ``fail_next[(model, version)] = n`` answers the next n metric posts with 503. Requests about models in
    ``real_models`` are forwarded to the real version service at ``real_url`` (when it runs)."""

    token: str
    versions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    metric_posts: list[dict[str, Any]] = field(default_factory=list)
    fail_next: dict[tuple[str, str], int] = field(default_factory=dict)
    real_url: str | None = None
    real_models: set[str] = field(default_factory=set)

    async def _forward(self, request: Request) -> Response:
        async with httpx.AsyncClient(base_url=self.real_url, timeout=30) as client:
            upstream = await client.request(
                request.method, request.url.path, content=await request.body(),
                headers={k: v for k, v in request.headers.items() if k.startswith("x-cairn-") or k == "content-type"},
            )
        return Response(upstream.content, status_code=upstream.status_code,
                        media_type=upstream.headers.get("content-type"))

    def posts_for(self, model_id: str, version: str) -> list[dict[str, Any]]:
        return [p for p in self.metric_posts if (p["model"], p["version"]) == (str(model_id), version)]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/internal/models/{model}/versions/{version}")
        async def get_version(model: str, version: str, request: Request, x_cairn_internal_token: str = Header("")):
            if model in self.real_models:
                return await self._forward(request)
            if x_cairn_internal_token != self.token:
                raise HTTPException(401)
            found = self.versions.get((model, version))
            if found is None:
                raise HTTPException(404)
            return found

        @app.post("/internal/models/{model}/versions/{version}/metrics")
        async def record_metrics(model: str, version: str, request: Request):
            if model in self.real_models:
                return await self._forward(request)
            body = await request.json()
            self.metric_posts.append({"model": model, "version": version, "body": body,
                                      "token": request.headers.get("x-cairn-internal-token")})
            if request.headers.get("x-cairn-internal-token") != self.token:
                raise HTTPException(401)
            if self.fail_next.get((model, version), 0) > 0:
                self.fail_next[(model, version)] -= 1
                raise HTTPException(503)
            return {"model_id": model, "version": version, "metrics": body["metrics"]}

        return app


# -- the system -----------------------------------------------------------------------------------


@dataclass
class EvaluationSystem:
    evaluation: RunningServer
    registry: RunningServer
    versions: FakeVersionService
    blobs: ContentAddressedStore
    producer: AIOKafkaProducer
    kafka_bootstrap: str
    token: str
    real_versions: RunningServer | None = None  # the real version service, when it can be started
    real_versions_error: str | None = None

    @property
    def pool(self):
        return self.evaluation.app.state.runtime.pool

    @property
    def runtime(self):
        return self.evaluation.app.state.runtime

    def api(self, actor: str = "tests") -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.evaluation.url, timeout=120,
                                 headers={"x-cairn-internal-token": self.token, "x-cairn-actor": actor})

    async def register_model(self, prefix: str = "eval", model_type: str = "vision") -> dict[str, Any]:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        async with httpx.AsyncClient(base_url=self.registry.url, timeout=30,
                                     headers={"x-cairn-internal-token": self.token, "x-cairn-actor": "tests"}) as api:
            response = await api.post("/internal/models", json={"name": name, "type": model_type})
        assert response.status_code == 201, response.text
        return response.json()

    async def store_weights(self, content: bytes) -> ArtifactRef:
        async def chunks():
            yield content

        ref = await self.blobs.put_stream(chunks())
        return ArtifactRef(sha256=ref.sha256, size=ref.size, storage="folder")

    async def send(self, event: Event | None = None, *, envelope: Envelope | None = None, actor: str = "tests") -> Envelope:
        """Publish straight to Kafka, as any producer may (the same envelope twice is a redelivery)."""
        envelope = envelope or Envelope(data=event, source="tests", actor=actor)
        await self.producer.send_and_wait(
            envelope.topic, key=envelope.subject.encode(), value=envelope.body(),
            headers=[(k, v.encode()) for k, v in envelope.headers().items()],
        )
        return envelope

    async def announce_version(
        self, model_id: str | uuid.UUID, version: str, content: bytes | None, *, reported_metrics=None,
        artifact_in_created: bool = False,
    ) -> tuple[uuid.UUID, Envelope | None]:
        """VersionCreated, then (weights stored) ArtifactStored; returns the version id and ArtifactStored's
        envelope. ``artifact_in_created`` puts the weights in VersionCreated only (no automatic evaluation)."""
        version_id = uuid.uuid4()
        artifact = await self.store_weights(content) if content is not None else None
        await self.send(VersionCreated(
            model_id=model_id, version_id=version_id, version=version, version_type="release",
            metrics=reported_metrics or {}, created_by="tests", created_at=datetime.now(timezone.utc),
            artifact=artifact if artifact_in_created else None,
        ))
        stored = None
        if artifact is not None and not artifact_in_created:
            stored = await self.send(ArtifactStored(
                model_id=model_id, version_id=version_id, version=version, artifact=artifact, deduplicated=False,
            ))
        return version_id, stored


async def _start_real_version_service(service_env, objects: Path, registry_url: str):
    """The real version service on the same object store, if it is importable and starts (it is written
    alongside this service); otherwise None and the reason, which the tests that need it fail with."""
    try:
        from services.version.app import create_app as create_version
        from services.version.settings import VersionSettings

        app = create_version(VersionSettings(
            **service_env, object_store_url=f"file://{objects}", link_secret="evaluation-tests-link-secret-0123456789",
            registry_url=registry_url,
        ))
        return await serve(app), None
    except Exception as exc:  # noqa: BLE001 - any failure only means those tests cannot run
        return None, f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="package")
async def evaluation_system(service_env) -> EvaluationSystem:
    objects: Path = scratch_dir("cairn-eval-objects-")
    token = service_env["internal_token"]
    fake_versions = FakeVersionService(token=token)
    registry = await serve(create_registry(RegistrySettings(**service_env)))
    version_service = await serve(fake_versions.app())
    real_versions, real_versions_error = await _start_real_version_service(service_env, objects, registry.url)
    if real_versions is not None:
        fake_versions.real_url = real_versions.url
    evaluation = await serve(create_evaluation(EvaluationSettings(
        **service_env, object_store_url=f"file://{objects}", registry_url=registry.url,
        version_url=version_service.url, latency_runs=10, poll_interval_s=0.5, max_attempts=2,
    )))
    producer = AIOKafkaProducer(bootstrap_servers=service_env["kafka_bootstrap"], enable_idempotence=False, acks="all")
    await producer.start()
    blobs = ContentAddressedStore(open_object_store(f"file://{objects}"))
    yield EvaluationSystem(
        evaluation=evaluation, registry=registry, versions=fake_versions, blobs=blobs, producer=producer,
        kafka_bootstrap=service_env["kafka_bootstrap"], token=token, real_versions=real_versions,
        real_versions_error=real_versions_error,
    )
    await producer.stop()
    for server in (evaluation, real_versions, version_service, registry):
        if server is not None:
            await server.stop()
    shutil.rmtree(objects, ignore_errors=True)


@pytest.fixture(scope="package")
async def evaluation_events(evaluation_system) -> TopicWatcher:
    """One reader of cairn.evaluation.v1 for the whole package (joining a consumer group takes seconds);
    every test waits for its own messages by their ids."""
    async with TopicWatcher(evaluation_system.kafka_bootstrap, topics.EVALUATION) as watcher:
        yield watcher
