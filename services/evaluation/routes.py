"""The evaluation service's internal HTTP API, answered only for the gateway (internal token)."""

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Header, Query, Response
from fastapi.responses import HTMLResponse

from libs.kit.http import Caller, problems
from libs.ml.compare import render_html_report
from services.evaluation import store
from services.evaluation.domain import wants_html
from services.evaluation.handlers import EvaluationHandlers
from services.evaluation.schemas import (
    CompareRequest,
    ComparisonOut,
    EvaluateRequest,
    EvaluationAccepted,
    EvaluationDetail,
    EvaluationList,
    EvaluationOut,
    MetricsSync,
)

# The report is self-contained (inline CSS and SVG); nothing else may load or run in it.
REPORT_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                  "X-Content-Type-Options": "nosniff"}
HTML = {"content": {"text/html": {}}, "description": "The comparison as JSON, or as an HTML report"}


def evaluation_fields(run: store.Run) -> dict:
    details = run.details or {}
    return dict(
        evaluation_id=run.id, model_id=run.model_id, version=run.version, version_id=run.version_id, state=run.state,
        trigger=run.trigger, requested_by=run.actor, requested_dataset=run.requested_dataset,
        requested_seed=run.requested_seed, dataset=run.dataset, dataset_seed=run.dataset_seed,
        dataset_hash=run.dataset_hash, split=run.split, samples=run.samples, held_out=details.get("held_out"),
        device=run.device, model_type=run.model_type, artifact_sha256=run.artifact_sha256, metrics=run.metrics,
        reason=run.reason, attempts=run.attempts, created_at=run.created_at, started_at=run.started_at,
        finished_at=run.finished_at,
        metrics_sync=MetricsSync(state=run.sync_state, attempts=run.sync_attempts, error=run.sync_error),
    )


def evaluation_out(run: store.Run) -> EvaluationOut:
    return EvaluationOut(**evaluation_fields(run))


def evaluation_detail(run: store.Run) -> EvaluationDetail:
    return EvaluationDetail(
        **evaluation_fields(run), details=run.details, config=run.config, hyperparameters=run.hyperparameters,
        structure=run.structure,
    )


def build_router(handlers: EvaluationHandlers, caller_dep) -> APIRouter:
    router = APIRouter(prefix="/internal", tags=["evaluation"])
    CallerDep = Annotated[Caller, Depends(caller_dep)]
    Format = Annotated[Literal["json", "html"] | None, Query(description="html for the readable report")]

    @router.get("/models/{model_ref}/versions/{version}/evaluations", response_model=EvaluationList,
                responses=problems(401, 404, 502))
    async def list_evaluations(
        model_ref: str, version: str, caller: CallerDep, limit: int = Query(20, ge=1, le=100),
    ) -> EvaluationList:
        """Evaluations of a version, latest first."""
        model, version, runs = await handlers.list_evaluations(model_ref, version, limit)
        return EvaluationList(model_id=model.id, version=version, evaluations=[evaluation_out(r) for r in runs])

    @router.post("/models/{model_ref}/versions/{version}/evaluate", status_code=202, response_model=EvaluationAccepted,
                 responses=problems(401, 404, 422, 502))
    async def request_evaluation(
        model_ref: str, version: str, caller: CallerDep, response: Response,
        body: Annotated[EvaluateRequest | None, Body()] = None,
    ) -> EvaluationAccepted:
        """Emit EvaluationRequested; the result arrives as EvaluationCompleted (or EvaluationFailed)."""
        body = body or EvaluateRequest()
        accepted = await handlers.request_evaluation(
            model_ref, version, dataset=body.dataset, dataset_seed=body.dataset_seed, caller=caller,
        )
        response.headers["Location"] = f"/api/v1/evaluations/{accepted['evaluation_id']}"
        return EvaluationAccepted(**accepted)

    @router.get("/evaluations/{evaluation_id}", response_model=EvaluationDetail, responses=problems(401, 404))
    async def get_evaluation(evaluation_id: UUID, caller: CallerDep) -> EvaluationDetail:
        return evaluation_detail(await handlers.get_evaluation(evaluation_id))

    @router.post("/models/compare", response_model=ComparisonOut,
                 responses={200: HTML, **problems(400, 401, 404, 422, 502, 503)})
    async def compare(
        body: CompareRequest, caller: CallerDep, response: Response, format: Format = None,
        accept: str | None = Header(None),
    ):
        """Compare two versions: metric deltas, config/hyperparameter diff, layer-by-layer structure.
        JSON, or the HTML report with ``?format=html`` or ``Accept: text/html``."""
        result, report = await handlers.compare(body, caller)
        location = f"/api/v1/comparisons/{result['comparison_id']}"
        if wants_html(format, accept):
            return HTMLResponse(render_html_report(report), headers={**REPORT_HEADERS, "Location": location})
        response.headers["Location"] = location
        return ComparisonOut.model_validate(result)

    @router.get("/comparisons/{comparison_id}", response_model=ComparisonOut,
                responses={200: HTML, **problems(401, 404)})
    async def get_comparison(
        comparison_id: UUID, caller: CallerDep, format: Format = None, accept: str | None = Header(None),
    ):
        row = await handlers.get_comparison(comparison_id)
        if wants_html(format, accept):
            return HTMLResponse(render_html_report(row["report"]), headers=REPORT_HEADERS)
        return ComparisonOut.model_validate(row["result"])

    return router
