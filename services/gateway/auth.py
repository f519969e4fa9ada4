"""Authentication (API key → principal) and authorisation (principal × permission × model), with every
refusal audited through the outbox as an AccessDenied event.

Authorisation happens in ``require()``, the dependency every route declares: the role is the global
baseline; on a route about one model (``{model_ref}``) a principal whose role falls short may still pass
through ownership of, or a grant on, that model (``services/gateway/permissions.py``). A role that
suffices costs no lookup; otherwise one cached query reads the model's owner and the caller's grants."""
from __future__ import annotations

import hmac
import logging
import time
from datetime import datetime, timezone
from typing import Callable
from uuid import UUID

import orjson
from fastapi import Request

from libs.events.security import AccessDenied
from libs.kit.errors import Forbidden, RateLimited, Unauthenticated
from libs.kit.uow import UnitOfWork
from services.gateway import keys, permissions, store

log = logging.getLogger(__name__)

#: AccessDenied events per client address per minute; beyond this, refusals are counted, not recorded,
#: so a flood of bad requests cannot flood the audit log.
DENIAL_AUDIT_PER_MINUTE = 30


def route_path(request: Request) -> str:
    """The matched route's template (``/api/v1/models/{model_ref}``), never the raw path."""
    return getattr(request.scope.get("route"), "path", "") or ""


class Authenticator:
    def __init__(self, gateway) -> None:
        self.gw = gateway
        self._cache: dict[str, tuple[float, keys.StoredKey]] = {}

    def forget(self, key_id: str) -> None:
        self._cache.pop(key_id, None)

    def is_warm(self, key_id: str) -> bool:
        """Whether the key is cached and fresh, so authenticating it now needs no database read."""
        cached = self._cache.get(key_id)
        return cached is not None and cached[0] > time.monotonic()

    async def principal_for(self, authorization: str | None) -> keys.Principal:
        if not authorization:
            raise Unauthenticated("missing Authorization header; send 'Authorization: Bearer <api key>'")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Authorization must use the Bearer scheme with an API key")
        parsed = keys.parse_token(token.strip())
        if parsed is None:
            raise Unauthenticated("malformed API key")
        key_id, secret = parsed
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached and cached[0] > now:
            stored = cached[1]
        else:
            row = await store.get_active_key(self.gw.runtime.pool, key_id)
            if row is None:
                self.forget(key_id)
                raise Unauthenticated("unknown or revoked API key", extra={"key_id": key_id})
            stored = keys.StoredKey(
                principal=keys.Principal(key_id=row["key_id"], name=row["name"], role=row["role"], team=row["team"],
                                         expires_at=row["expires_at"]),
                secret_hash=row["secret_hash"], previous_hash=row["previous_secret_hash"],
                previous_valid_until=row["previous_valid_until"],
            )
            self._cache[key_id] = (now + self.gw.settings.auth_cache_ttl_s, stored)
        wall = datetime.now(timezone.utc)
        if not stored.accepts(secret, wall):
            raise Unauthenticated("unknown or revoked API key", extra={"key_id": key_id})
        if stored.expired(wall):
            expired_at = stored.principal.expires_at.isoformat()  # type: ignore[union-attr]
            raise Unauthenticated(f"API key {key_id} expired at {expired_at}; ask an admin for a new key",
                                  extra={"key_id": key_id, "reason": "key_expired", "expired_at": expired_at})
        return stored.principal

    @staticmethod
    def rate_key(principal: keys.Principal) -> str:
        """The Redis counter of this key's requests in the current minute (fixed window)."""
        return f"rl:{principal.key_id}:{int(time.time() // 60)}"

    def rate_limited(self) -> RateLimited:
        limit = self.gw.settings.rate_limit_per_minute
        return RateLimited(f"more than {limit} requests this minute",
                           extra={"retry_after_s": 60 - int(time.time()) % 60})

    async def check_rate(self, principal: keys.Principal) -> None:
        name = self.rate_key(principal)
        async with self.gw.redis.pipeline(transaction=False) as pipe:
            pipe.incr(name)
            pipe.expire(name, 120)
            count, _ = await pipe.execute()
        if count > self.gw.settings.rate_limit_per_minute:
            raise self.rate_limited()

    async def audit_denial(
        self, request: Request, status: int, reason: str, permission: str | None, key_id: str | None,
        actor: str = "anonymous", *, model: str | None = None, model_id: UUID | None = None,
        required: str | None = None,
    ) -> None:
        client = request.client.host if request.client else None
        try:
            budget = f"denied:{client}:{int(time.time() // 60)}"
            count = await self.gw.redis.incr(budget)
            if count == 1:
                await self.gw.redis.expire(budget, 120)
            if count > DENIAL_AUDIT_PER_MINUTE:
                return
            async with UnitOfWork(self.gw.runtime.pool, store.SCHEMA, source="gateway", actor=actor,
                                  traceparent=request.headers.get("traceparent")) as uow:
                await uow.emit(AccessDenied(method=request.method, path=request.url.path, status=status,
                                            reason=reason, permission=permission, key_id=key_id, client=client,
                                            model=model, model_id=model_id, required=required))
        except Exception:  # the refusal itself must still be returned
            log.exception("could not audit a refused request")

    async def refuse(self, request: Request, principal: keys.Principal, reason: str, permission: str, *,
                     model: str | None = None, model_id: UUID | None = None, required: str | None = None) -> Forbidden:
        """Audit a 403 decided after ``require`` (in a route) and return the error to raise."""
        await self.audit_denial(request, 403, reason, permission, principal.key_id, actor=principal.name,
                                model=model, model_id=model_id, required=required)
        extra = {"permission": permission, **({"model": model, "required": required} if model else {})}
        return Forbidden(reason, extra=extra)

    async def authorize(self, request: Request, principal: keys.Principal, permission: str) -> permissions.Decision:
        path = route_path(request)
        params = request.path_params
        need = permissions.need_for(
            permission, method=request.method, route_path=path, path_params=params,
            protected_aliases=frozenset(self.gw.settings.protected_aliases),
            owner_change=await _changes_owner(request, path, permission),
        )
        if principal.can_all(need.global_permissions):
            return permissions.Decision(True, "role")
        model = None
        if need.level is not None:
            model = await self.gw.access.lookup(params["model_ref"], principal.grantees)
        decision = permissions.decide(principal, need, model, datetime.now(timezone.utc))
        if not decision.allowed:
            ref = params.get("model_ref") if need.level is not None else None
            raise await self.refuse(request, principal, decision.reason, permission, model=ref,
                                    model_id=model.model_id if model else None, required=need.level)
        return decision

    async def metrics_guard(self, request: Request) -> None:
        """``/metrics`` of the public gateway: the internal token (as ``x-cairn-internal-token`` or as the
        Bearer credential, for Prometheus' ``authorization`` setting), or a key holding ``metrics:read``."""
        token = self.gw.settings.internal_token.get_secret_value().encode()
        shown = request.headers.get("x-cairn-internal-token", "")
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        for candidate in (shown, bearer.strip() if scheme.lower() == "bearer" else ""):
            if candidate and hmac.compare_digest(candidate.encode(), token):
                return
        await _METRICS(request)


async def _changes_owner(request: Request, path: str, permission: str) -> bool:
    """An update of a model that names an ``owner`` transfers ownership, which needs admin on the model."""
    if permission != "models:write" or path != permissions.MODEL_PATH or request.method not in ("PATCH", "PUT"):
        return False
    try:
        body = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        return False  # the registry refuses it
    return isinstance(body, dict) and body.get("owner") is not None


def require(permission: str, *, rate_checked_by_route: bool = False) -> Callable:
    """Dependency factory: the route needs ``permission`` (and, on a route about one model, what that
    means on the model); returns the principal. A hot route may count the request against the rate limit
    itself, in the same Redis round trip as its own work (``rate_checked_by_route``); it must then call
    ``Authenticator.rate_key``/``rate_limited``."""

    async def dependency(request: Request) -> keys.Principal:
        gw = request.app.state.gateway
        try:
            principal = await gw.auth.principal_for(request.headers.get("authorization"))
        except Unauthenticated as exc:
            await gw.auth.audit_denial(request, 401, exc.detail, permission, exc.extra.get("key_id"))
            exc.extra.pop("key_id", None)
            raise
        request.state.access = await gw.auth.authorize(request, principal, permission)
        if not rate_checked_by_route:
            await gw.auth.check_rate(principal)
        request.state.principal = principal
        return principal

    dependency.permission = permission  # type: ignore[attr-defined]  # lets a test prove every route has one
    return dependency


_METRICS = require("metrics:read")
