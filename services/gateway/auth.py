"""Authentication (API key → principal) and authorisation (principal × permission × model), with every
refusal audited through the outbox as an AccessDenied event.

Authorisation happens in ``require()``, the dependency every route declares: the role is the global
baseline; on a route about one model (``{model_ref}``) a principal whose role falls short may still pass
through ownership of, or a grant on, that model (``services/gateway/permissions.py``). A role that
suffices costs no lookup; otherwise one cached query reads the model's owner and the caller's grants.

A route about one resource of one model whose path does not name the model (a training job, an
evaluation, a comparison; ``require(..., model_from_resource=True)``) cannot decide in the dependency:
when the role falls short, the dependency only refuses a key that owns no model and holds no live grant
(it can pass on none), and the route finds the resource's model from the owning service and calls
``Authenticator.authorize_model`` before it answers. Such a refusal never tells a key that cannot read the
model whether the resource exists: a missing resource and one on a model it cannot read get the same 403."""
from __future__ import annotations

import hmac
import logging
import time
from datetime import datetime, timezone
from typing import Callable
from uuid import UUID

import orjson
from fastapi import Request, Response

from libs.events.security import AccessDenied
from libs.kit.errors import Forbidden, RateLimited, Unauthenticated, UpstreamUnavailable
from libs.kit.uow import UnitOfWork
from services.gateway import keys, permissions, store

log = logging.getLogger(__name__)

#: AccessDenied events per client address per minute; beyond this, refusals are counted, not recorded,
#: so a flood of bad requests cannot flood the audit log.
DENIAL_AUDIT_PER_MINUTE = 30
#: Count one request against a key's minute (KEYS[1]: ``Authenticator.rate_key``); one round trip.
RATE_COUNT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], 120) end
return count
"""
#: ``Decision.via`` of a request whose role falls short on a resource route: the route decides on the model.
MODEL_PENDING = "model pending"


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

    async def authenticate(self, request: Request, permission: str) -> keys.Principal:
        """The request's principal; a missing, bad, revoked or expired key is audited (without its key id
        in the answer) and raised as 401."""
        try:
            return await self.principal_for(request.headers.get("authorization"))
        except Unauthenticated as exc:
            await self.audit_denial(request, 401, exc.detail, permission, exc.extra.get("key_id"))
            exc.extra.pop("key_id", None)
            raise

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
        count = await self.gw.rate_counter(keys=[self.rate_key(principal)])
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

    async def authorize(self, request: Request, principal: keys.Principal, permission: str, *,
                        model_from_resource: bool = False) -> permissions.Decision:
        path = route_path(request)
        params = request.path_params
        need = permissions.need_for(
            permission, method=request.method, route_path=path, path_params=params,
            protected_aliases=frozenset(self.gw.settings.protected_aliases),
            owner_change=await _changes_owner(request, path, permission),
        )
        if principal.can_all(need.global_permissions):
            return permissions.Decision(True, "role")
        if model_from_resource and need.level is None and permission.partition(":")[0] in permissions.MODEL_AREAS:
            lacks = permissions.decide(principal, need, None, datetime.now(timezone.utc)).reason
            if await self.gw.access.visible(principal.grantees):
                return permissions.Decision(False, MODEL_PENDING, reason=lacks)  # the route decides on the model
            raise await self.refuse(request, principal, lacks, permission)
        model = None
        if need.level is not None:
            model = await self.gw.access.lookup(params["model_ref"], principal.grantees)
        decision = permissions.decide(principal, need, model, datetime.now(timezone.utc))
        if not decision.allowed:
            ref = params.get("model_ref") if need.level is not None else None
            raise await self.refuse(request, principal, decision.reason, permission, model=ref,
                                    model_id=model.model_id if model else None, required=need.level)
        return decision

    async def authorize_model(self, request: Request, principal: keys.Principal, permission: str, model_ref: str,
                              *, resource: str | None = None) -> permissions.Decision:
        """``permission`` (the route's) on the model ``model_ref`` (id or name), as on a route whose path
        named it: the role, or the level ``permissions.need_for`` asks of ownership or grants. A role that
        suffices costs nothing. ``resource`` (e.g. ``"training job"``): the model was found through that
        resource, not named by the caller; a caller that cannot even read the model is then refused with
        the same answer as for a resource that does not exist (``refuse_resource``). Refusals are audited
        under the model."""
        need = permissions.need_for(permission, method=request.method, route_path=route_path(request),
                                    path_params={"model_ref": model_ref},
                                    protected_aliases=frozenset(self.gw.settings.protected_aliases))
        if principal.can_all(need.global_permissions):
            return permissions.Decision(True, "role")
        model = await self.gw.access.lookup(model_ref, principal.grantees)
        now = datetime.now(timezone.utc)
        decision = permissions.decide(principal, need, model, now)
        if decision.allowed:
            request.state.access = decision
            return decision
        model_id = model.model_id if model else None
        if resource is None or _reads_area(principal, permission) or (
                model is not None and permissions.effective(principal, model, now)[0] >= permissions.rank("read")):
            raise await self.refuse(request, principal, decision.reason, permission,
                                    model=model.name if resource is not None and model else model_ref,
                                    model_id=model_id, required=need.level)
        raise await self.refuse_resource(request, principal, permission, resource, decision.reason,
                                         model=model.name if model else model_ref, model_id=model_id,
                                         required=need.level)

    async def authorize_resource(self, request: Request, principal: keys.Principal, permission: str, resource: str,
                                 answer: Response, model_ids: Callable[[dict], list[str]]) -> None:
        """A route about one resource (``resource``: what it is) whose role check is pending: ``answer`` is
        the owning service's answer about the resource; raise unless ``permission`` holds on every model
        ``model_ids`` reads from it. A missing resource (404) is refused like one on a model the caller
        cannot read, unless its role reads the area anyway (then the 404 stands, as before). Any other
        non-200 answer (the service failing) is left to the route to return as it is."""
        if answer.status_code == 404:
            if _reads_area(principal, permission):
                return
            lacks = f"role {principal.role} lacks permission {permission}"
            raise await self.refuse_resource(request, principal, permission, resource,
                                             f"{lacks}; no such {resource} ({request.url.path})")
        if answer.status_code != 200:
            return
        try:
            refs = model_ids(orjson.loads(answer.body))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise UpstreamUnavailable(f"the answer about this {resource} names no model") from None
        for ref in dict.fromkeys(str(r) for r in refs):
            await self.authorize_model(request, principal, permission, ref, resource=resource)

    async def refuse_resource(self, request: Request, principal: keys.Principal, permission: str, resource: str,
                              audited_reason: str, *, model: str | None = None, model_id: UUID | None = None,
                              required: str | None = None) -> Forbidden:
        """The refusal of a resource (``resource``: what it is, e.g. ``"evaluation"``) to a caller whose role
        falls short and who cannot read its model, or of a resource that does not exist: the same 403 either
        way, so it does not tell whether the resource exists. The audit records the real reason and model."""
        await self.audit_denial(request, 403, audited_reason, permission, principal.key_id, actor=principal.name,
                                model=model, model_id=model_id, required=required)
        return Forbidden(f"role {principal.role} lacks permission {permission}, and {principal.name} holds no "
                         f"grant on the model of this {resource}", extra={"permission": permission})

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


def _reads_area(principal: keys.Principal, permission: str) -> bool:
    """Whether the role reads this area on every model (so hiding a resource from it would hide nothing)."""
    return principal.can(permission.partition(":")[0] + ":read")


async def _changes_owner(request: Request, path: str, permission: str) -> bool:
    """An update of a model that names an ``owner`` transfers ownership, which needs admin on the model."""
    if permission != "models:write" or path != permissions.MODEL_PATH or request.method not in ("PATCH", "PUT"):
        return False
    try:
        body = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        return False  # the registry refuses it
    return isinstance(body, dict) and body.get("owner") is not None


def require(permission: str, *, rate_checked_by_route: bool = False, model_from_resource: bool = False) -> Callable:
    """Dependency factory: the route needs ``permission`` (and, on a route about one model, what that
    means on the model); returns the principal. A hot route may count the request against the rate limit
    itself, in the same Redis round trip as its own work (``rate_checked_by_route``); it must then call
    ``Authenticator.rate_key``/``rate_limited``. ``model_from_resource``: the route is about a resource
    of one model its path does not name; when the role falls short, ``request.state.access`` is left
    pending (``needs_model``) and the route MUST call ``Authenticator.authorize_model`` on the resource's
    model before it answers."""

    async def dependency(request: Request) -> keys.Principal:
        gw = request.app.state.gateway
        principal = await gw.auth.authenticate(request, permission)
        request.state.access = await gw.auth.authorize(request, principal, permission,
                                                       model_from_resource=model_from_resource)
        if not rate_checked_by_route:
            await gw.auth.check_rate(principal)
        request.state.principal = principal
        return principal

    dependency.permission = permission  # type: ignore[attr-defined]  # lets a test prove every route has one
    dependency.model_from_resource = model_from_resource  # type: ignore[attr-defined]
    return dependency


def needs_model(request: Request) -> bool:
    """Whether the route must still authorise on the resource's model (``require(..., model_from_resource=True)``
    let a caller through whose role falls short)."""
    access = getattr(request.state, "access", None)
    return access is None or not access.allowed


_METRICS = require("metrics:read")
