"""Authentication (API key → principal) and authorisation (principal × permission), with refusals
audited through the outbox as AccessDenied events."""
from __future__ import annotations

import logging
import time
from typing import Callable

from fastapi import Request

from libs.events.security import AccessDenied
from libs.kit.errors import Forbidden, RateLimited, Unauthenticated
from libs.kit.uow import UnitOfWork
from services.gateway import keys, store

log = logging.getLogger(__name__)

#: AccessDenied events per client address per minute; beyond this, refusals are counted, not recorded,
#: so a flood of bad requests cannot flood the audit log.
DENIAL_AUDIT_PER_MINUTE = 30


class Authenticator:
    def __init__(self, gateway) -> None:
        self.gw = gateway
        self._cache: dict[str, tuple[float, keys.Principal, str]] = {}

    def forget(self, key_id: str) -> None:
        self._cache.pop(key_id, None)

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
            _, principal, secret_hash = cached
        else:
            row = await store.get_active_key(self.gw.runtime.pool, key_id)
            if row is None:
                self.forget(key_id)
                raise Unauthenticated("unknown or revoked API key", extra={"key_id": key_id})
            principal = keys.Principal(key_id=row["key_id"], name=row["name"], role=row["role"])
            secret_hash = row["secret_hash"]
            self._cache[key_id] = (now + self.gw.settings.auth_cache_ttl_s, principal, secret_hash)
        if not keys.secret_matches(secret, secret_hash):
            raise Unauthenticated("unknown or revoked API key", extra={"key_id": key_id})
        return principal

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
        actor: str = "anonymous",
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
                                            reason=reason, permission=permission, key_id=key_id, client=client))
        except Exception:  # the refusal itself must still be returned
            log.exception("could not audit a refused request")


def require(permission: str, *, rate_checked_by_route: bool = False) -> Callable:
    """Dependency factory: the route needs ``permission``; returns the principal. A hot route may count
    the request against the rate limit itself, in the same Redis round trip as its own work
    (``rate_checked_by_route``); it must then call ``Authenticator.rate_key``/``rate_limited``."""

    async def dependency(request: Request) -> keys.Principal:
        gw = request.app.state.gateway
        try:
            principal = await gw.auth.principal_for(request.headers.get("authorization"))
        except Unauthenticated as exc:
            await gw.auth.audit_denial(request, 401, exc.detail, permission, exc.extra.get("key_id"))
            exc.extra.pop("key_id", None)
            raise
        if not principal.can(permission):
            reason = f"role {principal.role} lacks permission {permission}"
            await gw.auth.audit_denial(request, 403, reason, permission, principal.key_id, actor=principal.name)
            raise Forbidden(reason, extra={"permission": permission})
        if not rate_checked_by_route:
            await gw.auth.check_rate(principal)
        request.state.principal = principal
        return principal

    dependency.permission = permission  # type: ignore[attr-defined]  # lets a test prove every route has one
    return dependency
