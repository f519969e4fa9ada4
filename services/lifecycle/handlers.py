"""The lifecycle's use cases: one method per HTTP command or consumed event. Each opens a unit of work
(or runs in the consumer's), locks the (model, environment) slot it changes, decides with
``services.lifecycle.domain``, stores, emits, commits — and after COMMIT invalidates the cached
production view (the ``lifecycle-cache`` consumer repairs the cache from the events if a process dies
in between).

Rollback commands arrive as RollbackRequested on Kafka (from the gateway or any producer). Their effect,
their events and their recorded outcome (``commands`` table) share the consumer's transaction with its
inbox row, so a command is answered exactly once even if the process dies half-way.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any
from uuid import UUID, uuid4

from libs.events.envelope import Envelope
from libs.events.evaluation import EvaluationCompleted
from libs.events.lifecycle import (
    PromotionDecided,
    PromotionPolicySet,
    RollbackFailed,
    RollbackRequested,
    RolloutUpdated,
    VersionArchived,
    VersionDemoted,
    VersionDeprecated,
    VersionPromoted,
    VersionRolledBack,
)
from libs.events.models import ModelDeleted, ModelState
from libs.events.versions import ArtifactStored, VersionCreated, VersionDeleted
from libs.kit.errors import CairnError, Conflict, FieldError, NotFound, UpstreamUnavailable, ValidationFailed
from libs.kit.http import Caller
from libs.kit.uow import UnitOfWork
from libs.storage.cas import ContentAddressedStore
from libs.storage.port import ObjectNotFound
from services.lifecycle import domain, store
from services.lifecycle.cache import ProductionCache
from services.lifecycle.directory import Directory, LookupUnavailable
from services.lifecycle.policy import PromotionPolicy, decide
from services.lifecycle.schemas import (
    ArtifactOut,
    CommandOut,
    DeploymentOut,
    DeprecateOut,
    ProductionView,
    PublishIn,
    PublishOut,
    RolloutOut,
    StageOut,
    TransitionOut,
)

log = logging.getLogger(__name__)
SOURCE = "lifecycle"

_EVENT_CLASSES = {
    domain.PROMOTED: VersionPromoted, domain.DEMOTED: VersionDemoted,
    domain.ARCHIVED: VersionArchived, domain.DEPRECATED: VersionDeprecated,
}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _as_uuid(ref: str | UUID) -> UUID | None:
    if isinstance(ref, UUID):
        return ref
    try:
        return UUID(ref)
    except ValueError:
        return None


class _Retry(Exception):
    """A transient failure inside a consumer: not a CairnError, so the consumer retries instead of
    dead-lettering."""


def rollout_out(r: domain.Rollout, artifact: dict[str, Any] | None = None) -> RolloutOut:
    return RolloutOut(
        rollout_id=r.id, model_id=r.model_id, environment=r.environment, kind=r.kind, status=r.status,
        stable_version=r.stable_version, candidate_version=r.candidate_version,
        candidate_version_id=r.candidate_version_id,
        candidate_artifact=ArtifactOut(**artifact) if artifact else None, steps=r.steps, step=r.step,
        weights=r.weights(), step_interval_s=r.step_interval_s, next_step_at=r.next_step_at, reason=r.reason,
        actor=r.actor, command_id=r.command_id, created_at=r.created_at, updated_at=r.updated_at,
        finished_at=r.finished_at,
    )


def rollout_event(r: domain.Rollout) -> RolloutUpdated:
    return RolloutUpdated(
        model_id=r.model_id, environment=r.environment, rollout_id=r.id, stable_version=r.stable_version,
        candidate_version=r.candidate_version, status=r.status, step=r.step, steps=r.steps, weights=r.weights(),
        kind=r.kind, next_step_at=r.next_step_at,
    )


class LifecycleHandlers:
    def __init__(self, runtime, *, environments: list[str], directory: Directory, cache: ProductionCache,
                 blobs: ContentAddressedStore) -> None:
        self.rt = runtime
        self.environments = list(environments)
        self.directory = directory
        self.cache = cache
        self.blobs = blobs

    @property
    def pool(self):
        return self.rt.pool

    def _uow(self, caller: Caller | None = None, *, actor: str | None = None,
             traceparent: str | None = None) -> UnitOfWork:
        return UnitOfWork(self.pool, store.SCHEMA, source=SOURCE,
                          actor=caller.actor if caller else (actor or "lifecycle"),
                          traceparent=caller.traceparent if caller else traceparent)

    def _environment(self, environment: str, field: str = "environment") -> str:
        return domain.check_environment(environment, self.environments, field)

    # ------------------------------------------------------------------------------------------
    # Lookups: the projections first, the owning service when an event has not arrived yet
    # ------------------------------------------------------------------------------------------

    async def resolve_model(self, ref: str | UUID, conn=None) -> store.ModelRow:
        conn = conn or self.pool
        model_id = _as_uuid(ref)
        row = await (store.get_model(conn, model_id) if model_id else store.get_live_model_by_name(conn, str(ref)))
        if row is not None and row.deleted_at is None:
            return row
        if row is not None:
            raise NotFound(f"model {ref} was deleted")
        try:
            body = await self.directory.model(ref)
        except LookupUnavailable as exc:
            raise UpstreamUnavailable(str(exc)) from None
        if body is None:
            raise NotFound(f"model {ref} not found")
        found = UUID(str(body["model_id"]))
        await store.upsert_model(conn, found, body["name"], int(body.get("revision") or 1))
        await self.cache.set_model_name(body["name"], found)
        row = await store.get_model(conn, found)
        if row is None or row.deleted_at is not None:
            raise NotFound(f"model {ref} not found")
        return row

    async def resolve_version(self, model: store.ModelRow, ref: str, conn=None, *,
                              need_artifact: bool = False) -> store.VersionRow:
        """A live version from the projection; from the version service when the projection has not
        seen it yet (or, with ``need_artifact``, has not seen its weights yet: ArtifactStored may still be
        on its way when a user publishes right after uploading)."""
        conn = conn or self.pool
        row = await store.find_version(conn, model.id, ref)
        if row is not None and row.deleted_at is None and (row.artifact_sha256 or not need_artifact):
            return row
        try:
            body = await self.directory.version(model.id, ref)
        except LookupUnavailable as exc:
            raise UpstreamUnavailable(str(exc)) from None
        if body is None:
            raise NotFound(f"version {ref} of model {model.name} not found")
        version_id = UUID(str(body["version_id"]))
        created_at = datetime.fromisoformat(body["created_at"]) if body.get("created_at") else _now()
        await store.upsert_version(conn, version_id=version_id, model_id=model.id, version=body["version"],
                                   artifact=body.get("artifact"), created_at=created_at)
        found = await store.get_version(conn, version_id)
        if found is None or found.deleted_at is not None:
            raise NotFound(f"version {ref} of model {model.name} not found")
        return found

    # ------------------------------------------------------------------------------------------
    # Moves inside a transaction (the slot is locked by the caller)
    # ------------------------------------------------------------------------------------------

    async def _emit_move(self, uow: UnitOfWork, v: store.VersionRow, environment: str, from_stage: str,
                         to_stage: str, reason: str, **extra: Any) -> None:
        cls = _EVENT_CLASSES[domain.event_kind(from_stage, to_stage)]
        await uow.emit(cls(model_id=v.model_id, version_id=v.id, version=v.version, environment=environment,
                           from_stage=from_stage, to_stage=to_stage, reason=reason, **extra))

    async def _go_live(self, uow: UnitOfWork, slot: store.Slot, v: store.VersionRow, *, from_stage: str,
                       reason: str, actor: str, now: datetime) -> tuple[int, str | None]:
        """Make ``v`` the live version of the slot: the old live version is archived, the history gets
        an entry, VersionPromoted says what to deploy. Returns (revision, replaced version)."""
        conn, environment = uow.conn, slot.environment
        replaced: str | None = None
        if slot.live_version_id is not None and slot.live_version_id != v.id:
            old = await store.get_version(conn, slot.live_version_id)
            if old is not None:
                replaced = old.version
                await store.set_stage(conn, old, environment, "archived", now)
                await self._emit_move(uow, old, environment, "production", "archived", f"replaced by {v.version}")
        await store.end_deployment(conn, v.model_id, environment, now, f"replaced by {v.version}")
        await store.start_deployment(conn, v.model_id, environment, v, now, reason, actor)
        await store.set_stage(conn, v, environment, "production", now)
        revision = await store.save_slot(conn, v.model_id, environment, v.id, now)
        await uow.emit(VersionPromoted(
            model_id=v.model_id, version_id=v.id, version=v.version, environment=environment,
            from_stage=from_stage, to_stage="production", reason=reason, replaced_version=replaced,
            artifact_sha256=v.artifact_sha256, artifact_size=v.artifact_size,
        ))
        return revision, replaced

    async def _leave_production(self, uow: UnitOfWork, slot: store.Slot, v: store.VersionRow, *, to_stage: str,
                                reason: str, now: datetime) -> int:
        await store.end_deployment(uow.conn, v.model_id, slot.environment, now, reason)
        await store.set_stage(uow.conn, v, slot.environment, to_stage, now)
        revision = await store.save_slot(uow.conn, v.model_id, slot.environment, None, now)
        await self._emit_move(uow, v, slot.environment, "production", to_stage, reason)
        return revision

    @staticmethod
    def _require_artifact(v: store.VersionRow) -> None:
        if not v.artifact_sha256:
            raise Conflict(f"version {v.version} has no stored artifact; upload its weights before production",
                           extra={"reason": "no_artifact", "version": v.version})

    @staticmethod
    def _no_active_rollout(active: domain.Rollout | None, what: str) -> None:
        if active is not None:
            raise Conflict(
                f"a rollout of {active.candidate_version} is in progress in {active.environment}; "
                f"advance, abort or roll it back before {what}",
                extra={"rollout_id": str(active.id), "reason": "rollout_in_progress"},
            )

    async def _invalidate(self, model_id: UUID, environment: str, revision: int) -> None:
        """After COMMIT: drop the cached view older than ``revision``. Best effort; the cache consumer
        repairs what a failure here leaves."""
        try:
            await self.cache.invalidate(model_id, environment, revision)
        except Exception:  # Redis down must not fail a committed change
            log.warning("production cache invalidation failed", exc_info=True,
                        extra={"model_id": str(model_id), "environment": environment})

    async def _invalidate_before_commit(self, conn, model_id: UUID, environment: str) -> None:
        """For changes made inside a consumer's transaction, which has no "after COMMIT" of its own:
        raise the cache floor to the revision about to be committed, so no older view is served once
        it is. Were the transaction lost, reads of the slot fall through to Postgres until its next
        change — slower, never wrong."""
        slot = await store.get_slot(conn, model_id, environment)
        if slot is not None:
            await self._invalidate(model_id, environment, slot.revision)

    # ------------------------------------------------------------------------------------------
    # HTTP: stages, transitions, publish, deprecate
    # ------------------------------------------------------------------------------------------

    async def stages(self, model_ref: str, environment: str | None) -> tuple[store.ModelRow, list[StageOut]]:
        envs = [self._environment(environment)] if environment else self.environments
        model = await self.resolve_model(model_ref)
        rows = await store.list_stages(self.pool, model.id, envs)
        return model, [StageOut(**dict(r)) for r in rows]

    async def transition(self, model_ref: str, version: str, environment: str, to_stage: str, reason: str,
                         caller: Caller, *, only_from: str | None = None) -> TransitionOut:
        self._environment(environment)
        model = await self.resolve_model(model_ref)
        v = await self.resolve_version(model, version, need_artifact=to_stage == "production")
        now, revision = _now(), None
        async with self._uow(caller) as uow:
            slot = await store.lock_slot(uow.conn, model.id, environment)
            from_stage = await store.get_stage(uow.conn, v.id, environment)
            if only_from is not None and from_stage != only_from:
                raise Conflict(f"version {v.version} is {from_stage} in {environment}, not {only_from}",
                               extra={"from_stage": from_stage, "to_stage": to_stage,
                                      "allowed": domain.allowed_targets(from_stage)})
            domain.check_transition(from_stage, to_stage, version=v.version, environment=environment)
            active = await store.active_rollout(uow.conn, model.id, environment, lock=True)
            if to_stage == "production":
                self._require_artifact(v)
                self._no_active_rollout(active, "publishing another version")
                revision, _ = await self._go_live(uow, slot, v, from_stage=from_stage, reason=reason or "publish",
                                                  actor=caller.actor, now=now)
            elif from_stage == "production":
                self._no_active_rollout(active, f"moving {v.version} out of production")
                revision = await self._leave_production(uow, slot, v, to_stage=to_stage,
                                                        reason=reason or to_stage, now=now)
            else:
                if active is not None and active.candidate_version_id == v.id:
                    self._no_active_rollout(active, f"moving {v.version} to {to_stage}")
                await store.set_stage(uow.conn, v, environment, to_stage, now)
                await self._emit_move(uow, v, environment, from_stage, to_stage, reason)
        if revision is not None:
            await self._invalidate(model.id, environment, revision)
        return TransitionOut(model_id=model.id, version=v.version, environment=environment, from_stage=from_stage,
                             to_stage=to_stage, at=now)

    async def publish(self, model_ref: str, version: str, body: PublishIn, caller: Caller) -> PublishOut:
        environment = self._environment(body.environment)
        gradual = body.strategy == "gradual"
        if gradual:
            domain.validate_steps(body.steps)
        model = await self.resolve_model(model_ref)
        v = await self.resolve_version(model, version, need_artifact=True)
        reason = body.reason or "publish"
        now = _now()
        rollout: domain.Rollout | None = None
        async with self._uow(caller) as uow:
            slot = await store.lock_slot(uow.conn, model.id, environment)
            from_stage = await store.get_stage(uow.conn, v.id, environment)
            domain.check_transition(from_stage, "production", version=v.version, environment=environment)
            self._require_artifact(v)
            self._no_active_rollout(await store.active_rollout(uow.conn, model.id, environment, lock=True),
                                    "publishing another version")
            if gradual and slot.live_version_id is not None and slot.live_version_id != v.id:
                stable = await store.get_version(uow.conn, slot.live_version_id)
                rollout = domain.start_rollout(
                    rollout_id=uuid4(), model_id=model.id, environment=environment, kind="promotion",
                    stable_version_id=slot.live_version_id, stable_version=stable.version if stable else None,
                    candidate_version_id=v.id, candidate_version=v.version, steps=body.steps,
                    step_interval_s=body.step_interval_s, reason=reason, actor=caller.actor, command_id=None, now=now,
                )
                await store.insert_rollout(uow.conn, rollout)
                revision = await store.bump_slot(uow.conn, model.id, environment, now)
                await uow.emit(rollout_event(rollout))
            else:
                revision, _ = await self._go_live(uow, slot, v, from_stage=from_stage, reason=reason,
                                                  actor=caller.actor, now=now)
        await self._invalidate(model.id, environment, revision)
        artifact = {"sha256": v.artifact_sha256, "size": v.artifact_size}
        return PublishOut(model_id=model.id, version=v.version, environment=environment,
                          status="rolling_out" if rollout else "production", published_at=now,
                          rollout=rollout_out(rollout, artifact) if rollout else None)

    async def deprecate(self, model_ref: str, version: str, environment: str | None, reason: str,
                        caller: Caller) -> DeprecateOut:
        envs = [self._environment(environment)] if environment else self.environments
        model = await self.resolve_model(model_ref)
        v = await self.resolve_version(model, version)
        now, moved = _now(), []
        async with self._uow(caller) as uow:
            slots = [await store.lock_slot(uow.conn, model.id, env) for env in sorted(envs)]
            live = [s.environment for s in slots if s.live_version_id == v.id]
            if live:
                raise Conflict(f"version {v.version} is live in {', '.join(live)}; unpublish it first",
                               extra={"live_in": live, "reason": "live"})
            for slot in slots:
                active = await store.active_rollout(uow.conn, model.id, slot.environment, lock=True)
                if active is not None and v.id in (active.candidate_version_id, active.stable_version_id):
                    self._no_active_rollout(active, f"deprecating {v.version}")
            for env in envs:
                from_stage = await store.get_stage(uow.conn, v.id, env)
                if from_stage == "deprecated":
                    continue
                domain.check_transition(from_stage, "deprecated", version=v.version, environment=env)
                await store.set_stage(uow.conn, v, env, "deprecated", now)
                await self._emit_move(uow, v, env, from_stage, "deprecated", reason)
                moved.append(TransitionOut(model_id=model.id, version=v.version, environment=env,
                                           from_stage=from_stage, to_stage="deprecated", at=now))
        return DeprecateOut(model_id=model.id, version=v.version, transitions=moved)

    # ------------------------------------------------------------------------------------------
    # HTTP: rollouts
    # ------------------------------------------------------------------------------------------

    async def rollouts(self, model_ref: str, environment: str | None, status: str | None,
                       limit: int) -> tuple[store.ModelRow, list[RolloutOut]]:
        if environment:
            self._environment(environment)
        model = await self.resolve_model(model_ref)
        statuses = list(domain.ACTIVE) if status == "active" else ([status] if status else None)
        rows = await store.list_rollouts(self.pool, model.id, environment, statuses, limit)
        return model, [rollout_out(store.row_to_rollout(r), store.candidate_artifact(r)) for r in rows]

    async def _rollout_of(self, model_ref: str, rollout_id: UUID) -> tuple[store.ModelRow, domain.Rollout]:
        model = await self.resolve_model(model_ref)
        rollout = await store.get_rollout(self.pool, rollout_id)
        if rollout is None or rollout.model_id != model.id:
            raise NotFound(f"rollout {rollout_id} of model {model.name} not found")
        return model, rollout

    async def _rollout_view(self, rollout_id: UUID) -> RolloutOut:
        row = await store.get_rollout_row(self.pool, rollout_id)
        return rollout_out(store.row_to_rollout(row), store.candidate_artifact(row))

    async def rollout(self, model_ref: str, rollout_id: UUID) -> RolloutOut:
        model = await self.resolve_model(model_ref)
        row = await store.get_rollout_row(self.pool, rollout_id)
        if row is None or row["r_model_id"] != model.id:
            raise NotFound(f"rollout {rollout_id} of model {model.name} not found")
        return rollout_out(store.row_to_rollout(row), store.candidate_artifact(row))

    async def advance_rollout(self, model_ref: str, rollout_id: UUID, caller: Caller) -> RolloutOut:
        model, found = await self._rollout_of(model_ref, rollout_id)
        async with self._uow(caller) as uow:
            slot = await store.lock_slot(uow.conn, model.id, found.environment)
            rollout = await store.get_rollout(uow.conn, rollout_id, lock=True)
            assert rollout is not None
            rollout, revision = await self._advance(uow, slot, rollout, actor=caller.actor, now=_now())
        await self._invalidate(model.id, rollout.environment, revision)
        return await self._rollout_view(rollout_id)

    async def abort_rollout(self, model_ref: str, rollout_id: UUID, reason: str, caller: Caller) -> RolloutOut:
        model, found = await self._rollout_of(model_ref, rollout_id)
        async with self._uow(caller) as uow:
            await store.lock_slot(uow.conn, model.id, found.environment)
            rollout = await store.get_rollout(uow.conn, rollout_id, lock=True)
            assert rollout is not None
            if not rollout.active:
                raise Conflict(f"rollout {rollout_id} is {rollout.status}; only an active rollout is aborted",
                               extra={"rollout_id": str(rollout_id), "status": rollout.status})
            revision = await self._abort(uow, rollout, reason=reason or "aborted", now=_now())
        await self._invalidate(model.id, found.environment, revision)
        return await self._rollout_view(rollout_id)

    async def _abort(self, uow: UnitOfWork, rollout: domain.Rollout, *, reason: str, now: datetime) -> int:
        aborted = domain.abort(rollout, now=now)
        await store.save_rollout(uow.conn, aborted)
        revision = await store.bump_slot(uow.conn, rollout.model_id, rollout.environment, now)
        await uow.emit(rollout_event(aborted))
        if aborted.kind == "rollback" and aborted.command_id is not None:
            failed = RollbackFailed(model_id=rollout.model_id, environment=rollout.environment,
                                    target_version=rollout.candidate_version,
                                    reason=f"gradual rollback aborted: {reason}", command_id=aborted.command_id)
            await uow.emit(failed)
            await self._record(uow.conn, aborted.command_id, rollout.model_id, rollout.environment, "failed",
                               failed, now)
        return revision

    async def _advance(self, uow: UnitOfWork, slot: store.Slot, rollout: domain.Rollout, *, actor: str,
                       now: datetime) -> tuple[domain.Rollout, int]:
        moved = domain.advance(rollout, now=now)
        await store.save_rollout(uow.conn, moved)
        await uow.emit(rollout_event(moved))
        if moved.status != "completed":
            return moved, await store.bump_slot(uow.conn, moved.model_id, moved.environment, now)
        candidate = await store.get_version(uow.conn, moved.candidate_version_id)
        assert candidate is not None
        from_stage = await store.get_stage(uow.conn, candidate.id, moved.environment)
        if moved.kind == "promotion":
            revision, _ = await self._go_live(uow, slot, candidate, from_stage=from_stage, reason=moved.reason,
                                              actor=moved.actor, now=now)
            return moved, revision
        revision, replaced = await self._go_live(uow, slot, candidate, from_stage=from_stage,
                                                 reason=_rollback_reason(moved.reason), actor=moved.actor, now=now)
        rolled = VersionRolledBack(
            model_id=moved.model_id, environment=moved.environment, from_version=replaced,
            to_version=candidate.version, strategy=moved.strategy or "gradual", reason=moved.reason,
            command_id=moved.command_id, rollout_id=moved.id,
        )
        await uow.emit(rolled)
        if moved.command_id is not None:
            await self._record(uow.conn, moved.command_id, moved.model_id, moved.environment, "succeeded", rolled, now)
        return moved, revision

    async def advance_due(self) -> UUID | None:
        """Advance one rollout whose timer is due; None when there is none. Rollouts (and slots) another
        process holds are skipped, so two tickers never advance the same step twice."""
        async with self._uow(actor="lifecycle") as uow:
            now = _now()
            rollout_id = await store.pick_due_rollout(uow.conn, now)
            if rollout_id is None:
                return None
            rollout = await store.get_rollout(uow.conn, rollout_id)
            assert rollout is not None
            uow.actor = rollout.actor  # the timer acts for whoever started the rollout
            slot = await store.get_slot(uow.conn, rollout.model_id, rollout.environment)
            assert slot is not None
            moved, revision = await self._advance(uow, slot, rollout, actor=rollout.actor, now=now)
        await self._invalidate(moved.model_id, moved.environment, revision)
        return rollout_id

    # ------------------------------------------------------------------------------------------
    # HTTP: reads
    # ------------------------------------------------------------------------------------------

    async def view(self, conn, model_id: UUID, environment: str) -> ProductionView | None:
        """What is live in one environment, from Postgres in one query."""
        row = await store.production_row(conn, model_id, environment)
        if row is None:
            return None
        rollout = store.row_to_rollout(row) if row["r_id"] is not None else None
        version = row["version"]
        return ProductionView(
            model_id=model_id, model_name=row["model_name"], environment=environment, version=version,
            version_id=row["version_id"],
            artifact=ArtifactOut(sha256=row["artifact_sha256"] or "", size=row["artifact_size"] or 0),
            download=f"/api/v1/models/{model_id}/download?version={version}",
            weights=rollout.weights() if rollout else {version: 100},
            rollout=rollout_out(rollout, store.candidate_artifact(row)) if rollout else None,
            updated_at=row["updated_at"], revision=row["revision"],
        )

    async def production(self, model_ref: str, environment: str) -> tuple[ProductionView | bytes, str]:
        """The hot path: Redis first (by id, or by name through the name key), Postgres on a miss."""
        self._environment(environment)
        model_id = _as_uuid(model_ref)
        if model_id is None:
            model_id = await self.cache.model_id_for(model_ref)
        if model_id is not None:
            cached = await self.cache.get(model_id, environment)
            if cached is not None:
                return cached, "cache"
        model = await self.resolve_model(model_id or model_ref)
        view = await self.view(self.pool, model.id, environment)
        if view is None:
            raise NotFound(f"model {model.name} has no production version in {environment}")
        await self.cache.put(view)
        return view, "database"

    async def deployments(self, model_ref: str, environment: str | None,
                          limit: int) -> tuple[store.ModelRow, list[DeploymentOut]]:
        if environment:
            self._environment(environment)
        model = await self.resolve_model(model_ref)
        entries = await store.history(self.pool, model.id, environment, limit)
        return model, [DeploymentOut(**vars(e)) for e in entries]

    async def command(self, command_id: UUID) -> CommandOut:
        row = await store.get_command(self.pool, command_id)
        if row is None:
            raise NotFound(f"command {command_id} not seen (yet)")
        return CommandOut(**dict(row))

    async def _record(self, conn, command_id: UUID, model_id: UUID, environment: str, status: str,
                      event, at: datetime) -> None:
        """Store a command's outcome (the body of the event that answers it), inside its transaction."""
        await store.record_command(conn, command_id, model_id, environment, status, event.event_type,
                                   event.model_dump(mode="json"), at)

    # ------------------------------------------------------------------------------------------
    # Events: projections (group "lifecycle")
    # ------------------------------------------------------------------------------------------

    async def on_version_created(self, envelope: Envelope, uow: UnitOfWork) -> None:
        e: VersionCreated = envelope.data  # type: ignore[assignment]
        await store.upsert_version(uow.conn, version_id=e.version_id, model_id=e.model_id, version=e.version,
                                   artifact=e.artifact.model_dump() if e.artifact else None, created_at=e.created_at)

    async def on_artifact_stored(self, envelope: Envelope, uow: UnitOfWork) -> None:
        e: ArtifactStored = envelope.data  # type: ignore[assignment]
        await store.upsert_version(uow.conn, version_id=e.version_id, model_id=e.model_id, version=e.version,
                                   artifact=e.artifact.model_dump(), created_at=envelope.time)

    async def on_version_deleted(self, envelope: Envelope, uow: UnitOfWork) -> None:
        e: VersionDeleted = envelope.data  # type: ignore[assignment]
        await store.delete_version(uow.conn, version_id=e.version_id, model_id=e.model_id, version=e.version,
                                   at=envelope.time)

    async def on_model_state(self, envelope: Envelope, uow: UnitOfWork) -> None:
        e: ModelState = envelope.data  # type: ignore[assignment]
        before = await store.get_model(uow.conn, e.model_id)
        if before is not None and before.deleted_at is not None:
            return
        await store.upsert_model(uow.conn, e.model_id, e.name, e.revision)
        if before is not None and before.revision >= e.revision:
            return  # an older event arriving late
        if before is not None and before.name.lower() != e.name.lower():
            await self.cache.forget_model_name(before.name, e.model_id)
        await self.cache.set_model_name(e.name, e.model_id)
        if before is not None and before.name != e.name:  # the cached views carry the old name
            for environment in await store.slot_environments(uow.conn, e.model_id):
                revision = await store.bump_slot(uow.conn, e.model_id, environment, _now())
                await self.cache.invalidate(e.model_id, environment, revision)

    async def on_model_deleted(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """A deleted model serves nothing: every live version is archived and its slots emptied."""
        e: ModelDeleted = envelope.data  # type: ignore[assignment]
        now = _now()
        for environment in await store.slot_environments(uow.conn, e.model_id):
            slot = await store.lock_slot(uow.conn, e.model_id, environment)
            active = await store.active_rollout(uow.conn, e.model_id, environment, lock=True)
            if active is not None:
                await self._abort(uow, active, reason="model deleted", now=now)
            if slot.live_version_id is not None:
                live = await store.get_version(uow.conn, slot.live_version_id)
                if live is not None:
                    await self._leave_production(uow, slot, live, to_stage="archived", reason="model deleted", now=now)
            await self._invalidate_before_commit(uow.conn, e.model_id, environment)
        await store.delete_model(uow.conn, e.model_id, e.name, e.deleted_at)
        await self.cache.forget_model_name(e.name, e.model_id)

    # ------------------------------------------------------------------------------------------
    # Events: the production cache (group "lifecycle-cache")
    # ------------------------------------------------------------------------------------------

    async def refresh_cache(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """Any change of a slot: write its current view (a newer revision wins) or drop an emptied one."""
        model_id: UUID = envelope.data.model_id  # type: ignore[attr-defined]
        environment: str = envelope.data.environment  # type: ignore[attr-defined]
        view = await self.view(uow.conn, model_id, environment)
        if view is not None:
            await self.cache.put(view)
            return
        slot = await store.get_slot(uow.conn, model_id, environment)
        if slot is not None:
            await self.cache.invalidate(model_id, environment, slot.revision)

    # ------------------------------------------------------------------------------------------
    # Commands: RollbackRequested (group "lifecycle-commands")
    # ------------------------------------------------------------------------------------------

    async def on_rollback_requested(self, envelope: Envelope, uow: UnitOfWork) -> None:
        cmd: RollbackRequested = envelope.data  # type: ignore[assignment]
        now = _now()
        try:
            await self._rollback(uow, envelope.id, cmd, actor=envelope.actor or "system", now=now)
            await self._invalidate_before_commit(uow.conn, cmd.model_id, cmd.environment)
        except (CairnError, _Unfit) as exc:
            reason = exc.detail if isinstance(exc, CairnError) else str(exc)
            target = exc.target if isinstance(exc, _Unfit) else cmd.target_version
            failed = RollbackFailed(model_id=cmd.model_id, environment=cmd.environment, target_version=target,
                                    reason=reason, command_id=envelope.id)
            await uow.emit(failed)
            await self._record(uow.conn, envelope.id, cmd.model_id, cmd.environment, "failed", failed, now)

    async def _rollback(self, uow: UnitOfWork, command_id: UUID, cmd: RollbackRequested, *, actor: str,
                        now: datetime) -> None:
        conn, environment = uow.conn, cmd.environment
        self._environment(environment)
        if cmd.strategy == "version" and not cmd.target_version:
            raise _Unfit("target_version is required for strategy 'version'", None)
        if cmd.strategy == "gradual":
            steps = domain.validate_steps(cmd.steps or list(domain.DEFAULT_ROLLBACK_STEPS))
        try:
            model = await self.resolve_model(cmd.model_id, conn)
        except UpstreamUnavailable as exc:
            raise _Retry(exc.detail) from None  # the registry will answer later; retry, do not fail
        slot = await store.lock_slot(conn, model.id, environment)
        active = await store.active_rollout(conn, model.id, environment, lock=True)
        # during a rollout the stable version is live; the candidate is what is being rolled back
        live_id = slot.live_version_id
        from_version = active.candidate_version if active else None
        if from_version is None and live_id is not None:
            live_row = await store.get_version(conn, live_id)
            from_version = live_row.version if live_row else None

        requested = cmd.target_version
        if requested:
            target_row = await store.find_version(conn, model.id, requested)
            if target_row is None:
                try:
                    target_row = await self.resolve_version(model, requested, conn)
                except NotFound:
                    target_row = None
                except UpstreamUnavailable as exc:
                    raise _Retry(exc.detail) from None
        elif active is not None:
            target_row = await store.get_version(conn, live_id) if live_id else None
        else:
            history = await store.history(conn, model.id, environment)
            unusable = await store.unusable_versions(conn, model.id, environment)
            previous = domain.previous_production(history, live_version_id=live_id, unusable=unusable)
            target_row = await store.get_version(conn, previous.version_id) if previous else None

        # aborting the rollout is the whole rollback when its target is the stable (live) version
        if active is not None and target_row is not None and target_row.id == live_id:
            await self._abort(uow, active, reason=cmd.reason or "rollback", now=now)
            rolled = VersionRolledBack(model_id=model.id, environment=environment, from_version=from_version,
                                       to_version=target_row.version, strategy=cmd.strategy, reason=cmd.reason,
                                       command_id=command_id, rollout_id=active.id)
            await uow.emit(rolled)
            await self._record(conn, command_id, model.id, environment, "succeeded", rolled, now)
            return

        target = None
        if target_row is not None:
            target = domain.Target(
                version_id=target_row.id, version=target_row.version,
                stage=await store.get_stage(conn, target_row.id, environment),
                deleted=target_row.deleted_at is not None, artifact_sha256=target_row.artifact_sha256,
                artifact_size=target_row.artifact_size,
            )
        name = target.version if target else requested
        unfit = domain.rollback_unfit_reason(target, requested=requested, live_version_id=live_id,
                                             environment=environment)
        if unfit:
            raise _Unfit(unfit, name)
        unfit = domain.rollback_unfit_reason(target, requested=requested, live_version_id=live_id,
                                             environment=environment, artifact=await self._check_blob(target))
        if unfit:
            raise _Unfit(unfit, name)
        assert target_row is not None and target is not None

        if active is not None:  # a rollout of something else is in flight: it ends here
            await self._abort(uow, active, reason=cmd.reason or "rollback", now=now)
        if cmd.strategy == "gradual" and live_id is not None:
            rollout = domain.start_rollout(
                rollout_id=uuid4(), model_id=model.id, environment=environment, kind="rollback",
                stable_version_id=live_id, stable_version=from_version, candidate_version_id=target_row.id,
                candidate_version=target_row.version, steps=steps, step_interval_s=cmd.step_interval_s,
                reason=cmd.reason, actor=actor, command_id=command_id, now=now, strategy="gradual",
            )
            await store.insert_rollout(conn, rollout)
            await store.bump_slot(conn, model.id, environment, now)
            update = rollout_event(rollout)
            await uow.emit(update)
            await self._record(conn, command_id, model.id, environment, "pending", update, now)
            return
        await self._go_live(uow, slot, target_row, from_stage=target.stage, reason=_rollback_reason(cmd.reason),
                            actor=actor, now=now)
        rolled = VersionRolledBack(model_id=model.id, environment=environment, from_version=from_version,
                                   to_version=target_row.version, strategy=cmd.strategy, reason=cmd.reason,
                                   command_id=command_id)
        await uow.emit(rolled)
        await self._record(conn, command_id, model.id, environment, "succeeded", rolled, now)

    async def _check_blob(self, target: domain.Target | None) -> domain.ArtifactCheck | None:
        """Read the target's bytes and check them against the recorded sha256."""
        if target is None or not target.artifact_sha256:
            return None
        try:
            return "ok" if await self.blobs.verify(target.artifact_sha256) else "corrupted"
        except ObjectNotFound:
            return "missing"

    # ------------------------------------------------------------------------------------------
    # Promotion policy (HTTP, and EvaluationCompleted in group "lifecycle-policy")
    # ------------------------------------------------------------------------------------------

    async def get_policy(self, model_ref: str) -> tuple[store.ModelRow, PromotionPolicy]:
        model = await self.resolve_model(model_ref)
        policy = await store.get_policy(self.pool, model.id)
        if policy is None:
            raise NotFound(f"model {model.name} has no promotion policy")
        return model, PromotionPolicy.model_validate(policy)

    async def set_policy(self, model_ref: str, policy: PromotionPolicy, caller: Caller) -> store.ModelRow:
        self._environment(policy.environment)
        if policy.staging is None and policy.production is None:
            raise ValidationFailed("a policy needs a staging or a production rule",
                                   errors=[FieldError("staging", "staging or production is required")])
        model = await self.resolve_model(model_ref)
        async with self._uow(caller) as uow:
            await store.set_policy(uow.conn, model.id, policy.model_dump(mode="json"), caller.actor, _now())
            await uow.emit(PromotionPolicySet(model_id=model.id, policy=policy.model_dump(mode="json")))
        return model

    async def on_evaluation_completed(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """Remember the measurement; if the model has a policy, judge the version and apply the verdict."""
        e: EvaluationCompleted = envelope.data  # type: ignore[assignment]
        conn, now = uow.conn, _now()
        await store.record_evaluation(conn, e.version_id, e.model_id, e.version, e.evaluation_id, e.metrics, now)
        raw = await store.get_policy(conn, e.model_id)
        if raw is None:
            return
        policy = PromotionPolicy.model_validate(raw)
        environment = policy.environment
        if environment not in self.environments:
            log.warning("promotion policy names an unknown environment", extra={"environment": environment})
            return
        model = await store.get_model(conn, e.model_id)
        if model is None or model.deleted_at is not None:
            return
        v = await store.get_version(conn, e.version_id)
        if v is None:
            try:
                v = await self.resolve_version(model, e.version, conn)
            except NotFound:
                return
            except UpstreamUnavailable as exc:
                raise _Retry(exc.detail) from None
        if v.deleted_at is not None:
            return
        slot = await store.lock_slot(conn, model.id, environment)
        stage = await store.get_stage(conn, v.id, environment)
        live_version, live_metrics = None, None
        if slot.live_version_id is not None and slot.live_version_id != v.id:
            live = await store.get_version(conn, slot.live_version_id)
            live_version = live.version if live else None
            live_metrics = await store.latest_metrics(conn, slot.live_version_id)
        for decision in decide(policy, stage=stage, metrics=e.metrics, live_version=live_version,
                               live_metrics=live_metrics):
            promoted, reason = decision.promoted, decision.reason
            if promoted and decision.to_stage == "production":
                active = await store.active_rollout(conn, model.id, environment)
                if not v.artifact_sha256:
                    promoted, reason = False, f"{reason}; but version {v.version} has no stored artifact"
                elif active is not None:
                    promoted, reason = False, f"{reason}; but a rollout of {active.candidate_version} is in progress"
            if promoted:
                why = f"promotion policy: {reason}"
                if decision.to_stage == "production":
                    await self._go_live(uow, slot, v, from_stage=stage, reason=why, actor=uow.actor, now=now)
                    await self._invalidate_before_commit(conn, model.id, environment)
                else:
                    await store.set_stage(conn, v, environment, decision.to_stage, now)
                    await self._emit_move(uow, v, environment, stage, decision.to_stage, why)
                stage = decision.to_stage
            await uow.emit(PromotionDecided(
                model_id=model.id, version=v.version, environment=environment, to_stage=decision.to_stage,
                decision="promoted" if promoted else "refused", reason=reason, evaluation_id=e.evaluation_id,
            ))


class _Unfit(Exception):
    """The rollback cannot be done: answered with RollbackFailed, nothing moves."""

    def __init__(self, reason: str, target: str | None) -> None:
        super().__init__(reason)
        self.target = target


def _rollback_reason(reason: str) -> str:
    return f"rollback: {reason}" if reason else "rollback"


class RolloutTicker:
    """Advances timed rollouts whose next step is due, every ``tick_s`` seconds."""

    def __init__(self, handlers: LifecycleHandlers, tick_s: float) -> None:
        self.handlers = handlers
        self.tick_s = tick_s
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lifecycle-rollout-ticker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            try:
                while await self.handlers.advance_due() is not None:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("advancing due rollouts failed; trying again at the next tick")
            await asyncio.sleep(self.tick_s)
