"""One function per command or event: open a unit of work, lock the job, decide with the domain, store,
emit (training events, job messages, dead letters), commit; then write the live progress entries."""
from __future__ import annotations

import asyncio
import functools
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from uuid import UUID, uuid4

from libs.events import topics
from libs.events.envelope import Envelope
from libs.events.models import ModelDeleted
from libs.events.training import TrainingSpec
from libs.kit.errors import FieldError, NotFound, ValidationFailed
from libs.kit.http import Caller
from libs.kit.uow import UnitOfWork
from libs.ml.datasets import load_dataset, suggest_config
from services.training_scheduler import domain, store
from services.training_scheduler.clients import RegistryClient, VersionClient
from services.training_scheduler.live import LiveProgress
from services.training_scheduler.schemas import (
    ClaimIn,
    CompleteIn,
    FailIn,
    ProgressIn,
    ReleaseIn,
    TrainingJobCreate,
)
from services.training_scheduler.settings import TrainingSchedulerSettings

log = logging.getLogger(__name__)

SOURCE = "training-scheduler"
DEAD_LETTER_GROUP = "training-jobs"
DEAD_LETTER_TOPIC = topics.dead_letters(DEAD_LETTER_GROUP)
JOB_TOPICS = tuple(topics.training_jobs(pool) for pool in domain.POOLS)
TICK_BATCH = 100


def _now() -> datetime:
    return datetime.now(timezone.utc)


@functools.lru_cache(maxsize=32)
def _dataset_profile(dataset: str, model_type: str) -> tuple[dict[str, Any], str]:
    """The zoo config ``suggest_config`` proposes for the dataset, and its task (cached: datasets are fixed)."""
    loaded = load_dataset(dataset, for_model_type=model_type)
    return suggest_config(model_type, loaded), loaded.task


async def dataset_profile(dataset: str, model_type: str) -> tuple[dict[str, Any], str]:
    suggested, task = await asyncio.to_thread(_dataset_profile, dataset, model_type)
    return dict(suggested), task


def parse_model_ref(ref: str) -> UUID | None:
    try:
        return UUID(ref)
    except ValueError:
        return None


class TrainingHandlers:
    def __init__(
        self,
        runtime,
        settings: TrainingSchedulerSettings,
        *,
        registry: RegistryClient,
        versions: VersionClient,
        live: LiveProgress,
    ) -> None:
        self.rt = runtime
        self.settings = settings
        self.registry = registry
        self.versions = versions
        self.live = live
        self.policy = domain.Policy(
            heartbeat_timeout=timedelta(seconds=settings.heartbeat_timeout_s),
            retry_backoff_s=settings.retry_backoff_s,
            retry_backoff_max_s=settings.retry_backoff_max_s,
            redispatch_after=timedelta(seconds=settings.redispatch_after_s),
        )

    def _uow(self, caller: Caller) -> UnitOfWork:
        return UnitOfWork(self.rt.pool, store.SCHEMA, source=SOURCE, actor=caller.actor, traceparent=caller.traceparent)

    async def _apply(self, uow: UnitOfWork, outcome: domain.Outcome, *, before: domain.Job | None = None,
                     new: bool = False) -> None:
        """Store the job and put every event and message of the outcome in the outbox."""
        job = outcome.job
        if new:
            await store.insert(uow.conn, job)
        elif job != before:
            await store.save(uow.conn, job)
        for event in outcome.events:
            await uow.emit(event)
        if outcome.dispatch is not None:
            await store.emit_to(uow, outcome.dispatch, topic=topics.training_jobs(job.pool))
        if outcome.dead_letter is not None:
            await store.emit_to(
                uow, domain.dead_letter_message(job), topic=DEAD_LETTER_TOPIC,
                headers={
                    "dlq_reason": outcome.dead_letter,
                    "dlq_topic": topics.training_jobs(job.pool),
                    "dlq_consumer": SOURCE,
                    "dlq_job_id": str(job.id),
                    "dlq_attempts": str(job.attempt),
                },
            )
            log.warning("training job dead-lettered", extra={"job_id": str(job.id), "reason": outcome.dead_letter})

    async def _on_job(self, job_id: UUID, caller: Caller, decide: Callable[[domain.Job], Any]) -> Any:
        """Lock the job, let ``decide`` return an Outcome (or ``(Outcome, extra)``), apply it, commit, then
        publish live entries and raise a refusal the outcome carries (after its changes are committed)."""
        async with self._uow(caller) as uow:
            job = await store.get(uow.conn, job_id, lock=True)
            if job is None:
                raise NotFound(f"training job {job_id} not found")
            decided = decide(job)
            outcome, extra = decided if isinstance(decided, tuple) else (decided, None)
            await self._apply(uow, outcome, before=job)
        await self.live.publish(outcome.live)
        if outcome.refusal:
            raise domain.ClaimRefused(outcome.refusal, extra={"state": outcome.job.state.value})
        return outcome.job, extra

    # -- jobs ----------------------------------------------------------------------------------------

    async def create(self, model_ref: str, body: TrainingJobCreate, caller: Caller) -> domain.Job:
        model = await self.registry.model(model_ref, caller)
        model_id, model_type = UUID(str(model["model_id"])), str(model["type"])
        hp = domain.validate_hyperparameters(body.hyperparameters, pool=body.pool)
        domain.check_dataset(body.dataset, model_type)
        suggested, task = await dataset_profile(body.dataset, model_type)
        domain.check_monitor(hp, task)
        architecture = domain.complete_architecture(model_type, model.get("metadata") or {}, suggested,
                                                    dataset=body.dataset)
        if body.parent_version is not None:
            exists = await self.versions.version_exists(str(model_id), body.parent_version, caller)
            if exists is False:
                message = f"model has no version {body.parent_version!r}"
                raise ValidationFailed(f"parent_version: {message}", errors=[FieldError("parent_version", message)])
        spec = TrainingSpec(
            dataset=body.dataset, dataset_seed=body.dataset_seed, hyperparameters=hp.model_dump(mode="json"),
            model_type=model_type, architecture=architecture, parent_version=body.parent_version, bump=body.bump,
        )
        outcome = domain.create(
            job_id=uuid4(), model_id=model_id, pool=body.pool, spec=spec,
            max_attempts=body.max_attempts or self.settings.max_attempts_default, actor=caller.actor, now=_now(),
        )
        async with self._uow(caller) as uow:
            await self._apply(uow, outcome, new=True)
        await self.live.publish(outcome.live)
        log.info("training job queued", extra={"job_id": str(outcome.job.id), "model_id": str(model_id),
                                               "pool": body.pool})
        return outcome.job

    async def get(self, job_id: UUID) -> domain.Job:
        job = await store.get(self.rt.pool, job_id)
        if job is None:
            raise NotFound(f"training job {job_id} not found")
        return job

    async def list_for_model(self, model_ref: str, caller: Caller, *, state: str | None, page: int,
                             page_size: int) -> tuple[int, list[domain.Job]]:
        model_id = parse_model_ref(model_ref)
        if model_id is None:  # a name: the registry knows which model it is now
            model_id = UUID(str((await self.registry.model(model_ref, caller))["model_id"]))
        return await store.list_for_model(self.rt.pool, model_id, state=state, limit=page_size,
                                          offset=(page - 1) * page_size)

    async def cancel(self, job_id: UUID, reason: str, caller: Caller) -> domain.Job:
        reason = reason or f"cancelled by {caller.actor}"
        job, _ = await self._on_job(job_id, caller, lambda j: domain.cancel(j, reason=reason, now=_now()))
        return job

    # -- the worker protocol -------------------------------------------------------------------------

    async def claim(self, job_id: UUID, body: ClaimIn, caller: Caller) -> domain.Claim:
        def decide(job: domain.Job):
            device = domain.resolve_device(str(job.spec.hyperparameters.get("device", "auto")), body.device)
            return domain.claim(job, worker=body.worker, device=device, lease_id=uuid4(), now=_now(),
                                policy=self.policy)

        _, claimed = await self._on_job(job_id, caller, decide)
        log.info("training attempt claimed", extra={"job_id": str(job_id), "attempt": claimed.job.attempt,
                                                    "worker": body.worker, "message_attempt": body.attempt,
                                                    "resume": claimed.resume})
        return claimed

    async def heartbeat(self, job_id: UUID, lease_id: UUID, caller: Caller) -> bool:
        _, cancel = await self._on_job(job_id, caller, lambda j: domain.heartbeat(j, lease_id=lease_id, now=_now()))
        return cancel

    async def progress(self, job_id: UUID, body: ProgressIn, caller: Caller) -> bool:
        report = body.model_dump(exclude={"lease_id"})
        _, cancel = await self._on_job(
            job_id, caller, lambda j: domain.progress(j, lease_id=body.lease_id, report=report, now=_now()))
        return cancel

    async def complete(self, job_id: UUID, body: CompleteIn, caller: Caller) -> domain.Job:
        result = body.model_dump(mode="json", exclude={"lease_id"})
        job, _ = await self._on_job(
            job_id, caller, lambda j: domain.complete(j, lease_id=body.lease_id, result=result, now=_now()))
        return job

    async def fail(self, job_id: UUID, body: FailIn, caller: Caller) -> domain.Job:
        job, _ = await self._on_job(
            job_id, caller,
            lambda j: domain.fail(j, lease_id=body.lease_id, reason=body.reason, now=_now(), policy=self.policy))
        return job

    async def release(self, job_id: UUID, body: ReleaseIn, caller: Caller) -> domain.Job:
        job, _ = await self._on_job(
            job_id, caller, lambda j: domain.release(j, lease_id=body.lease_id, reason=body.reason, now=_now()))
        return job

    # -- the clock -----------------------------------------------------------------------------------

    async def tick(self) -> int:
        """(b) running attempts whose heartbeat expired lose their attempt; (a) due queued jobs get a job
        message. Rows are locked with SKIP LOCKED, so several scheduler processes can tick at once."""
        system = Caller(actor="system", role="system", traceparent=None)
        changed = 0
        now = _now()
        async with self._uow(system) as uow:
            outcomes = [
                (job, domain.expire(job, now=now, policy=self.policy))
                for job in await store.lease_expired(uow.conn, heartbeat_before=now - self.policy.heartbeat_timeout,
                                                     limit=TICK_BATCH)
            ]
            for job, outcome in outcomes:
                if outcome is not None:
                    await self._apply(uow, outcome, before=job)
        lost = [o for _, o in outcomes if o is not None]
        for outcome in lost:
            await self.live.publish(outcome.live)
            log.warning("training attempt lost its worker", extra={
                "job_id": str(outcome.job.id), "attempt": outcome.job.attempt, "state": outcome.job.state.value})
        changed += len(lost)
        now = _now()
        async with self._uow(system) as uow:
            due = await store.due_for_dispatch(uow.conn, now=now, unclaimed_since=now - self.policy.redispatch_after,
                                               limit=TICK_BATCH)
            for job in due:
                outcome = domain.dispatch_due(job, now=now, policy=self.policy)
                if outcome is not None:
                    await self._apply(uow, outcome, before=job)
                    changed += 1
        return changed

    # -- events --------------------------------------------------------------------------------------

    async def on_model_deleted(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """A deleted model trains no more: its queued and running jobs are cancelled."""
        event = envelope.data
        assert isinstance(event, ModelDeleted)
        lives: list[dict[str, Any]] = []
        for job in await store.lock_active_for_model(uow.conn, event.model_id):
            outcome = domain.cancel(job, reason=f"model {event.name} was deleted", now=_now())
            await self._apply(uow, outcome, before=job)
            lives.extend(outcome.live)
        # Written before the commit (the consumer commits): a retried event writes them again, harmlessly.
        await self.live.publish(lives)
