"""Pure rules of the lifecycle: the stage machine per (version, environment), rollout steps and
weights, the previous production version of a deployment history, and whether a rollback target
is fit. No I/O; the clock and ids are passed in."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

from libs.kit.errors import Conflict, FieldError, ValidationFailed

Stage = Literal["draft", "staging", "production", "archived", "deprecated"]
STAGES: tuple[str, ...] = ("draft", "staging", "production", "archived", "deprecated")

#: The stage machine. ``archived → production`` is missing on purpose: only a rollback does that.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "draft": ("staging", "archived", "deprecated"),
    "staging": ("production", "archived", "deprecated"),
    "production": ("staging", "archived"),
    "archived": ("staging", "deprecated"),
    "deprecated": (),
}
#: Stages a rollback may bring a version to production from (it must have been promoted before).
ROLLBACK_FROM: tuple[str, ...] = ("staging", "archived")

#: The event type each kind of move is announced with.
PROMOTED, DEMOTED, ARCHIVED, DEPRECATED = "VersionPromoted", "VersionDemoted", "VersionArchived", "VersionDeprecated"

ENVIRONMENT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
DEFAULT_STEPS = (10, 50, 100)
DEFAULT_ROLLBACK_STEPS = (50, 100)
ACTIVE = ("started", "progressing")


def allowed_targets(from_stage: str) -> list[str]:
    return list(TRANSITIONS[from_stage])


def check_transition(from_stage: str, to_stage: str, *, version: str = "", environment: str = "") -> None:
    """Refuse an illegal move with 409, naming the current stage and the allowed targets."""
    if to_stage not in STAGES:
        raise ValidationFailed(f"to_stage: unknown stage {to_stage!r}", errors=[FieldError("to_stage", "unknown stage")])
    allowed = allowed_targets(from_stage)
    if to_stage not in allowed:
        subject = f"version {version} " if version else ""
        where = f" in {environment}" if environment else ""
        hint = "; only a rollback brings an archived version back to production" if (from_stage, to_stage) == (
            "archived", "production") else ""
        raise Conflict(
            f"{subject}is {from_stage}{where}: cannot move to {to_stage}; "
            f"allowed: {', '.join(allowed) if allowed else 'none (terminal)'}{hint}",
            extra={"from_stage": from_stage, "to_stage": to_stage, "allowed": allowed},
        )


def event_kind(from_stage: str, to_stage: str) -> str:
    """Which event announces a legal move."""
    if to_stage == "archived":
        return ARCHIVED
    if to_stage == "deprecated":
        return DEPRECATED
    if from_stage == "production":
        return DEMOTED
    return PROMOTED


def check_environment(environment: str, known: list[str], field: str = "environment") -> str:
    if environment not in known:
        raise ValidationFailed(
            f"{field}: unknown environment {environment!r}; known: {', '.join(known)}",
            errors=[FieldError(field, f"unknown environment; known: {', '.join(known)}")],
        )
    return environment


def validate_environments(names: list[str]) -> list[str]:
    if not names:
        raise ValueError("at least one environment is needed")
    if len(set(names)) != len(names):
        raise ValueError("environments must be unique")
    for name in names:
        if not re.match(ENVIRONMENT_PATTERN, name):
            raise ValueError(f"environment {name!r} must match {ENVIRONMENT_PATTERN}")
    return names


# -- rollouts ------------------------------------------------------------------------------------

def steps_problem(steps: list[int]) -> str | None:
    """Why ``steps`` is not a usable rollout plan, or None: strictly increasing, each 1..100, last 100."""
    if not steps:
        return "at least one step is needed"
    if any(not isinstance(s, int) or isinstance(s, bool) or s < 1 or s > 100 for s in steps):
        return "each step is a traffic percentage from 1 to 100"
    if any(b <= a for a, b in zip(steps, steps[1:])):
        return "steps must be strictly increasing"
    if steps[-1] != 100:
        return "the last step must be 100"
    return None


def validate_steps(steps: list[int], field: str = "steps") -> list[int]:
    problem = steps_problem(steps)
    if problem:
        raise ValidationFailed(f"{field}: {problem}", errors=[FieldError(field, problem)])
    return list(steps)


def weights(stable: str | None, candidate: str, candidate_pct: int) -> dict[str, int]:
    """Traffic split, version → percentage; always sums to 100 (zero shares are left out)."""
    if stable is None or stable == candidate:
        return {candidate: 100}
    split = {stable: 100 - candidate_pct, candidate: candidate_pct}
    return {v: pct for v, pct in split.items() if pct > 0}


RolloutKind = Literal["promotion", "rollback"]
RolloutStatus = Literal["started", "progressing", "completed", "aborted"]


@dataclass(frozen=True)
class Rollout:
    """A gradual move of traffic from the live (stable) version to a candidate. ``step`` counts the
    steps applied so far (1 once started); the candidate's share is ``steps[step - 1]``."""

    id: UUID
    model_id: UUID
    environment: str
    kind: RolloutKind
    stable_version_id: UUID | None
    stable_version: str | None
    candidate_version_id: UUID
    candidate_version: str
    steps: list[int]
    step: int
    status: RolloutStatus
    step_interval_s: float | None
    next_step_at: datetime | None
    reason: str
    actor: str
    command_id: UUID | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    strategy: str | None = None  # the rollback strategy that started it (rollback rollouts only)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def candidate_pct(self) -> int:
        if self.status == "aborted":
            return 0
        if self.status == "completed":
            return 100
        return self.steps[self.step - 1] if self.step else 0

    def weights(self) -> dict[str, int]:
        if self.status == "aborted":
            return {self.stable_version: 100} if self.stable_version else {}
        return weights(self.stable_version, self.candidate_version, self.candidate_pct)

    @property
    def reached_full(self) -> bool:
        return self.candidate_pct >= 100


def _next_at(interval: float | None, now: datetime) -> datetime | None:
    return now + timedelta(seconds=interval) if interval else None


def start_rollout(
    *, rollout_id: UUID, model_id: UUID, environment: str, kind: RolloutKind,
    stable_version_id: UUID | None, stable_version: str | None,
    candidate_version_id: UUID, candidate_version: str, steps: list[int], step_interval_s: float | None,
    reason: str, actor: str, command_id: UUID | None, now: datetime, strategy: str | None = None,
) -> Rollout:
    """A new rollout with its first step applied."""
    validate_steps(steps)
    return Rollout(
        id=rollout_id, model_id=model_id, environment=environment, kind=kind,
        stable_version_id=stable_version_id, stable_version=stable_version,
        candidate_version_id=candidate_version_id, candidate_version=candidate_version,
        steps=list(steps), step=1, status="started", step_interval_s=step_interval_s,
        next_step_at=_next_at(step_interval_s, now), reason=reason, actor=actor, command_id=command_id,
        created_at=now, updated_at=now, strategy=strategy,
    )


def advance(rollout: Rollout, *, now: datetime) -> Rollout:
    """Apply the next step; reaching 100 % completes the rollout."""
    if not rollout.active:
        raise Conflict(
            f"rollout {rollout.id} is {rollout.status}; only an active rollout advances",
            extra={"rollout_id": str(rollout.id), "status": rollout.status},
        )
    if rollout.reached_full:
        return complete(rollout, now=now)
    moved = replace(rollout, step=rollout.step + 1, status="progressing", updated_at=now,
                    next_step_at=_next_at(rollout.step_interval_s, now))
    return complete(moved, now=now) if moved.reached_full else moved


def complete(rollout: Rollout, *, now: datetime) -> Rollout:
    return replace(rollout, step=len(rollout.steps), status="completed", updated_at=now, finished_at=now,
                   next_step_at=None)


def abort(rollout: Rollout, *, now: datetime) -> Rollout:
    return replace(rollout, status="aborted", updated_at=now, finished_at=now, next_step_at=None)


# -- deployment history and rollbacks ------------------------------------------------------------

@dataclass(frozen=True)
class Deployment:
    """One stay of a version in the live slot of (model, environment)."""

    version_id: UUID
    version: str
    environment: str
    started_at: datetime
    ended_at: datetime | None
    reason: str
    actor: str
    end_reason: str | None = None


def previous_production(
    history: list[Deployment], *, live_version_id: UUID | None, unusable: set[UUID] | frozenset[UUID] = frozenset()
) -> Deployment | None:
    """The most recent earlier live version (``history`` is newest first) that is not the live one
    and not ``unusable`` (deleted or deprecated)."""
    for entry in history:
        if entry.version_id == live_version_id or entry.version_id in unusable:
            continue
        return entry
    return None


@dataclass(frozen=True)
class Target:
    """What the lifecycle knows about a rollback target in one environment."""

    version_id: UUID
    version: str
    stage: str
    deleted: bool
    artifact_sha256: str | None
    artifact_size: int | None


ArtifactCheck = Literal["ok", "corrupted", "missing"]


def rollback_unfit_reason(
    target: Target | None, *, requested: str | None, live_version_id: UUID | None,
    environment: str, artifact: ArtifactCheck | None = None,
) -> str | None:
    """Why ``target`` cannot become live by rollback, or None. Called once before the artifact is
    read (``artifact=None``) and once with the result of verifying its bytes."""
    if target is None:
        if requested:
            return f"version {requested} not found"
        return f"no previous production version to roll back to in {environment}"
    name = target.version
    if target.deleted:
        return f"version {name} was deleted"
    if target.version_id == live_version_id:
        return f"version {name} is already live in {environment}"
    if target.stage == "deprecated":
        return f"version {name} is deprecated"
    if target.stage not in ROLLBACK_FROM:
        return f"version {name} is {target.stage} in {environment}; a rollback target must be {' or '.join(ROLLBACK_FROM)}"
    if not target.artifact_sha256:
        return f"version {name} has no stored artifact"
    if artifact == "missing":
        return f"artifact of {name} is missing from the object store"
    if artifact == "corrupted":
        return f"artifact of {name} failed its sha256 check"
    return None
