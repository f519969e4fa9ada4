"""Training jobs (forwarded to the training-scheduler) and their live progress as Server-Sent Events,
read from the Redis stream the scheduler appends to (``cairn:job:<id>:events``).

``/training-jobs/{job_id}...`` do not name the job's model: a role holding the route's permission passes
as before (no extra round trip); any other key passes only with the level the route needs (read, or write
to cancel) on the job's model, which the scheduler's answer about the job names (``model_id``). The GET
is decided on the answer itself before it is returned; cancel and the event stream ask for the job first."""
from __future__ import annotations

import re
from typing import Annotated
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import StreamingResponse

from libs.kit.http import problems
from services.gateway.auth import needs_model, require
from services.gateway.bodies import json_body
from services.gateway.idempotency import idempotent
from services.gateway.keys import Principal
from services.training_scheduler.schemas import CancelIn, TrainingJobCreate

router = APIRouter(prefix="/api/v1", tags=["training"])
Read = Annotated[Principal, Depends(require("training:read"))]
Write = Annotated[Principal, Depends(require("training:write"))]
#: The routes about one job: the job's model decides when the role alone does not.
JobRead = Annotated[Principal, Depends(require("training:read", model_from_resource=True))]
JobWrite = Annotated[Principal, Depends(require("training:write", model_from_resource=True))]
JOB = "training job"
TERMINAL = {"succeeded", "failed", "cancelled"}
_STREAM_ID = re.compile(r"^\d+-\d+$")
KEEPALIVE_MS = 15_000


def _scheduler(request: Request):
    return request.app.state.gateway.upstreams["training_scheduler"]


def _job_model(job: dict) -> list[str]:
    return [job["model_id"]]


async def _authorize_job(request: Request, principal: Principal, permission: str, answer: Response) -> None:
    """Raise unless ``principal`` may do ``permission`` on the job ``answer`` (the scheduler's) describes."""
    await request.app.state.gateway.auth.authorize_resource(request, principal, permission, JOB, answer, _job_model)


@router.post("/models/{model_ref}/training-jobs", status_code=201, responses=problems(400, 401, 403, 404, 422),
             openapi_extra=json_body(TrainingJobCreate))
async def create_job(
    model_ref: str, request: Request, principal: Write,
    idempotency_key: str | None = Header(None, description="Retries with the same key return the first response"),
) -> Response:
    """Queue a training job: dataset, hyperparameters (epochs, batch_size, learning_rate, optimizer, scheduler,
    seed, early_stopping_patience, device, mixed_precision) and resource pool (gpu or cpu). Emits TrainingRequested."""
    gw = request.app.state.gateway
    raw = await request.body()
    return await idempotent(
        request, principal.key_id, raw,
        lambda: _scheduler(request).forward(request, principal, f"/internal/models/{model_ref}/training-jobs", body=raw),
        redis=gw.redis, ttl_s=gw.settings.idempotency_ttl_s,
    )


@router.get("/models/{model_ref}/training-jobs", responses=problems(401, 403, 404))
async def list_jobs(model_ref: str, request: Request, principal: Read) -> Response:
    return await _scheduler(request).forward(request, principal, f"/internal/models/{model_ref}/training-jobs",
                                             query=request.url.query)


@router.get("/training-jobs/{job_id}", responses=problems(401, 403, 404))
async def get_job(job_id: UUID, request: Request, principal: JobRead) -> Response:
    # a key whose role lacks training:read needs read on the job's model, decided on the answer itself
    answer = await _scheduler(request).forward(request, principal, f"/internal/training-jobs/{job_id}")
    if needs_model(request):
        await _authorize_job(request, principal, "training:read", answer)
    return answer


@router.post("/training-jobs/{job_id}/cancel", responses=problems(401, 403, 404, 409),
             openapi_extra=json_body(CancelIn, required=False))
async def cancel_job(job_id: UUID, request: Request, principal: JobWrite) -> Response:
    """Cancel a queued or running job; a running attempt stops and produces no version. Emits TrainingCancelled.
    Body (optional): ``{"reason": "..."}``."""
    if needs_model(request):  # a key whose role lacks training:write needs write on the job's model
        job = await _scheduler(request).forward(request, principal, f"/internal/training-jobs/{job_id}",
                                                method="GET")
        await _authorize_job(request, principal, "training:write", job)
        if job.status_code != 200:
            return job
    return await _scheduler(request).forward(request, principal, f"/internal/training-jobs/{job_id}/cancel",
                                             body=await request.body())


@router.get("/training-jobs/{job_id}/events", responses=problems(401, 403, 404))
async def job_events(
    job_id: UUID, request: Request, principal: JobRead,
    last_event_id: str | None = Header(None, description="Resume after this event id"),
) -> StreamingResponse:
    """Live progress as Server-Sent Events: started, progress (epoch, losses, metrics, samples/s) and the
    final state. Replays what happened so far, then follows; the stream ends with the job."""
    gw = request.app.state.gateway
    probe = await _scheduler(request).forward(request, principal, f"/internal/training-jobs/{job_id}", method="GET")
    if needs_model(request):  # a key whose role lacks training:read: read on the job's model, before streaming
        await _authorize_job(request, principal, "training:read", probe)
    if probe.status_code != 200:
        return probe  # the problem body (404) as it is
    key = f"cairn:job:{job_id}:events"
    start = last_event_id if last_event_id and _STREAM_ID.match(last_event_id) else "0"
    done_already = orjson.loads(probe.body).get("state") in TERMINAL

    async def stream():
        cursor = start
        while True:
            if await request.is_disconnected():
                return
            entries = await gw.redis.xread({key: cursor}, block=None if done_already else KEEPALIVE_MS, count=100)
            if not entries:
                if done_already:
                    return
                yield b": keep-alive\n\n"
                continue
            for _, items in entries:
                for entry_id, fields in items:
                    cursor = entry_id.decode()
                    data = fields.get(b"data", b"{}")
                    kind = orjson.loads(data).get("type", "progress")
                    yield f"id: {cursor}\nevent: {kind}\n".encode() + b"data: " + data + b"\n\n"
                    if orjson.loads(data).get("state") in TERMINAL:
                        return
            if done_already:
                return

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})
