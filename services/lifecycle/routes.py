"""The lifecycle service's internal HTTP API, answered only for internal callers (internal token)."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from libs.kit.http import Caller, problems
from services.lifecycle.handlers import LifecycleHandlers
from services.lifecycle.policy import PromotionPolicy
from services.lifecycle.schemas import (
    ArchiveIn,
    CommandOut,
    DeploymentsOut,
    DeprecateIn,
    DeprecateOut,
    ProductionView,
    PublishIn,
    PublishOut,
    RolloutList,
    RolloutOut,
    RolloutStatusFilter,
    StagesOut,
    TransitionIn,
    TransitionOut,
    UnpublishIn,
)


class AbortIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=1000)


def build_router(handlers: LifecycleHandlers, caller_dep) -> APIRouter:
    router = APIRouter(prefix="/internal/models/{model_ref}", tags=["lifecycle"])
    CallerDep = Annotated[Caller, Depends(caller_dep)]
    Env = Annotated[str | None, Query(max_length=63)]

    @router.get("/stages", response_model=StagesOut, responses=problems(404, 422))
    async def stages(model_ref: str, caller: CallerDep, environment: Env = None) -> StagesOut:
        model, rows = await handlers.stages(model_ref, environment)
        return StagesOut(model_id=model.id, stages=rows)

    @router.post("/versions/{version}/transitions", response_model=TransitionOut, responses=problems(404, 409, 422))
    async def transition(model_ref: str, version: str, body: TransitionIn, caller: CallerDep) -> TransitionOut:
        return await handlers.transition(model_ref, version, body.environment, body.to_stage, body.reason, caller)

    @router.post("/versions/{version}/publish", response_model=PublishOut, responses=problems(404, 409, 422))
    async def publish(model_ref: str, version: str, caller: CallerDep,
                      body: Annotated[PublishIn, Body(default_factory=PublishIn)]) -> PublishOut:
        return await handlers.publish(model_ref, version, body, caller)

    @router.post("/versions/{version}/unpublish", response_model=TransitionOut, responses=problems(404, 409, 422))
    async def unpublish(model_ref: str, version: str, caller: CallerDep,
                        body: Annotated[UnpublishIn, Body(default_factory=UnpublishIn)]) -> TransitionOut:
        return await handlers.transition(model_ref, version, body.environment, "staging", body.reason or "unpublish",
                                         caller, only_from="production")

    @router.post("/versions/{version}/archive", response_model=TransitionOut, responses=problems(404, 409, 422))
    async def archive(model_ref: str, version: str, body: ArchiveIn, caller: CallerDep) -> TransitionOut:
        return await handlers.transition(model_ref, version, body.environment, "archived", body.reason or "archive",
                                         caller)

    @router.post("/versions/{version}/deprecate", response_model=DeprecateOut, responses=problems(404, 409, 422))
    async def deprecate(model_ref: str, version: str, caller: CallerDep,
                        body: Annotated[DeprecateIn, Body(default_factory=DeprecateIn)]) -> DeprecateOut:
        return await handlers.deprecate(model_ref, version, body.environment, body.reason, caller)

    @router.get("/rollouts", response_model=RolloutList, responses=problems(404, 422))
    async def rollouts(
        model_ref: str, caller: CallerDep, environment: Env = None, status: RolloutStatusFilter | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> RolloutList:
        model, items = await handlers.rollouts(model_ref, environment, status, limit)
        return RolloutList(model_id=model.id, rollouts=items)

    @router.get("/rollouts/{rollout_id}", response_model=RolloutOut, responses=problems(404))
    async def rollout(model_ref: str, rollout_id: UUID, caller: CallerDep) -> RolloutOut:
        return await handlers.rollout(model_ref, rollout_id)

    @router.post("/rollouts/{rollout_id}/advance", response_model=RolloutOut, responses=problems(404, 409))
    async def advance(model_ref: str, rollout_id: UUID, caller: CallerDep) -> RolloutOut:
        return await handlers.advance_rollout(model_ref, rollout_id, caller)

    @router.post("/rollouts/{rollout_id}/abort", response_model=RolloutOut, responses=problems(404, 409))
    async def abort(model_ref: str, rollout_id: UUID, caller: CallerDep,
                    body: Annotated[AbortIn, Body(default_factory=AbortIn)]) -> RolloutOut:
        return await handlers.abort_rollout(model_ref, rollout_id, body.reason, caller)

    @router.get("/production", response_model=ProductionView, responses=problems(404, 422))
    async def production(model_ref: str, caller: CallerDep,
                         environment: Annotated[str, Query(max_length=63)] = "production") -> Response:
        view, source = await handlers.production(model_ref, environment)
        body = view if isinstance(view, bytes) else view.model_dump_json().encode()
        return Response(body, media_type="application/json", headers={"x-cairn-served-from": source})

    @router.get("/deployments", response_model=DeploymentsOut, responses=problems(404, 422))
    async def deployments(model_ref: str, caller: CallerDep, environment: Env = None,
                          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> DeploymentsOut:
        model, entries = await handlers.deployments(model_ref, environment, limit)
        return DeploymentsOut(model_id=model.id, deployments=entries)

    @router.get("/promotion-policy", response_model=PolicyOut, responses=problems(404))
    async def get_policy(model_ref: str, caller: CallerDep) -> PolicyOut:
        model, policy = await handlers.get_policy(model_ref)
        return PolicyOut(model_id=model.id, policy=policy)

    @router.put("/promotion-policy", response_model=PolicyOut, responses=problems(404, 422))
    async def set_policy(model_ref: str, body: PromotionPolicy, caller: CallerDep) -> PolicyOut:
        """Applied on every EvaluationCompleted of the model's versions; each decision is a PromotionDecided."""
        model = await handlers.set_policy(model_ref, body, caller)
        return PolicyOut(model_id=model.id, policy=body)

    return router


class PolicyOut(BaseModel):
    model_id: UUID
    policy: PromotionPolicy


def build_commands_router(handlers: LifecycleHandlers, caller_dep) -> APIRouter:
    router = APIRouter(prefix="/internal/commands", tags=["lifecycle"])

    @router.get("/{command_id}", response_model=CommandOut, responses=problems(404))
    async def command(command_id: UUID, caller: Annotated[Caller, Depends(caller_dep)]) -> CommandOut:
        """The outcome of a command event (RollbackRequested), by its event id; 404 until it is seen."""
        return await handlers.command(command_id)

    return router
