"""The training scheduler's internal HTTP API: jobs (for the gateway) and the worker protocol (for workers).
Every route needs the internal token."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Response

from libs.kit.http import Caller, problems
from services.training_scheduler import domain
from services.training_scheduler.handlers import TrainingHandlers
from services.training_scheduler.schemas import (
    CancelIn,
    ClaimIn,
    ClaimOut,
    CompleteIn,
    FailIn,
    HeartbeatOut,
    JobListQuery,
    LeaseIn,
    ProgressIn,
    ReleaseIn,
    TrainingJobCreate,
    TrainingJobOut,
    TrainingJobPage,
)


def job_out(job: domain.Job) -> TrainingJobOut:
    return TrainingJobOut(
        job_id=job.id, model_id=job.model_id, state=job.state, pool=job.pool, attempt=job.attempt,  # type: ignore[arg-type]
        failures=job.failures, max_attempts=job.max_attempts, spec=job.spec, worker=job.worker, device=job.device,
        heartbeat_at=job.heartbeat_at, next_attempt_at=job.next_attempt_at, checkpoint_epoch=job.checkpoint_epoch,
        progress=job.progress, result=job.result, last_error=job.last_error, cancel_reason=job.cancel_reason,
        created_by=job.created_by, created_at=job.created_at, updated_at=job.updated_at, started_at=job.started_at,
        finished_at=job.finished_at,
    )


def build_router(handlers: TrainingHandlers, caller_dep) -> APIRouter:
    router = APIRouter(prefix="/internal", tags=["training"])
    CallerDep = Annotated[Caller, Depends(caller_dep)]

    @router.post("/models/{model_ref}/training-jobs", status_code=201, response_model=TrainingJobOut,
                 responses=problems(404, 422, 502))
    async def create_job(model_ref: str, body: TrainingJobCreate, caller: CallerDep, response: Response) -> TrainingJobOut:
        job = await handlers.create(model_ref, body, caller)
        response.headers["Location"] = f"/api/v1/training-jobs/{job.id}"
        return job_out(job)

    @router.get("/models/{model_ref}/training-jobs", response_model=TrainingJobPage, responses=problems(404))
    async def list_jobs(model_ref: str, caller: CallerDep, query: Annotated[JobListQuery, Depends()]) -> TrainingJobPage:
        total, jobs = await handlers.list_for_model(
            model_ref, caller, state=query.state.value if query.state else None, page=query.page,
            page_size=query.page_size)
        return TrainingJobPage(total=total, page=query.page, page_size=query.page_size, jobs=[job_out(j) for j in jobs])

    @router.get("/training-jobs/{job_id}", response_model=TrainingJobOut, responses=problems(404))
    async def get_job(job_id: UUID, caller: CallerDep) -> TrainingJobOut:
        return job_out(await handlers.get(job_id))

    @router.post("/training-jobs/{job_id}/cancel", response_model=TrainingJobOut, responses=problems(404, 409))
    async def cancel_job(job_id: UUID, caller: CallerDep, body: CancelIn | None = None) -> TrainingJobOut:
        """Queued or running → cancelled (TrainingCancelled); a running worker stops at its next heartbeat."""
        return job_out(await handlers.cancel(job_id, body.reason if body else "", caller))

    # -- worker protocol -------------------------------------------------------------------------------

    @router.post("/training-jobs/{job_id}/claim", response_model=ClaimOut, responses=problems(404, 409))
    async def claim(job_id: UUID, body: ClaimIn, caller: CallerDep) -> ClaimOut:
        """Win the job for an attempt (TrainingStarted), or 409: acknowledge the job message and skip it."""
        claimed = await handlers.claim(job_id, body, caller)
        job = claimed.job
        assert job.lease_id is not None and job.device is not None
        return ClaimOut(
            lease_id=job.lease_id, job_id=job.id, model_id=job.model_id, attempt=job.attempt, spec=job.spec,
            checkpoint_key=job.checkpoint_key, resume=claimed.resume, resumed_from_epoch=claimed.resumed_from_epoch,
            device=job.device, requested_by=job.created_by,
            heartbeat_timeout_s=handlers.policy.heartbeat_timeout.total_seconds(),
        )

    @router.post("/training-jobs/{job_id}/heartbeat", response_model=HeartbeatOut, responses=problems(404, 409))
    async def heartbeat(job_id: UUID, body: LeaseIn, caller: CallerDep) -> HeartbeatOut:
        return HeartbeatOut(cancel=await handlers.heartbeat(job_id, body.lease_id, caller))

    @router.post("/training-jobs/{job_id}/progress", response_model=HeartbeatOut, responses=problems(404, 409, 422))
    async def progress(job_id: UUID, body: ProgressIn, caller: CallerDep) -> HeartbeatOut:
        """An epoch report (TrainingProgress and the live stream); also refreshes the lease."""
        return HeartbeatOut(cancel=await handlers.progress(job_id, body, caller))

    @router.post("/training-jobs/{job_id}/complete", response_model=TrainingJobOut, responses=problems(404, 409, 422))
    async def complete(job_id: UUID, body: CompleteIn, caller: CallerDep) -> TrainingJobOut:
        return job_out(await handlers.complete(job_id, body, caller))

    @router.post("/training-jobs/{job_id}/fail", response_model=TrainingJobOut, responses=problems(404, 409, 422))
    async def fail(job_id: UUID, body: FailIn, caller: CallerDep) -> TrainingJobOut:
        """The attempt failed: queued again after the back-off, or failed for good and dead-lettered."""
        return job_out(await handlers.fail(job_id, body, caller))

    @router.post("/training-jobs/{job_id}/release", response_model=TrainingJobOut, responses=problems(404, 409))
    async def release(job_id: UUID, body: ReleaseIn, caller: CallerDep) -> TrainingJobOut:
        """The worker shuts down mid-attempt: the job is queued again at once, without counting a failure."""
        return job_out(await handlers.release(job_id, body, caller))

    return router
