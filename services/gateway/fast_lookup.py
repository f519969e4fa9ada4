"""The deployers' hot path without FastAPI: ``GET /api/v1/models/{model_ref}/production`` answered straight
from Redis for a caller whose role already allows ``lifecycle:read``.

A pure ASGI layer placed inside the service middleware (metrics, security headers, body limit still wrap
it) and in front of FastAPI's exception handling, routing and dependency solving, which cost most of the
lookup's CPU. It answers only the one case that needs no decision of its own:

- the method is GET, the path matches the production route's own regex, and the query string is empty
  or a plain ``environment=<name>``;
- the key is in the authenticator's cache and ``Authenticator.principal_for`` accepts it with no I/O;
- the key's role holds what the route needs on every model (no ownership or grant lookup);
- Redis holds the production view (then, and only then, the request is counted against the rate limit).

Everything else (any other route, an unknown/revoked/expired key, a cold key cache, a grant-based
caller, a cache miss, a rate-limited caller, a Redis error) goes, untouched, to the FastAPI app, so every
refusal, audit and fallback keeps today's single code path. A rate-limited request is counted once more
there; the counter only ever decides "over the limit", which it already is within that minute."""
from __future__ import annotations

import logging
import re
from uuid import UUID

from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway import permissions
from services.gateway.keys import parse_token

log = logging.getLogger(__name__)

#: Like the route's PRODUCTION_LOOKUP, but the request is counted only when the view is there to answer:
#: a miss falls through to the route, which counts it (once) itself.
#: ARGV: model ref, environment, '1' if the ref is an id, the caller's rate counter, the limit per minute.
FAST_PRODUCTION_LOOKUP = """
local id = ARGV[1]
if ARGV[3] == '0' then
  id = redis.call('GET', 'cairn:model-name:' .. string.lower(ARGV[1]))
  if not id then return false end
end
local view = redis.call('GET', 'cairn:prod:' .. id .. ':' .. ARGV[2])
if not view then return false end
local count = redis.call('INCR', ARGV[4])
if count == 1 then redis.call('EXPIRE', ARGV[4], 120) end
if count > tonumber(ARGV[5]) then return '!rate-limited' end
return view
"""

#: A query the fast path understands; anything else (repeats, encodings, other parameters) falls through.
_QUERY = re.compile(rb"^environment=([A-Za-z0-9_.-]{1,64})$")
_SAMPLE_REFS = ("fast-path-probe", "0b5c3c1e-4f0a-4d59-9a39-1f1b0d8f2c11", "12345")


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
        return True
    except ValueError:
        return False


def _environment(query: bytes) -> str | None:
    if not query:
        return "production"
    match = _QUERY.match(query)
    return match.group(1).decode() if match else None


def _authorization(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return value.decode("latin-1")  # the first one, as Starlette's Headers.get reads it
    return None


def _in_order(routes):
    """Every route in the order the router tries them; FastAPI keeps an included router whole (its
    ``original_router``), so look inside it."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _in_order(inner.routes)
        else:
            yield route


def first_match(routes, path: str):
    """The route the router would pick for ``GET path`` (None: no route, or a 405 from another method's)."""
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": [], "query_string": b""}
    for route in _in_order(routes):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return route
        if match == Match.PARTIAL:
            return None
    return None


class FastProductionLookup:
    """ASGI middleware; ``app.state.gateway`` must be set, ``route`` is the FastAPI production route."""

    def __init__(self, app: ASGIApp, *, gateway, route, permission: str) -> None:
        self.app = app
        self.gw = gateway
        self.route = route
        self.regex = route.path_regex
        need = permissions.need_for(permission, method="GET", route_path=route.path,
                                    path_params={"model_ref": _SAMPLE_REFS[0]})
        self.role_needs = need.global_permissions
        self.script = gateway.fast_production_lookup  # libs.kit.resp.LeanScript, or redis-py's for TLS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            match = self.regex.match(scope["path"])
            if match is not None:
                view = await self._cached_view(scope, match.group("model_ref"))
                if view is not None:
                    scope["route"] = self.route  # the metrics label, as the router would set it
                    scope["path_params"] = {"model_ref": match.group("model_ref")}
                    response = Response(view, media_type="application/json", headers={"x-cairn-served-from": "cache"})
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _cached_view(self, scope: Scope, model_ref: str) -> bytes | None:
        """The production view to answer with, or None to let the FastAPI route decide."""
        environment = _environment(scope.get("query_string", b""))
        if environment is None:
            return None
        authorization = _authorization(scope)
        parsed = parse_token(authorization.partition(" ")[2].strip()) if authorization else None
        auth = self.gw.auth
        # Only a key already in the authenticator's cache: principal_for then does no I/O, and a cold
        # or unknown key takes the route, which loads it (or refuses and audits it).
        if parsed is None or not auth.is_warm(parsed[0]):
            return None
        try:
            principal = await auth.principal_for(authorization)
        except Exception:  # a refusal: the route refuses it again, and audits it
            return None
        if not principal.can_all(self.role_needs):
            return None  # owner or grant based: the route looks the model up
        settings = self.gw.settings
        try:
            view = await self.script(args=[model_ref, environment, "1" if _is_uuid(model_ref) else "0",
                                           auth.rate_key(principal), settings.rate_limit_per_minute])
        except Exception:
            log.debug("fast production lookup failed; the route answers", exc_info=True)
            return None
        if not view or view == b"!rate-limited":
            return None
        return view


def install(app, gateway, *, path: str, permission: str) -> bool:
    """Put the fast path innermost among the service middleware, if the router would send every sample
    production path to the production route (nothing registered earlier shadows it). Call after every
    router is included and before the app serves."""
    route = first_match(app.router.routes, path.replace("{model_ref}", _SAMPLE_REFS[0]))
    if route is None or getattr(route, "path", None) != path:
        log.warning("production fast path not installed: %s is not the first route for %s",
                    getattr(route, "path", route), path)
        return False
    for ref in _SAMPLE_REFS[1:]:
        if first_match(app.router.routes, path.replace("{model_ref}", ref)) is not route:
            log.warning("production fast path not installed: another route answers %s for %r", path, ref)
            return False
    from starlette.middleware import Middleware

    app.user_middleware.append(Middleware(FastProductionLookup, gateway=gateway, route=route, permission=permission))
    return True
