"""Stages, publishing, rollouts, rollbacks and the deployer's production lookup.

Transitions are forwarded to the lifecycle service. A rollback is an event-driven command: the gateway
writes RollbackRequested to its outbox (any other producer may publish the same event straight to
Kafka) and waits a few seconds for the lifecycle service's outcome. The production lookup is the hot
path: it is answered from Redis, which the lifecycle service keeps fresh from its events, and falls
back to the lifecycle service (Postgres) on a miss."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Annotated, Literal
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from libs.events.lifecycle import RollbackRequested
from libs.kit.errors import Conflict, NotFound
from libs.kit.http import problems
from libs.kit.uow import UnitOfWork
from services.gateway import store
from services.gateway.auth import needs_model, require
from services.gateway.bodies import json_body
from services.gateway.keys import Principal
from services.lifecycle.routes import AbortIn
from services.lifecycle.schemas import ArchiveIn, DeprecateIn, PublishIn, TransitionIn, UnpublishIn

router = APIRouter(prefix="/api/v1", tags=["lifecycle"])
Read = Annotated[Principal, Depends(require("lifecycle:read"))]
Write = Annotated[Principal, Depends(require("lifecycle:write"))]
#: ``/commands/{command_id}`` does not name its model: the command's model decides when the role does not
CommandRead = Annotated[Principal, Depends(require("lifecycle:read", model_from_resource=True))]
#: The production lookup's permission and public path, shared with its fast path (fast_lookup.py).
PRODUCTION_PERMISSION = "lifecycle:read"
PRODUCTION_PATH = "/api/v1/models/{model_ref}/production"
HotRead = Annotated[Principal, Depends(require(PRODUCTION_PERMISSION, rate_checked_by_route=True))]

# One Redis round trip: resolve a model name to its id if needed, then read the production view.
#: ARGV: model ref, environment, '1' if the ref is an id, the caller's rate counter, the limit per minute.
#: One round trip: count the request against the rate limit, resolve name → id, read the view.
PRODUCTION_LOOKUP = """
local count = redis.call('INCR', ARGV[4])
if count == 1 then redis.call('EXPIRE', ARGV[4], 120) end
if count > tonumber(ARGV[5]) then return '!rate-limited' end
local id = ARGV[1]
if ARGV[3] == '0' then
  id = redis.call('GET', 'cairn:model-name:' .. string.lower(ARGV[1]))
  if not id then return false end
end
return redis.call('GET', 'cairn:prod:' .. id .. ':' .. ARGV[2])
"""


def _lifecycle(request: Request):
    return request.app.state.gateway.upstreams["lifecycle"]


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
        return True
    except ValueError:
        return False


@router.get("/models/{model_ref}/production", responses=problems(401, 403, 404))
async def production(
    model_ref: str, request: Request, principal: HotRead,
    environment: str = Query("production", max_length=64),
) -> Response:
    """What is live: version, artifact (sha256, size, download path) and traffic weights during a rollout.
    ``x-cairn-served-from`` says whether Redis answered or the lifecycle service did."""
    gw = request.app.state.gateway
    cached = await gw.production_lookup(args=[model_ref, environment, "1" if _is_uuid(model_ref) else "0",
                                              gw.auth.rate_key(principal), gw.settings.rate_limit_per_minute])
    if cached == b"!rate-limited":
        raise gw.auth.rate_limited()
    if cached:
        return Response(cached, media_type="application/json", headers={"x-cairn-served-from": "cache"})
    response = await _lifecycle(request).forward(
        request, principal, f"/internal/models/{model_ref}/production", query=request.url.query)
    response.headers["x-cairn-served-from"] = "database"
    return response


@router.get("/models/{model_ref}/stages", responses=problems(401, 403, 404))
async def stages(model_ref: str, request: Request, principal: Read) -> Response:
    """The stage of every version in every environment."""
    return await _lifecycle(request).forward(request, principal, f"/internal/models/{model_ref}/stages",
                                             query=request.url.query)


@router.get("/models/{model_ref}/deployments", responses=problems(401, 403, 404))
async def deployments(model_ref: str, request: Request, principal: Read) -> Response:
    """What went live when, and why, newest first."""
    return await _lifecycle(request).forward(request, principal, f"/internal/models/{model_ref}/deployments",
                                             query=request.url.query)


def _transition_route(action: str, body: type[BaseModel], summary: str, *, body_required: bool = False):
    async def route(model_ref: str, version: str, request: Request, principal: Write) -> Response:
        return await _lifecycle(request).forward(
            request, principal, f"/internal/models/{model_ref}/versions/{version}/{action}", body=await request.body())

    route.__doc__ = summary
    route.__name__ = f"{action}_version"
    router.add_api_route(f"/models/{{model_ref}}/versions/{{version}}/{action}", route, methods=["POST"],
                         responses=problems(401, 403, 404, 409, 422), summary=summary.split(".")[0],
                         openapi_extra=json_body(body, required=body_required))


_transition_route("publish", PublishIn, "Publish to an environment (default production), immediately or as a "
                                        "gradual rollout with steps such as [10, 50, 100]. Emits VersionPromoted "
                                        "(and RolloutUpdated).")
_transition_route("unpublish", UnpublishIn, "Take a live version out of production, back to staging. "
                                            "Emits VersionDemoted.")
_transition_route("archive", ArchiveIn, "Archive a version in an environment. Emits VersionArchived.",
                  body_required=True)
_transition_route("deprecate", DeprecateIn, "Deprecate a version so it is never deployed again. "
                                            "Emits VersionDeprecated.")
_transition_route("transitions", TransitionIn, "Move a version to a stage (draft → staging → production → "
                                               "archived, deprecated); illegal moves get 409 naming the allowed ones.",
                  body_required=True)


@router.get("/models/{model_ref}/rollouts", responses=problems(401, 403, 404))
async def rollouts(model_ref: str, request: Request, principal: Read) -> Response:
    return await _lifecycle(request).forward(request, principal, f"/internal/models/{model_ref}/rollouts",
                                             query=request.url.query)


@router.post("/models/{model_ref}/rollouts/{rollout_id}/advance", responses=problems(401, 403, 404, 409))
async def advance_rollout(model_ref: str, rollout_id: str, request: Request, principal: Write) -> Response:
    """Move a gradual rollout to its next traffic step. Emits RolloutUpdated."""
    return await _lifecycle(request).forward(
        request, principal, f"/internal/models/{model_ref}/rollouts/{rollout_id}/advance", body=b"")


@router.get("/models/{model_ref}/rollouts/{rollout_id}", responses=problems(401, 403, 404))
async def get_rollout(model_ref: str, rollout_id: UUID, request: Request, principal: Read) -> Response:
    """One rollout: its steps, the current traffic weights and when it moves next."""
    return await _lifecycle(request).forward(request, principal, f"/internal/models/{model_ref}/rollouts/{rollout_id}")


@router.post("/models/{model_ref}/rollouts/{rollout_id}/abort", responses=problems(401, 403, 404, 409, 422),
             openapi_extra=json_body(AbortIn, required=False))
async def abort_rollout(model_ref: str, rollout_id: UUID, request: Request, principal: Write) -> Response:
    """Stop a gradual rollout: all traffic goes back to the stable version. Emits RolloutUpdated (aborted).
    Body (optional): ``{"reason": "..."}``."""
    return await _lifecycle(request).forward(
        request, principal, f"/internal/models/{model_ref}/rollouts/{rollout_id}/abort", body=await request.body())


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    environment: str = Field("production", max_length=64)
    target_version: str | None = Field(None, max_length=128, description="Default: the previous production version")
    strategy: Literal["fast", "version", "gradual"] | None = Field(
        None, description="fast (previous stable), version (target_version), gradual (shift traffic in steps)")
    reason: str = Field("", max_length=2000)
    steps: list[int] = Field(default_factory=list, max_length=20)
    step_interval_s: float | None = Field(None, gt=0)
    wait_s: float | None = Field(None, ge=0, le=60, description="How long to wait for the outcome")


@router.get("/commands/{command_id}", responses=problems(401, 403, 404))
async def command_status(command_id: UUID, request: Request, principal: CommandRead) -> Response:
    """The outcome of a command such as a rollback: pending, succeeded or failed. A key whose role lacks
    `lifecycle:read` needs read on the command's model (decided on the answer, before it is returned)."""
    answer = await _lifecycle(request).forward(request, principal, f"/internal/commands/{command_id}")
    if needs_model(request):
        await request.app.state.gateway.auth.authorize_resource(
            request, principal, "lifecycle:read", "command", answer, lambda command: [command["model_id"]])
    return answer


@router.post("/models/{model_ref}/rollback", responses={**problems(401, 403, 404, 409, 422), 202: {"description": "Still running"}})
async def rollback(model_ref: str, body: RollbackBody, request: Request, principal: Write) -> Response:
    """Roll production back: to ``target_version``, or to the previous production version. Sends
    RollbackRequested; answers with the outcome (200), 409 if it was refused, 202 if still running."""
    return await _request_rollback(model_ref, body, request, principal, live_version=None)


@router.post("/models/{model_ref}/versions/{version}/rollback",
             responses={**problems(401, 403, 404, 409, 422), 202: {"description": "Still running"}})
async def rollback_from_version(model_ref: str, version: str, body: RollbackBody, request: Request, principal: Write) -> Response:
    """Seed 001 §5.1 shape: roll back from ``version`` (which must be live) to ``target_version``."""
    return await _request_rollback(model_ref, body, request, principal, live_version=version)


async def _model_id(request: Request, principal: Principal, model_ref: str) -> UUID:
    if _is_uuid(model_ref):
        return UUID(model_ref)
    gw = request.app.state.gateway
    cached = await gw.redis.get(f"cairn:model-name:{model_ref.lower()}")
    if cached:
        return UUID(cached.decode())
    response = await gw.upstreams["registry"].forward(request, principal, f"/internal/models/{model_ref}", method="GET")
    if response.status_code != 200:
        raise NotFound(f"model {model_ref!r} not found")
    return UUID(orjson.loads(response.body)["model_id"])


async def _request_rollback(model_ref: str, body: RollbackBody, request: Request, principal: Principal,
                            live_version: str | None) -> Response:
    gw = request.app.state.gateway
    model_id = await _model_id(request, principal, model_ref)
    if live_version is not None:
        view = await _lifecycle(request).forward(request, principal, f"/internal/models/{model_id}/production",
                                                 method="GET", query=f"environment={body.environment}")
        live = orjson.loads(view.body).get("version") if view.status_code == 200 else None
        if live != live_version:
            raise Conflict(f"version {live_version} is not live in {body.environment} (live: {live or 'nothing'})")
    strategy = body.strategy or ("version" if body.target_version else "fast")
    command = RollbackRequested(
        model_id=model_id, environment=body.environment, strategy=strategy, target_version=body.target_version,
        reason=body.reason, steps=body.steps, step_interval_s=body.step_interval_s,
    )
    async with UnitOfWork(gw.runtime.pool, store.SCHEMA, source="gateway", actor=principal.name,
                          traceparent=request.headers.get("traceparent")) as uow:
        envelope = await uow.emit(command)
    gw.runtime.relay.wake()
    command_id = envelope.id
    wait_s = gw.settings.rollback_wait_s if body.wait_s is None else body.wait_s
    status = await _await_outcome(request, command_id, wait_s)
    if status is None or status["status"] == "pending":
        return JSONResponse({"command_id": str(command_id), "model_id": str(model_id), "status": "pending",
                             "status_url": f"/api/v1/commands/{command_id}"}, status_code=202)
    outcome = status.get("outcome") or {}
    if status["status"] == "failed":
        raise Conflict(f"rollback refused: {outcome.get('reason', 'unknown reason')}",
                       extra={"command_id": str(command_id), "outcome": outcome})
    return JSONResponse({
        "model_id": str(model_id), "command_id": str(command_id), "status": "succeeded",
        "environment": body.environment, "previous_version": outcome.get("from_version"),
        "current_version": outcome.get("to_version"), "strategy": outcome.get("strategy", strategy),
        "rolled_back_at": status.get("at") or datetime.now(timezone.utc).isoformat(), "outcome": outcome,
    })


async def _await_outcome(request: Request, command_id: UUID, wait_s: float) -> dict | None:
    """Poll the lifecycle service for the command's outcome (every 20 ms) until it is known or time is up."""
    upstream = _lifecycle(request)
    deadline = time.monotonic() + wait_s
    while True:
        response = await upstream.client.get(f"/internal/commands/{command_id}", headers=upstream.headers_for(None, None))
        if response.status_code == 200 and response.json().get("status") != "pending":
            return response.json()
        if time.monotonic() >= deadline:
            return response.json() if response.status_code == 200 else None
        await asyncio.sleep(0.02)
