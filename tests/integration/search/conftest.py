"""The search-indexer in-process on a real port, consuming the session's real Kafka into the real
Postgres index, behind a real gateway that also reaches the system's registry and audit services.
Tests publish real events to Kafka (as the version, lifecycle and evaluation services would) or
register models through the gateway, then search."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Callable

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from libs.events.base import Event
from libs.events.envelope import Envelope
from services.gateway.app import create_app as create_gateway
from services.gateway.settings import GatewaySettings
from services.search_indexer.app import create_app as create_search_indexer
from services.search_indexer.settings import SearchIndexerSettings
from tests.integration.conftest import System
from tests.support.kafka import eventually
from tests.support.servers import RunningServer, serve


@dataclass
class SearchSystem:
    indexer: RunningServer
    gateway: RunningServer
    system: System
    producer: AIOKafkaProducer
    token: str

    def internal(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.indexer.url, timeout=60,
                                 headers={"x-cairn-internal-token": self.token, "x-cairn-actor": "tests"})

    def public(self, token: str | None) -> httpx.AsyncClient:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.gateway.url, headers=headers, timeout=30)

    @property
    def consumer(self):
        return self.indexer.app.state.runtime.consumers[0]

    async def send(self, event: Event | None = None, *, envelope: Envelope | None = None) -> Envelope:
        """Publish straight to Kafka (the same envelope twice is a redelivery)."""
        envelope = envelope or Envelope(data=event, source="tests", actor="tests")
        await self.producer.send_and_wait(
            envelope.topic, key=envelope.subject.encode(), value=envelope.body(),
            headers=[(k, v.encode()) for k, v in envelope.headers().items()],
        )
        return envelope

    async def search(self, **params: Any) -> dict[str, Any]:
        async with self.internal() as api:
            response = await api.get("/internal/search", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    async def search_until(self, check: Callable[[dict[str, Any]], bool], **params: Any) -> dict[str, Any]:
        """Search again until the answer satisfies ``check`` (the indexer consumes asynchronously)."""
        async def attempt():
            body = await self.search(**params)
            return body if check(body) else None

        return await eventually(attempt, timeout=60)  # generous: the machine may be busy


@pytest.fixture(scope="session")
async def search_system(system: System, service_env) -> SearchSystem:
    indexer = await serve(create_search_indexer(SearchIndexerSettings(
        **service_env, audit_url=system.services["audit"].url)))
    gateway = await serve(create_gateway(GatewaySettings(
        **service_env, registry_url=system.services["registry"].url, audit_url=system.services["audit"].url,
        search_indexer_url=indexer.url, rate_limit_per_minute=100_000)))
    producer = AIOKafkaProducer(bootstrap_servers=service_env["kafka_bootstrap"], enable_idempotence=False)
    await producer.start()
    yield SearchSystem(indexer=indexer, gateway=gateway, system=system, producer=producer,
                       token=service_env["internal_token"])
    await producer.stop()
    for server in (gateway, indexer):
        await server.stop()


@pytest.fixture
def run_tag() -> str:
    """A tag unique to one test, so its searches see only its own models in the shared database."""
    return f"run:{uuid.uuid4().hex[:12]}"
