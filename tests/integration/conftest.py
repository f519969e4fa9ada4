"""The system in-process: registry, audit and gateway apps on real loopback ports, real infrastructure."""
from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import pytest

from services.audit.app import create_app as create_audit
from services.audit.settings import AuditSettings
from services.gateway import handlers as gateway_handlers
from services.gateway.app import create_app as create_gateway
from services.gateway.settings import GatewaySettings
from services.registry.app import create_app as create_registry
from services.registry.settings import RegistrySettings
from tests.support.servers import RunningServer, serve


@dataclass
class System:
    gateway: RunningServer
    services: dict[str, RunningServer]
    admin_token: str
    kafka_bootstrap: str
    pool: object = None
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.gateway.url, headers=headers, timeout=30)

    @property
    def admin(self) -> httpx.AsyncClient:
        return self.client(self.admin_token)

    async def token_for(self, role: str) -> str:
        if role not in self.tokens:
            new = await gateway_handlers.create_key(self.pool, name=f"test-{role}", role=role, created_by="tests")
            self.tokens[role] = new.token
        return self.tokens[role]


@pytest.fixture(scope="session")
async def system(service_env) -> System:
    registry = await serve(create_registry(RegistrySettings(**service_env)))
    audit = await serve(create_audit(AuditSettings(**service_env)))
    gateway_app = create_gateway(
        GatewaySettings(**service_env, registry_url=registry.url, audit_url=audit.url, rate_limit_per_minute=100_000)
    )
    gateway = await serve(gateway_app)
    pool = gateway_app.state.runtime.pool
    admin = await gateway_handlers.create_key(pool, name="test-admin", role="admin", created_by="tests")
    yield System(gateway=gateway, services={"registry": registry, "audit": audit}, admin_token=admin.token,
                 kafka_bootstrap=service_env["kafka_bootstrap"], pool=pool)
    for server in (gateway, audit, registry):
        await server.stop()
