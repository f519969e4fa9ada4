"""Pure rules of training jobs: what a request may ask for, how the architecture is completed, and the
job state machine the scheduler (the single writer) applies to worker reports and to its own clock.
No I/O; the clock, ids and dataset facts are passed in.

States: ``queued`` → ``running`` → ``succeeded`` | ``failed`` | ``cancelled`` (``queued`` → ``cancelled``
too, and ``running`` → ``queued`` when an attempt fails with attempts left or its worker shuts down).

Counting: ``attempt`` is the number of the latest claimed attempt (0 before the first claim) and names the
attempt in every event. ``failures`` counts attempts that failed (a ``fail`` report, or a worker that
stopped heartbeating); the job fails for good when ``failures`` reaches ``max_attempts``. An attempt a
worker hands back because it is shutting down (``release``) is not a failure.

Dispatch: a queued job whose ``next_attempt_at`` is ``None`` has a job message on its way to the pool; one
whose ``next_attempt_at`` is set waits (back-off) until then, and the scheduler's tick dispatches a new job
message when it is due. A message nobody claimed for ``redispatch_after`` is sent again (duplicates are
harmless: only one claim can win).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Mapping
from uuid import UUID

from pydantic import ValidationError

from libs.events.base import Event
from libs.events.training import (
    TrainingCancelled,
    TrainingCompleted,
    TrainingFailed,
    TrainingJobDispatched,
    TrainingProgress,
    TrainingRequested,
    TrainingSpec,
    TrainingStarted,
)
from libs.kit.errors import Conflict, FieldError, ValidationFailed

if TYPE_CHECKING:
    from libs.ml.trainer import Hyperparameters

# libs.ml is imported inside the functions that need it: it loads torch, and schemas.py (which the gateway
# may import for its OpenAPI) imports this module.

POOLS = ("cpu", "gpu")
MAX_REASON = 2000
HEARTBEAT_LOST = "worker stopped heartbeating"


class JobState(str, Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL = frozenset({JobState.succeeded, JobState.failed, JobState.cancelled})


def checkpoint_key(job_id: UUID) -> str:
    """Where workers keep the latest checkpoint of a job in the object store."""
    return f"checkpoints/training/{job_id}/latest.ckpt"


# --------------------------------------------------------------------------------------------------
# Requests: hyperparameters, dataset and architecture
# --------------------------------------------------------------------------------------------------


def _invalid(field_name: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field_name}: {message}", errors=[FieldError(field_name, message)])


def validate_hyperparameters(raw: Mapping[str, Any], *, pool: str) -> Hyperparameters:
    """Check ``raw`` with :class:`libs.ml.trainer.Hyperparameters`; errors name ``hyperparameters.<field>``."""
    from libs.ml.trainer import Hyperparameters

    try:
        hp = Hyperparameters.model_validate(dict(raw))
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            message = "unknown hyperparameter" if err["type"] == "extra_forbidden" else err["msg"]
            errors.append(FieldError(f"hyperparameters.{where}" if where else "hyperparameters",
                                     message.removeprefix("Value error, ")))
        first = errors[0]
        raise ValidationFailed(f"{first.field}: {first.message}", errors=errors) from None
    if pool == "cpu" and hp.device == "cuda":
        raise _invalid("hyperparameters.device", "a cpu-pool job cannot train on cuda; use pool gpu or device auto")
    return hp


def check_dataset(dataset: str, model_type: str) -> None:
    """The dataset exists and can feed a model of ``model_type``."""
    from libs.ml.datasets import COMPATIBLE_MODEL_TYPES, DATASETS
    from libs.ml.zoo import SUPPORTED_TYPES

    if dataset not in DATASETS:
        raise _invalid("dataset", f"unknown dataset {dataset!r}; available: {list(DATASETS)}")
    if model_type not in SUPPORTED_TYPES:
        raise _invalid("dataset", f"{model_type} models cannot be trained; trainable types: {list(SUPPORTED_TYPES)}")
    fits = COMPATIBLE_MODEL_TYPES[dataset]
    if model_type not in fits:
        raise _invalid("dataset", f"dataset {dataset!r} cannot feed a {model_type} model; it fits {list(fits)}")


# Config fields the data dictates, per model type: "==" must match the data exactly, ">=" must be at least
# what the data needs (a wider head or vocabulary still trains).
DATA_FIELDS: dict[str, dict[str, str]] = {
    "vision": {"image_size": "==", "image_channels": "==", "num_classes": ">="},
    "audio": {"n_features": "==", "num_classes": ">="},
    "transformer": {"vocab_size": ">=", "max_seq_len": ">=", "num_classes": ">="},
    "classification": {"input_dim": "==", "num_classes": ">="},
    "regression": {"input_dim": "==", "output_dim": "=="},
}
_ZOO_FIELD = re.compile(r"metadata\.(\w+)")


def complete_architecture(
    model_type: str, metadata: Mapping[str, Any], suggested: Mapping[str, Any], *, dataset: str
) -> dict[str, Any]:
    """The zoo config a job trains: the model's typed metadata, with the fields it leaves out taken from
    ``suggested`` (``libs.ml.datasets.suggest_config`` for the dataset). Fields the data dictates must agree
    with it; the result is resolved by the zoo (defaults filled in, descriptive keys dropped).
    Raises ``ValidationFailed`` naming ``metadata.<field>``."""
    from libs.ml.zoo import ModelConfigError, resolve_config

    given = {k: v for k, v in metadata.items() if v is not None}
    for name, rule in DATA_FIELDS.get(model_type, {}).items():
        if name not in given or name not in suggested:
            continue
        value, needed = given[name], suggested[name]
        if isinstance(value, bool) or not isinstance(value, int):
            continue  # the zoo names the type error below
        if (rule == "==" and value != needed) or (rule == ">=" and value < needed):
            relation = "" if rule == "==" else "at least "
            raise _invalid(f"metadata.{name}", f"the model says {value} but dataset {dataset!r} needs {relation}{needed}")
    merged = {**suggested, **given}
    try:
        return resolve_config(model_type, merged)
    except ModelConfigError as exc:
        match = _ZOO_FIELD.search(str(exc))
        raise _invalid(f"metadata.{match.group(1)}" if match else "metadata", str(exc)) from None


def check_monitor(hp: Hyperparameters, task: str) -> None:
    if task == "regression" and hp.monitor == "val_accuracy":
        raise _invalid("hyperparameters.monitor", "val_accuracy needs a classification dataset; use val_loss")


def resolve_device(requested: str, offered: str) -> str:
    """The device an attempt runs on: ``cpu`` when the job asks for it, else what the worker has."""
    return "cpu" if requested == "cpu" else offered


# --------------------------------------------------------------------------------------------------
# The job aggregate
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """The scheduler's timing rules (from its settings)."""

    heartbeat_timeout: timedelta
    retry_backoff_s: float
    retry_backoff_max_s: float = 300.0
    redispatch_after: timedelta = timedelta(minutes=10)

    def backoff(self, failures: int) -> timedelta:
        """Wait before the attempt after the ``failures``-th failure: base · 2^(failures-1), capped."""
        seconds = self.retry_backoff_s * (2 ** max(failures - 1, 0))
        return timedelta(seconds=min(seconds, self.retry_backoff_max_s))


@dataclass(frozen=True)
class Job:
    id: UUID
    model_id: UUID
    pool: str
    spec: TrainingSpec
    max_attempts: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    state: JobState = JobState.queued
    attempt: int = 0
    failures: int = 0
    lease_id: UUID | None = None
    worker: str | None = None
    device: str | None = None
    heartbeat_at: datetime | None = None
    next_attempt_at: datetime | None = None
    dispatched_at: datetime | None = None
    checkpoint_epoch: int = 0
    progress: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    last_error: str | None = None
    cancel_reason: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def checkpoint_key(self) -> str:
        return checkpoint_key(self.id)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def lease_expired(self, now: datetime, timeout: timedelta) -> bool:
        return self.heartbeat_at is None or now - self.heartbeat_at > timeout


@dataclass(frozen=True)
class Outcome:
    """What a decision changes: the job, the events for ``cairn.training.v1``, at most one job message for
    the pool's topic, a dead-letter reason (the job message then goes to ``cairn.dlq.training-jobs``), the
    entries for the live progress stream, and a refusal to report after the change is committed."""

    job: Job
    events: tuple[Event, ...] = ()
    dispatch: TrainingJobDispatched | None = None
    dead_letter: str | None = None
    live: tuple[dict[str, Any], ...] = ()
    refusal: str | None = None


@dataclass(frozen=True)
class Claim:
    """What a worker learns when its claim wins."""

    job: Job
    resume: bool
    resumed_from_epoch: int


def _live(job: Job, kind: str, now: datetime, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "job_id": str(job.id), "model_id": str(job.model_id), "attempt": job.attempt,
            "state": job.state.value, "ts": now.isoformat(), **fields}


def _message(job: Job, attempt: int) -> TrainingJobDispatched:
    return TrainingJobDispatched(model_id=job.model_id, job_id=job.id, pool=job.pool, attempt=attempt)  # type: ignore[arg-type]


def dead_letter_message(job: Job) -> TrainingJobDispatched:
    """The job message of the last attempt, as it goes to the dead-letter topic."""
    return _message(job, max(job.attempt, 1))


def create(
    *, job_id: UUID, model_id: UUID, pool: str, spec: TrainingSpec, max_attempts: int, actor: str, now: datetime
) -> Outcome:
    """A new queued job, its TrainingRequested and the job message of attempt 1."""
    job = Job(id=job_id, model_id=model_id, pool=pool, spec=spec, max_attempts=max_attempts, created_by=actor,
              created_at=now, updated_at=now, dispatched_at=now)
    requested = TrainingRequested(model_id=model_id, job_id=job_id, pool=pool, max_attempts=max_attempts, spec=spec)  # type: ignore[arg-type]
    return Outcome(job, events=(requested,), dispatch=_message(job, 1),
                   live=(_live(job, "queued", now, pool=pool, max_attempts=max_attempts),))


def _fail_attempt(job: Job, reason: str, now: datetime, policy: Policy, *, retry_now: bool = False) -> Outcome:
    """One attempt failed: queue the next one after the back-off, or fail the job for good."""
    reason = reason[:MAX_REASON] or "unknown failure"
    failures = job.failures + 1
    base = dict(failures=failures, lease_id=None, heartbeat_at=None, last_error=reason, updated_at=now)
    if failures >= job.max_attempts:
        failed = replace(job, **base, state=JobState.failed, finished_at=now)
        event = TrainingFailed(model_id=job.model_id, job_id=job.id, attempt=job.attempt, reason=reason, final=True)
        return Outcome(failed, events=(event,), dead_letter=reason,
                       live=(_live(failed, "failed", now, reason=reason, final=True),))
    retry_at = now if retry_now else now + policy.backoff(failures)
    queued = replace(job, **base, state=JobState.queued, next_attempt_at=retry_at)
    event = TrainingFailed(model_id=job.model_id, job_id=job.id, attempt=job.attempt, reason=reason, final=False,
                           retry_at=retry_at)
    return Outcome(queued, events=(event,),
                   live=(_live(queued, "failed", now, reason=reason, final=False, retry_at=retry_at.isoformat()),))


def claim(
    job: Job, *, worker: str, device: str, lease_id: UUID, now: datetime, policy: Policy
) -> tuple[Outcome, Claim | None]:
    """A worker holding a job message asks to run it.

    Wins when the job is queued and not backing off, or running under a lease whose heartbeat expired (the
    earlier attempt counts as failed; if that was the last one the job fails and the claim is refused).
    Otherwise the outcome carries a refusal: the worker acknowledges its message and skips it.
    """
    if job.terminal:
        return Outcome(job, refusal=f"job is {job.state.value}"), None
    prefix: Outcome | None = None
    if job.state is JobState.running:
        if not job.lease_expired(now, policy.heartbeat_timeout):
            return Outcome(job, refusal=f"job is running under a live lease (worker {job.worker})"), None
        prefix = _fail_attempt(job, HEARTBEAT_LOST, now, policy, retry_now=True)
        if prefix.job.state is JobState.failed:
            return replace(prefix, refusal="job failed: its last attempt stopped heartbeating"), None
        job = prefix.job
    elif job.next_attempt_at is not None and job.next_attempt_at > now:
        return Outcome(job, refusal=f"the next attempt is not due before {job.next_attempt_at.isoformat()}"), None
    resume = job.checkpoint_epoch > 0
    running = replace(
        job, state=JobState.running, attempt=job.attempt + 1, lease_id=lease_id, worker=worker, device=device,
        heartbeat_at=now, next_attempt_at=None, started_at=job.started_at or now, updated_at=now,
    )
    resumed_from = job.checkpoint_epoch if resume else 0
    started = TrainingStarted(model_id=job.model_id, job_id=job.id, attempt=running.attempt, worker=worker,
                              device=device, resumed_from_epoch=resumed_from)
    live = _live(running, "started", now, worker=worker, device=device, resumed_from_epoch=resumed_from)
    events = (prefix.events if prefix else ()) + (started,)
    lives = (prefix.live if prefix else ()) + (live,)
    return Outcome(running, events=events, live=lives), Claim(running, resume, resumed_from)


class StaleLease(Conflict):
    """The lease is not the job's current one: another attempt owns the job, or it was handed back."""

    code = "stale_lease"
    title = "Stale lease"


class ClaimRefused(Conflict):
    """The job cannot be claimed now (finished, cancelled, running under a live lease, backing off)."""

    code = "claim_refused"
    title = "Claim refused"


def _check_lease(job: Job, lease_id: UUID) -> None:
    if job.lease_id != lease_id:
        raise StaleLease(f"lease {lease_id} is not the current lease of job {job.id}")
    if job.state not in (JobState.running, JobState.cancelled):
        raise StaleLease(f"job {job.id} is {job.state.value}")


def heartbeat(job: Job, *, lease_id: UUID, now: datetime) -> tuple[Outcome, bool]:
    """Refresh the lease; returns whether the worker should stop (the job was cancelled)."""
    _check_lease(job, lease_id)
    if job.state is JobState.cancelled:
        return Outcome(job), True
    return Outcome(replace(job, heartbeat_at=now, updated_at=now)), False


def progress(job: Job, *, lease_id: UUID, report: Mapping[str, Any], now: datetime) -> tuple[Outcome, bool]:
    """One epoch finished (and, when ``checkpoint_epoch`` is set, its checkpoint is stored)."""
    _check_lease(job, lease_id)
    if job.state is JobState.cancelled:
        return Outcome(job), True
    epoch_fields = ("epoch", "epochs", "train_loss", "val_loss", "val_accuracy", "samples_per_second", "learning_rate")
    fields = {k: report.get(k) for k in epoch_fields}
    checkpoint_epoch = report.get("checkpoint_epoch")
    updated = replace(
        job, heartbeat_at=now, updated_at=now, progress={**fields, "elapsed_s": report.get("elapsed_s")},
        checkpoint_epoch=max(job.checkpoint_epoch, checkpoint_epoch or 0),
    )
    event = TrainingProgress(model_id=job.model_id, job_id=job.id, attempt=job.attempt, **fields)
    metrics = {k: fields[k] for k in ("val_loss", "val_accuracy") if fields[k] is not None}
    live = _live(updated, "progress", now, **fields, metrics=metrics)
    return Outcome(updated, events=(event,), live=(live,)), False


def complete(job: Job, *, lease_id: UUID, result: Mapping[str, Any], now: datetime) -> Outcome:
    """The attempt produced a version: the job succeeded."""
    _check_lease(job, lease_id)
    if job.state is JobState.cancelled:
        raise Conflict(f"job {job.id} was cancelled")
    done = replace(job, state=JobState.succeeded, result=dict(result), finished_at=now, updated_at=now, heartbeat_at=now)
    event = TrainingCompleted(model_id=job.model_id, job_id=job.id, attempt=job.attempt, **result)
    live = _live(done, "completed", now, version=result["version"], version_id=str(result["version_id"]),
                 metrics=result["metrics"], epochs_run=result["epochs_run"])
    return Outcome(done, events=(event,), live=(live,))


def fail(job: Job, *, lease_id: UUID, reason: str, now: datetime, policy: Policy) -> Outcome:
    """The attempt failed; retry after the back-off or fail the job (dead-lettered)."""
    _check_lease(job, lease_id)
    if job.state is JobState.cancelled:
        raise Conflict(f"job {job.id} was cancelled")
    return _fail_attempt(job, reason, now, policy)


def release(job: Job, *, lease_id: UUID, reason: str, now: datetime) -> Outcome:
    """The worker stops (shutdown) without a result: queue the job again at once; not a failure."""
    _check_lease(job, lease_id)
    if job.state is JobState.cancelled:
        return Outcome(job)
    reason = (reason or f"worker {job.worker} shut down")[:MAX_REASON]
    queued = replace(job, state=JobState.queued, lease_id=None, heartbeat_at=None, next_attempt_at=now, updated_at=now)
    event = TrainingFailed(model_id=job.model_id, job_id=job.id, attempt=job.attempt, reason=f"released: {reason}",
                           final=False, retry_at=now)
    live = _live(queued, "released", now, reason=reason)
    return Outcome(queued, events=(event,), live=(live,))


def cancel(job: Job, *, reason: str, now: datetime) -> Outcome:
    """Queued or running → cancelled. A running worker learns it from its next heartbeat."""
    if job.terminal:
        raise Conflict(f"job {job.id} is already {job.state.value}", extra={"state": job.state.value})
    done = replace(job, state=JobState.cancelled, cancel_reason=reason, finished_at=now, updated_at=now,
                   next_attempt_at=None)
    event = TrainingCancelled(model_id=job.model_id, job_id=job.id, reason=reason)
    return Outcome(done, events=(event,), live=(_live(done, "cancelled", now, reason=reason),))


def expire(job: Job, *, now: datetime, policy: Policy) -> Outcome | None:
    """Tick: a running job whose worker stopped heartbeating loses its attempt."""
    if job.state is not JobState.running or not job.lease_expired(now, policy.heartbeat_timeout):
        return None
    return _fail_attempt(job, HEARTBEAT_LOST, now, policy)


def dispatch_due(job: Job, *, now: datetime, policy: Policy) -> Outcome | None:
    """Tick: a queued job whose next attempt is due (or whose message nobody claimed for too long) gets a
    job message for attempt ``attempt + 1``."""
    if job.state is not JobState.queued:
        return None
    if job.next_attempt_at is not None:
        due = job.next_attempt_at <= now
    else:
        due = job.dispatched_at is None or now - job.dispatched_at >= policy.redispatch_after
    if not due:
        return None
    sent = replace(job, next_attempt_at=None, dispatched_at=now, updated_at=now)
    return Outcome(sent, dispatch=_message(sent, job.attempt + 1))


__all__ = [
    "Claim", "ClaimRefused", "DATA_FIELDS", "HEARTBEAT_LOST", "Job", "JobState", "Outcome", "POOLS", "Policy", "StaleLease",
    "TERMINAL", "cancel", "check_dataset", "check_monitor", "checkpoint_key", "claim", "complete",
    "complete_architecture", "create", "dead_letter_message", "dispatch_due", "expire", "fail", "heartbeat",
    "progress", "release", "resolve_device", "validate_hyperparameters",
]
