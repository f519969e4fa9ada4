"""Evaluations and comparisons (forwarded to the evaluation service), and promotion policies
(forwarded to the lifecycle service).

``/evaluations/{id}``, ``/comparisons/{id}`` and ``POST /models/compare`` do not name their models in
the path: a role holding ``evaluation:read`` passes as before (no extra round trip); any other key needs
read on the models concerned: the evaluation's model, both models of a comparison (as the service's
answer names them, checked before it is returned), every model a compare request names (checked before it
is forwarded)."""
from __future__ import annotations

from typing import Annotated
from uuid import UUID

import httpx
from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError

from libs.kit.errors import UpstreamUnavailable
from libs.kit.http import problems, validation_error_from
from services.evaluation.schemas import CompareRequest, EvaluateRequest
from services.gateway.auth import needs_model, require
from services.gateway.bodies import json_body
from services.gateway.keys import Principal
from services.lifecycle.policy import PromotionPolicy

router = APIRouter(prefix="/api/v1", tags=["evaluation"])
Read = Annotated[Principal, Depends(require("evaluation:read"))]
Write = Annotated[Principal, Depends(require("evaluation:write"))]
PolicyRead = Annotated[Principal, Depends(require("lifecycle:read"))]
PolicyWrite = Annotated[Principal, Depends(require("lifecycle:write"))]
#: Routes whose models are in the resource (or the body), not the path: they decide when the role does not.
ResourceRead = Annotated[Principal, Depends(require("evaluation:read", model_from_resource=True))]


def _evaluation(request: Request):
    return request.app.state.gateway.upstreams["evaluation"]


def _compared_models(comparison: dict) -> list[str]:
    return [comparison["model_1"]["model_id"], comparison["model_2"]["model_id"]]


def _wants_html(request: Request) -> bool:
    """As the evaluation service decides (``services.evaluation.domain.wants_html``, not imported: it pulls
    in torch): ``?format=`` decides; without it, an Accept header naming text/html before JSON. Should the
    two ever differ, an HTML answer taken for JSON fails closed (502), never open."""
    format = request.query_params.get("format")
    if format is not None:
        return format == "html"
    accept = request.headers.get("accept", "").lower()
    json_at = accept.find("application/json")
    return "text/html" in accept and (json_at == -1 or accept.find("text/html") < json_at)


async def _as_json(request: Request, principal: Principal, path: str) -> Response:
    """The service's JSON answer at ``path`` whatever the client asked for (to read the models from)."""
    upstream = _evaluation(request)
    headers = {**upstream.headers_for(request, principal), "accept": "application/json"}
    try:
        answer = await upstream.client.get(path, headers=headers)
    except httpx.HTTPError:
        raise UpstreamUnavailable(f"the {upstream.name} service is not reachable; try again shortly") from None
    return Response(answer.content, status_code=answer.status_code, media_type=answer.headers.get("content-type"))


@router.post("/models/compare", responses=problems(400, 401, 403, 404, 422), openapi_extra=json_body(CompareRequest))
async def compare(request: Request, principal: ResourceRead) -> Response:
    """Compare two versions (seed 001 §5.1): performance (metric deltas), parameters (config and
    hyperparameter diff) and structure (layer by layer with tensor shapes). JSON, or a readable HTML
    report with charts when asked with ``Accept: text/html`` or ``?format=html``."""
    body = await request.body()
    if needs_model(request):  # a key whose role lacks evaluation:read needs read on both models named
        try:
            wanted = CompareRequest.model_validate_json(body or b"{}")
        except ValidationError as exc:
            raise validation_error_from([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
        auth = request.app.state.gateway.auth
        for ref in dict.fromkeys((wanted.model_1.model_id, wanted.model_2.model_id)):
            await auth.authorize_model(request, principal, "evaluation:read", ref)
    return await _evaluation(request).forward(request, principal, "/internal/models/compare",
                                              body=body, query=request.url.query)


@router.get("/comparisons/{comparison_id}", responses=problems(401, 403, 404))
async def get_comparison(comparison_id: UUID, request: Request, principal: ResourceRead) -> Response:
    # a key whose role lacks evaluation:read needs read on both models of the comparison; an HTML report
    # names them nowhere readable, so the JSON answer is asked first and the report after the decision
    path = f"/internal/comparisons/{comparison_id}"
    if not needs_model(request):
        return await _evaluation(request).forward(request, principal, path, query=request.url.query)
    html = _wants_html(request)
    answer = await (_as_json(request, principal, path) if html
                    else _evaluation(request).forward(request, principal, path, query=request.url.query))
    await request.app.state.gateway.auth.authorize_resource(request, principal, "evaluation:read", "comparison",
                                                            answer, _compared_models)
    if html and answer.status_code == 200:
        return await _evaluation(request).forward(request, principal, path, query=request.url.query)
    return answer


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
async def get_evaluation(evaluation_id: UUID, request: Request, principal: ResourceRead) -> Response:
    # a key whose role lacks evaluation:read needs read on the evaluation's model, decided on the answer
    answer = await _evaluation(request).forward(request, principal, f"/internal/evaluations/{evaluation_id}")
    if needs_model(request):
        await request.app.state.gateway.auth.authorize_resource(
            request, principal, "evaluation:read", "evaluation", answer, lambda run: [run["model_id"]])
    return answer


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
