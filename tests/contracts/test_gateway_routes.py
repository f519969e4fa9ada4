"""Deny unless allowed: every public API route of the gateway names the permission it needs, every route
about one model lets model grants count, and the only routes without a permission are the listed open ones
(``/metrics`` is not among them: it needs the internal token or an admin key)."""
from __future__ import annotations

import re

from fastapi.routing import APIRoute, iter_route_contexts

from libs.events.codegen import openapi
from services.gateway.keys import ROLE_PERMISSIONS
from services.gateway.permissions import MODEL_AREAS, need_for

#: Routes anyone may call without a key: probes, the API reference and the dashboard's static files (the
#: dashboard's data comes from the API with the user's key).
OPEN_ROUTES = {"/healthz", "/readyz", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/docs/swagger-init.js",
               "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/favicon.png", "/", "/ui", "/ui/",
               "/ui/{name}"}
GUARDED_ROUTES = {"/metrics"}


def _permissions(dependant) -> list[str]:
    found = []
    for dep in dependant.dependencies:
        permission = getattr(dep.call, "permission", None)
        if permission:
            found.append(permission)
        found += _permissions(dep)
    return found


def _app():
    from services.gateway.app import create_app
    from services.gateway.settings import GatewaySettings

    settings = GatewaySettings(database_url="postgresql://unused", kafka_bootstrap="unused:9092",
                               redis_url="redis://unused", internal_token="unused")
    return create_app(settings)


def gateway_routes() -> list[tuple[str, set[str], APIRoute]]:
    """(full path, methods, route) of every API route, through included routers."""
    return [(ctx.path, set(ctx.methods or ()), ctx.original_route) for ctx in iter_route_contexts(_app().routes)
            if isinstance(ctx.original_route, APIRoute)]


def route_permission(route: APIRoute) -> str | None:
    found = _permissions(route.dependant)
    assert len(found) <= 1, f"{route.path} names {found}; it must name exactly one permission"
    return found[0] if found else None


def test_every_api_route_requires_a_known_permission():
    known = set().union(*ROLE_PERMISSIONS.values())
    routes = gateway_routes()
    assert len(routes) > 50  # the enumeration sees through included routers
    for path, methods, route in routes:
        if path in OPEN_ROUTES:
            continue
        permission = route_permission(route)
        assert permission, f"{methods} {path} must name exactly one permission"
        if permission == "public:signed-link":  # authorised by the link's HMAC signature instead
            assert path.startswith("/api/v1/artifacts/"), path
            continue
        assert permission in known, f"{path} needs {permission}, which no role has"


def test_every_route_about_one_model_lets_grants_count():
    for path, methods, route in gateway_routes():
        permission = route_permission(route)
        if "{model_ref}" not in path or not permission or permission.partition(":")[0] not in MODEL_AREAS:
            continue
        params = {name: "x" for name in re.findall(r"{(\w+)}", path)}
        for method in methods:
            need = need_for(permission, method=method, route_path=path, path_params=params)
            assert need.level is not None, f"{method} {path}: a grant on the model could never allow it"


def test_only_listed_routes_are_open_and_metrics_is_guarded():
    for ctx in iter_route_contexts(_app().routes):
        route = ctx.original_route
        if isinstance(route, APIRoute) or ctx.path in OPEN_ROUTES:
            continue
        assert ctx.path in GUARDED_ROUTES, f"{ctx.path} is served without any authorisation"
        assert getattr(ctx.endpoint, "guarded", False), f"{ctx.path} must be behind the gateway's guard"
    assert not GUARDED_ROUTES & OPEN_ROUTES


def test_openapi_declares_problem_responses():
    doc = openapi()
    post = doc["paths"]["/api/v1/models"]["post"]
    assert "application/problem+json" in post["responses"]["422"]["content"]
    assert "application/problem+json" in post["responses"]["409"]["content"]
