"""Deny unless allowed: every public API route of the gateway names the permission it needs."""
from __future__ import annotations

from fastapi.routing import APIRoute

from libs.events.codegen import openapi
from services.gateway.keys import ROLE_PERMISSIONS

OPEN_ROUTES = {"/healthz", "/readyz", "/docs", "/openapi.json", "/docs/oauth2-redirect"}


def _permissions(dependant) -> list[str]:
    found = []
    for dep in dependant.dependencies:
        permission = getattr(dep.call, "permission", None)
        if permission:
            found.append(permission)
        found += _permissions(dep)
    return found


def _gateway_routes():
    from services.gateway.app import create_app
    from services.gateway.settings import GatewaySettings

    settings = GatewaySettings(database_url="postgresql://unused", kafka_bootstrap="unused:9092",
                               redis_url="redis://unused", internal_token="unused")
    return [r for r in create_app(settings).routes if isinstance(r, APIRoute)]


def test_every_api_route_requires_a_known_permission():
    known = set().union(*ROLE_PERMISSIONS.values())
    routes = _gateway_routes()
    assert routes
    for route in routes:
        if route.path in OPEN_ROUTES:
            continue
        permissions = _permissions(route.dependant)
        assert len(permissions) == 1, f"{route.methods} {route.path} must name exactly one permission"
        if permissions[0] == "public:signed-link":  # authorised by the link's HMAC signature instead
            assert route.path.startswith("/api/v1/artifacts/"), route.path
            continue
        assert permissions[0] in known, f"{route.path} needs {permissions[0]}, which no role has"


def test_openapi_declares_problem_responses():
    doc = openapi()
    post = doc["paths"]["/api/v1/models"]["post"]
    assert "application/problem+json" in post["responses"]["422"]["content"]
    assert "application/problem+json" in post["responses"]["409"]["content"]
