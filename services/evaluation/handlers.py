"""One function per event or command: open a unit of work (or run in the consumer's), decide with the
domain, store, emit, commit.

Events (run inside the consumer's unit of work, after its inbox check): VersionCreated, ArtifactStored
and VersionDeleted keep the versions projection, and ArtifactStored and EvaluationRequested queue a run.
The CPU work happens later, outside any transaction (``services.evaluation.worker``), and ends in
:func:`finish_completed` or :func:`finish_failed`, which store the outcome and emit its event together.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from libs.events.envelope import Envelope
from libs.events.evaluation import EvaluationCompleted, EvaluationFailed, EvaluationRequested
from libs.events.versions import ArtifactRef, ArtifactStored, VersionCreated, VersionDeleted
from libs.kit.errors import FieldError, NotFound, UpstreamUnavailable, ValidationFailed
from libs.kit.http import Caller
from libs.kit.uow import UnitOfWork
from services.evaluation import domain, store
from services.evaluation.clients import ModelRef, Upstreams

if TYPE_CHECKING:
    from services.evaluation.measure import Measurement
    from services.evaluation.worker import RunExecutor

log = logging.getLogger(__name__)
SOURCE = "evaluation"


def _now() -> datetime:
    return datetime.now(timezone.utc)


class LeaseLost(Exception):
    """The run was taken over by another worker while this one computed; its outcome is dropped."""


# --------------------------------------------------------------------------------------------------
# Versions: projection and lookup
# --------------------------------------------------------------------------------------------------


async def resolve_version(pool, upstreams: Upstreams, model_id: UUID, version: str) -> store.VersionRow | None:
    """A live version from the projection, else from the version service (whose answer is recorded, so
    a request may name a version whose events have not arrived yet). None when it does not exist;
    UpstreamUnavailable when the version service cannot tell."""
    row = await store.find_live_version(pool, model_id, version)
    if row is not None:
        return row
    body = await upstreams.fetch_version(model_id, version)
    if body is None:
        return None
    version_id = UUID(str(body["version_id"]))
    artifact = ArtifactRef.model_validate(body["artifact"]) if body.get("artifact") else None
    created_at = datetime.fromisoformat(body["created_at"]) if body.get("created_at") else None
    await store.upsert_version(
        pool, version_id=version_id, model_id=model_id, version=body["version"], artifact=artifact, created_at=created_at,
    )
    return await store.get_version(pool, version_id)


# --------------------------------------------------------------------------------------------------
# Finishing a run (called by the worker after computing, outside the consumer)
# --------------------------------------------------------------------------------------------------


async def finish_completed(
    pool, run: store.Run, owner: str, m: "Measurement", version: store.VersionRow
) -> bool:
    """Store the measurement and emit EvaluationCompleted in one transaction. False if the lease was lost."""
    try:
        async with UnitOfWork(pool, store.SCHEMA, source=SOURCE, actor=run.actor, traceparent=run.traceparent) as uow:
            done = await store.complete(
                uow.conn, run, owner, now=_now(), version_id=version.id,
                artifact_sha256=version.artifact_sha256 or "", m=m,
            )
            if not done:
                raise LeaseLost(str(run.id))
            await uow.emit(EvaluationCompleted(
                model_id=run.model_id, version=run.version, version_id=version.id, evaluation_id=run.id,
                dataset=m.dataset, dataset_hash=m.dataset_hash, split=m.split, samples=m.samples, device=m.device,
                metrics=m.metrics,
            ))
    except LeaseLost:
        log.warning("evaluation was taken over by another worker; result dropped", extra={"evaluation_id": str(run.id)})
        return False
    return True


async def finish_failed(
    pool, run: store.Run, owner: str, reason: str, version: store.VersionRow | None = None
) -> bool:
    """Record why the run cannot be evaluated and emit EvaluationFailed in one transaction."""
    try:
        async with UnitOfWork(pool, store.SCHEMA, source=SOURCE, actor=run.actor, traceparent=run.traceparent) as uow:
            done = await store.fail(
                uow.conn, run, owner, now=_now(), reason=reason,
                version_id=version.id if version else None,
                artifact_sha256=version.artifact_sha256 if version else None,
            )
            if not done:
                raise LeaseLost(str(run.id))
            await uow.emit(EvaluationFailed(model_id=run.model_id, version=run.version, reason=reason))
    except LeaseLost:
        log.warning("evaluation was taken over by another worker; failure dropped", extra={"evaluation_id": str(run.id)})
        return False
    return True


# --------------------------------------------------------------------------------------------------
# Events and commands
# --------------------------------------------------------------------------------------------------


class EvaluationHandlers:
    def __init__(self, runtime, upstreams: Upstreams) -> None:
        self.rt = runtime
        self.upstreams = upstreams
        self.executor: "RunExecutor | None" = None  # set by the app once the executor exists

    # -- events: cairn.versions.v1 (group "evaluation") --------------------------------------------

    async def on_version_created(self, envelope: Envelope, uow: UnitOfWork) -> None:
        event: VersionCreated = envelope.data  # type: ignore[assignment]
        await store.upsert_version(
            uow.conn, version_id=event.version_id, model_id=event.model_id, version=event.version,
            artifact=event.artifact, created_at=event.created_at,
        )

    async def on_artifact_stored(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """New weights: evaluate them on the held-out split of the data they were trained on."""
        event: ArtifactStored = envelope.data  # type: ignore[assignment]
        await store.upsert_version(
            uow.conn, version_id=event.version_id, model_id=event.model_id, version=event.version, artifact=event.artifact,
        )
        await self._queue(
            uow, envelope, model_id=event.model_id, version=event.version, version_id=event.version_id,
            trigger=domain.TRIGGER_ARTIFACT, dataset=None, dataset_seed=None,
        )

    async def on_version_deleted(self, envelope: Envelope, uow: UnitOfWork) -> None:
        event: VersionDeleted = envelope.data  # type: ignore[assignment]
        await store.upsert_version(
            uow.conn, version_id=event.version_id, model_id=event.model_id, version=event.version,
            deleted_at=envelope.time,
        )

    # -- events: cairn.evaluation.v1 (group "evaluation-commands") --------------------------------

    async def on_evaluation_requested(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """A command from anyone (this service's API, the lifecycle service, a script): queue a run."""
        event: EvaluationRequested = envelope.data  # type: ignore[assignment]
        known = await store.find_live_version(uow.conn, event.model_id, event.version)
        await self._queue(
            uow, envelope, model_id=event.model_id, version=event.version, version_id=known.id if known else None,
            trigger=domain.TRIGGER_REQUEST, dataset=event.dataset, dataset_seed=event.dataset_seed,
        )

    async def _queue(
        self, uow: UnitOfWork, envelope: Envelope, *, model_id: UUID, version: str, version_id: UUID | None,
        trigger: str, dataset: str | None, dataset_seed: int | None,
    ) -> None:
        queued = await store.insert_run(
            uow.conn, evaluation_id=domain.evaluation_id_for(envelope.id), model_id=model_id, version=version,
            version_id=version_id, trigger=trigger, trigger_event_id=envelope.id, dataset=dataset,
            dataset_seed=dataset_seed, priority=domain.PRIORITY[trigger], actor=envelope.actor,
            traceparent=envelope.traceparent, now=_now(),
        )
        if queued is not None:
            await store.notify_runs(uow.conn)  # delivered at COMMIT: workers wake for committed runs only

    # -- commands: HTTP --------------------------------------------------------------------------

    async def request_evaluation(
        self, model_ref: str, version: str, *, dataset: str | None, dataset_seed: int | None, caller: Caller,
    ) -> dict[str, Any]:
        """Emit EvaluationRequested through the outbox; this service's own consumer takes it up like any
        other producer's command, so there is one path from request to EvaluationCompleted."""
        model = await self.upstreams.resolve_model(model_ref)
        try:
            known = await resolve_version(self.rt.pool, self.upstreams, model.id, version)
        except UpstreamUnavailable:
            known = None  # cannot check now; the run finds out and reports EvaluationFailed if it is missing
        else:
            if known is None:
                raise NotFound(f"version {version!r} of model {model.name!r} not found")
        if known is not None:
            version = known.version
        async with UnitOfWork(self.rt.pool, store.SCHEMA, source=SOURCE, actor=caller.actor,
                              traceparent=caller.traceparent) as uow:
            envelope = await uow.emit(EvaluationRequested(
                model_id=model.id, version=version, dataset=dataset, dataset_seed=dataset_seed,
            ))
        return {
            "evaluation_id": domain.evaluation_id_for(envelope.id), "request_id": envelope.id, "model_id": model.id,
            "version": version, "dataset": dataset, "dataset_seed": dataset_seed, "state": "requested",
        }

    async def list_evaluations(self, model_ref: str, version: str, limit: int) -> tuple[ModelRef, str, list[store.Run]]:
        model = await self.upstreams.resolve_model(model_ref)
        runs = await store.list_for_version(self.rt.pool, model.id, version, limit)
        if not runs:
            known = await resolve_version(self.rt.pool, self.upstreams, model.id, version)
            if known is None:
                raise NotFound(f"version {version!r} of model {model.name!r} not found")
            if known.version != version:  # an alias the version service resolved
                version = known.version
                runs = await store.list_for_version(self.rt.pool, model.id, version, limit)
        return model, version, runs

    async def get_evaluation(self, evaluation_id: UUID) -> store.Run:
        run = await store.get_run(self.rt.pool, evaluation_id)
        if run is None:
            raise NotFound(f"evaluation {evaluation_id} not found")
        return run

    async def compare(self, body, caller: Caller) -> tuple[dict[str, Any], dict[str, Any]]:
        """Compare the latest evaluations of two versions, evaluating any that has none yet; stored."""
        sides = []
        for field in domain.SIDES:
            ref = getattr(body, field)
            model = await self.upstreams.resolve_model(ref.model_id)
            sides.append(await self._side(field, model, ref.version, caller))
        comparison_id, now = uuid4(), _now()
        result, report = domain.assemble_comparison(
            comparison_id, sides[0], sides[1], wanted=body.metrics, created_at=now, created_by=caller.actor,
        )
        await store.insert_comparison(
            self.rt.pool, comparison_id, created_at=now, created_by=caller.actor, result=result, report=report,
        )
        return result, report

    async def _side(self, field: str, model: ModelRef, version: str, caller: Caller) -> domain.Side:
        known = await resolve_version(self.rt.pool, self.upstreams, model.id, version)
        if known is None:
            raise NotFound(f"{field}: version {version!r} of model {model.name!r} not found",
                           errors=[FieldError(f"{field}.version", "not found")])
        run = await store.latest_completed(self.rt.pool, model.id, known.version, known.id)
        if run is None:
            if not known.artifact_sha256:
                raise ValidationFailed(
                    f"{field}: version {known.version} of model {model.name!r} has no weights to evaluate",
                    errors=[FieldError(f"{field}.version", "has no stored weights")],
                )
            assert self.executor is not None
            run = await self.executor.evaluate_now(known, actor=caller.actor, traceparent=caller.traceparent)
            if run.state != domain.COMPLETED:
                raise ValidationFailed(
                    f"{field}: version {known.version} of model {model.name!r} could not be evaluated: {run.reason}",
                    errors=[FieldError(f"{field}.version", run.reason or "evaluation failed")],
                )
        return domain.Side(
            model_id=model.id, model_name=model.name, version=run.version, version_id=run.version_id,
            evaluation_id=run.id, evaluated_at=run.finished_at, model_type=run.model_type, config=run.config or {},
            hyperparameters=run.hyperparameters or {}, metrics=run.metrics or {}, structure=run.structure,
            dataset=run.dataset, dataset_seed=run.dataset_seed, dataset_hash=run.dataset_hash,
        )

    async def get_comparison(self, comparison_id: UUID):
        row = await store.get_comparison(self.rt.pool, comparison_id)
        if row is None:
            raise NotFound(f"comparison {comparison_id} not found")
        return row
