"""The models authorisation needs to know: owner and the grants covering a principal, read in one round
trip and cached briefly in-process.

The gateway owns no domain data, so it keeps a projection of cairn.models.v1 (``gateway.models``, fed by
consumer group ``gateway-models`` with an inbox) and asks the registry's internal API for a model whose
event has not arrived yet. Cached answers live ``CAIRN_AUTHZ_CACHE_TTL_S`` (5 s) at most and never past
the earliest expiry of a grant they hold; this process drops them on every grant change and model event
it handles, other gateway instances within the TTL.

Listings (``GET /models``, ``GET /models/search``) use ``require_listing``: a role that reads every model
goes through unchanged; any other valid key gets the listing restricted to the models it owns or holds a
live grant on (``visible``, one query, cached the same way), sent to the service's internal ``/scoped``
endpoint as a JSON body the gateway writes itself, or an empty page when there are none."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import parse_qsl, quote, urlencode
from uuid import UUID

import httpx
import orjson
from fastapi import Request, Response

from libs.events import topics
from libs.events.envelope import Envelope
from libs.events.models import ModelDeleted, ModelRegistered, ModelUpdated
from libs.events.security import PermissionRevoked
from libs.kit.errors import UpstreamUnavailable
from libs.kit.runtime import ServiceRuntime
from libs.kit.uow import UnitOfWork
from services.gateway import store
from services.gateway.keys import Principal
from services.gateway.permissions import Decision, Grant, ModelAccess

log = logging.getLogger(__name__)
CONSUMER_GROUP = "gateway-models"
_MAX_CACHED = 10_000


def parse_ref(ref: str) -> UUID | str:
    try:
        return UUID(ref)
    except ValueError:
        return ref


def _access(rows) -> ModelAccess | None:
    if not rows or rows[0]["deleted"]:
        return None
    first = rows[0]
    grants = tuple(Grant(r["grant_id"], r["principal"], r["permission"], r["expires_at"]) for r in rows if r["grant_id"])
    return ModelAccess(model_id=first["model_id"], name=first["name"], owner=first["owner"], grants=grants)


class ModelAccessResolver:
    def __init__(self, gateway) -> None:
        self.gw = gateway
        self._cache: dict[tuple[str, tuple[str, ...]], tuple[float, ModelAccess | None]] = {}
        self._visible: dict[tuple[str, ...], tuple[float, tuple[UUID, ...]]] = {}

    def invalidate(self) -> None:
        """Grants and models change rarely: dropping everything keeps invalidation obviously right."""
        self._cache.clear()
        self._visible.clear()

    async def visible(self, grantees: tuple[str, ...]) -> tuple[UUID, ...]:
        """The live models ``grantees`` may read through ownership or a live grant (sorted), from the
        projection in one query, cached like ``lookup`` (never past the first grant expiry it relies on)."""
        now = time.monotonic()
        cached = self._visible.get(grantees)
        if cached and cached[0] > now:
            return cached[1]
        rows = await store.visible_models(self.gw.runtime.pool, list(grantees))
        ttl = self.gw.settings.authz_cache_ttl_s
        wall = datetime.now(timezone.utc)
        for row in rows:
            if row["expires_at"] is not None:
                ttl = min(ttl, (row["expires_at"] - wall).total_seconds())
        ids = tuple(sorted(row["model_id"] for row in rows))
        if len(self._visible) >= _MAX_CACHED:
            self._visible.clear()
        self._visible[grantees] = (now + max(ttl, 0.0), ids)
        return ids

    async def lookup(self, ref: str, grantees: tuple[str, ...], *, fresh: bool = False) -> ModelAccess | None:
        """The model named by ``ref`` (id or name) with the live grants of ``grantees``; None if there is
        no such live model."""
        parsed = parse_ref(ref)
        key = (str(parsed) if isinstance(parsed, UUID) else parsed.lower(), grantees)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached and cached[0] > now and not fresh:
            return cached[1]
        pool = self.gw.runtime.pool
        rows = await store.model_access(pool, parsed, list(grantees))
        if not rows and await self._project_from_registry(ref):
            rows = await store.model_access(pool, parsed, list(grantees))
        access = _access(rows)
        ttl = self.gw.settings.authz_cache_ttl_s
        if access is not None:
            wall = datetime.now(timezone.utc)
            for grant in access.grants:
                if grant.expires_at is not None:
                    ttl = min(ttl, (grant.expires_at - wall).total_seconds())
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (now + max(ttl, 0.0), access)
        return access

    async def _project_from_registry(self, ref: str) -> bool:
        """Ask the registry for a model the projection does not know yet; record it. False: no such model."""
        upstream = self.gw.upstreams["registry"]
        try:
            response = await upstream.client.get(f"/internal/models/{quote(ref, safe='')}",
                                                 headers={**upstream.headers_for(None, None), "x-cairn-actor": "gateway"})
        except httpx.HTTPError as exc:
            log.warning("registry unreachable for an authorisation lookup", extra={"error": type(exc).__name__})
            raise UpstreamUnavailable("the registry is not reachable to check access to this model; try again shortly") from None
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise UpstreamUnavailable(f"the registry answered {response.status_code} to a model lookup")
        body = response.json()
        await store.insert_model_if_absent(self.gw.runtime.pool, UUID(body["model_id"]), body["name"], body["owner"],
                                           body["revision"], datetime.fromisoformat(body["created_at"]))
        return True

    async def on_model_event(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """cairn.models.v1 → gateway.models. A deleted model's grants are revoked (PermissionRevoked), so
        listings never show access to something gone."""
        event = envelope.data
        if isinstance(event, ModelDeleted):
            await store.mark_model_deleted(uow.conn, event.model_id, event.name, event.deleted_at)
            for row in await store.revoke_model_grants(uow.conn, event.model_id, envelope.actor or "system"):
                await uow.emit(PermissionRevoked(grant_id=row["grant_id"], model_id=event.model_id, model_name=event.name,
                                                 principal=row["principal"], permission=row["permission"],
                                                 reason="model deleted"))
        else:
            await store.project_model(uow.conn, event.model_id, event.name, event.owner, event.revision, event.created_at)
        self.invalidate()


@dataclass(frozen=True)
class Listing:
    """Who lists models, and what they may see: ``model_ids`` None when the role reads every model, else
    exactly the models the principal owns or holds a live grant on (possibly none)."""

    principal: Principal
    model_ids: tuple[UUID, ...] | None = None

    @property
    def restricted(self) -> bool:
        return self.model_ids is not None


def require_listing(permission: str) -> Callable:
    """Dependency of the routes that list models (``GET /models``, ``GET /models/search``). A role holding
    ``permission`` passes exactly as with ``auth.require`` (no extra round trip). Any other valid key is
    not refused: it lists only the models it owns or holds a live grant on (any level; expired and
    revoked grants do not count), which may be none (an empty page). A missing or bad key is still 401."""

    async def dependency(request: Request) -> Listing:
        gw = request.app.state.gateway
        principal = await gw.auth.authenticate(request, permission)
        await gw.auth.check_rate(principal)
        if principal.can(permission):
            listing = Listing(principal)
            request.state.access = Decision(True, "role")
        else:
            listing = Listing(principal, await gw.access.visible(principal.grantees))
            request.state.access = Decision(True, "grant", reason=f"listing restricted to {len(listing.model_ids)} "
                                                                  "models owned or granted")
        request.state.principal = principal
        return listing

    dependency.permission = permission  # type: ignore[attr-defined]  # the route-permission contract reads it
    return dependency


#: Never forwarded on a restricted listing: the scope travels only in the body the gateway writes itself,
#: so whatever a client sends under these names cannot widen (or even touch) it.
INTERNAL_PARAMS = frozenset({"model_ids", "model_id", "scope"})


def scoped_query(query: str) -> str:
    return urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() not in INTERNAL_PARAMS])


async def forward_listing(request: Request, upstream, listing: Listing, path: str, *, page: int,
                          page_size: int) -> Response:
    """Forward a listing to ``path`` (the hot path, unchanged, when the role reads every model), or to
    ``path``/scoped with the visible models as the JSON body; no visible model: an empty page here."""
    if listing.model_ids is None:
        return await upstream.forward(request, listing.principal, path, query=request.url.query)
    if not listing.model_ids:
        return Response(orjson.dumps({"total": 0, "page": page, "page_size": page_size, "models": []}),
                        media_type="application/json")
    body = orjson.dumps({"model_ids": [str(m) for m in listing.model_ids]})
    return await upstream.forward(request, listing.principal, f"{path}/scoped", body=body, method="POST",
                                  query=scoped_query(request.url.query))


def wire(runtime: ServiceRuntime, resolver: ModelAccessResolver) -> None:
    """Subscribe the projection to cairn.models.v1 (the runtime starts it with the broker)."""
    consumer = runtime.consumer(CONSUMER_GROUP)
    consumer.on(ModelRegistered, ModelUpdated, ModelDeleted)(resolver.on_model_event)
    runtime.subscribe(consumer, topics=[topics.MODELS])
