"""Evaluations and comparisons (forwarded to the evaluation service), and promotion policies
(forwarded to the lifecycle service)."""
from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response

from libs.kit.http import problems
from services.evaluation.schemas import CompareRequest, EvaluateRequest
from services.gateway.auth import require
from services.gateway.bodies import json_body
from services.gateway.keys import Principal
from services.lifecycle.policy import PromotionPolicy

router = APIRouter(prefix="/api/v1", tags=["evaluation"])
Read = Annotated[Principal, Depends(require("evaluation:read"))]
Write = Annotated[Principal, Depends(require("evaluation:write"))]
PolicyRead = Annotated[Principal, Depends(require("lifecycle:read"))]
PolicyWrite = Annotated[Principal, Depends(require("lifecycle:write"))]


def _evaluation(request: Request):
    return request.app.state.gateway.upstreams["evaluation"]


@router.post("/models/compare", responses=problems(400, 401, 403, 404, 422), openapi_extra=json_body(CompareRequest))
async def compare(request: Request, principal: Read) -> Response:
    """Compare two versions (seed 001 §5.1): performance (metric deltas), parameters (config and
    hyperparameter diff) and structure (layer by layer with tensor shapes). JSON, or a readable HTML
    report with charts when asked with ``Accept: text/html`` or ``?format=html``."""
    return await _evaluation(request).forward(request, principal, "/internal/models/compare",
                                              body=await request.body(), query=request.url.query)


@router.get("/comparisons/{comparison_id}", responses=problems(401, 403, 404))
async def get_comparison(comparison_id: UUID, request: Request, principal: Read) -> Response:
    return await _evaluation(request).forward(request, principal, f"/internal/comparisons/{comparison_id}",
                                              query=request.url.query)


@router.get("/models/{model_ref}/versions/{version}/evaluations", responses=problems(401, 403, 404))
async def evaluations(model_ref: str, version: str, request: Request, principal: Read) -> Response:
    """Evaluations of a version, latest first: accuracy, macro precision/recall/F1, loss, latency p50/p99,
    throughput, parameters, size and FLOPs, measured on the held-out split."""
    return await _evaluation(request).forward(request, principal,
                                              f"/internal/models/{model_ref}/versions/{version}/evaluations")


@router.post("/models/{model_ref}/versions/{version}/evaluate", status_code=202, responses=problems(401, 403, 404, 422),
             openapi_extra=json_body(EvaluateRequest, required=False))
async def evaluate(model_ref: str, version: str, request: Request, principal: Write) -> Response:
    """Request a (re-)evaluation. Emits EvaluationRequested; the result arrives as EvaluationCompleted."""
    return await _evaluation(request).forward(request, principal,
                                              f"/internal/models/{model_ref}/versions/{version}/evaluate",
                                              body=await request.body())


@router.get("/evaluations/{evaluation_id}", responses=problems(401, 403, 404))
async def get_evaluation(evaluation_id: UUID, request: Request, principal: Read) -> Response:
    return await _evaluation(request).forward(request, principal, f"/internal/evaluations/{evaluation_id}")


@router.get("/models/{model_ref}/promotion-policy", responses=problems(401, 403, 404))
async def get_policy(model_ref: str, request: Request, principal: PolicyRead) -> Response:
    return await request.app.state.gateway.upstreams["lifecycle"].forward(
        request, principal, f"/internal/models/{model_ref}/promotion-policy")


@router.put("/models/{model_ref}/promotion-policy", responses=problems(401, 403, 404, 422),
            openapi_extra=json_body(PromotionPolicy))
async def set_policy(model_ref: str, request: Request, principal: PolicyWrite) -> Response:
    """Promotion rules applied on every EvaluationCompleted, e.g. to staging when accuracy ≥ 0.9; to
    production when it beats production by ≥ 0.5 points and its p99 latency is at most 1.2×."""
    return await request.app.state.gateway.upstreams["lifecycle"].forward(
        request, principal, f"/internal/models/{model_ref}/promotion-policy", body=await request.body())
