"""Events of the lifecycle aggregate (topic ``cairn.lifecycle.v1``): stages per version and
environment, rollouts and rollbacks. Emitted by the lifecycle service, except RollbackRequested,
a command any producer may send (the gateway, a regression detector, a deployer's health check)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import Field

from libs.events import topics
from libs.events.base import Event

Stage = Literal["draft", "staging", "production", "archived", "deprecated"]
RollbackStrategy = Literal["fast", "version", "gradual"]

_MODEL = "7d0c6f9e-2f4b-4d7e-9a4e-0d5f3b8f1a11"
_SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


class _Transition(Event):
    model_id: UUID
    version_id: UUID
    version: str
    environment: str
    from_stage: Stage
    to_stage: Stage
    reason: str = ""


class VersionPromoted(_Transition):
    """Sent when a version moves up to staging or production in an environment. When it goes live,
    ``artifact`` says what to deploy and ``replaced_version`` what it replaces."""

    event_type: ClassVar[str] = "VersionPromoted"
    topic: ClassVar[str] = topics.LIFECYCLE
    example: ClassVar[dict[str, Any]] = {
        "model_id": _MODEL, "version_id": "0b6c1f53-5a3e-4a55-9c0e-3f1d2a6b7c81", "version": "1.1.0",
        "environment": "production", "from_stage": "staging", "to_stage": "production", "reason": "publish",
        "replaced_version": "1.0.0", "artifact_sha256": _SHA, "artifact_size": 1024000,
    }

    replaced_version: str | None = None
    artifact_sha256: str | None = None
    artifact_size: int | None = None


class VersionDemoted(_Transition):
    """Sent when a live version is taken out of production (unpublished) back to staging."""

    event_type: ClassVar[str] = "VersionDemoted"
    topic: ClassVar[str] = topics.LIFECYCLE
    example: ClassVar[dict[str, Any]] = {
        "model_id": _MODEL, "version_id": "0b6c1f53-5a3e-4a55-9c0e-3f1d2a6b7c81", "version": "1.1.0",
        "environment": "production", "from_stage": "production", "to_stage": "staging", "reason": "unpublish",
    }


class VersionArchived(_Transition):
    """Sent when a version is archived in an environment (also when a newer version replaces it in production)."""

    event_type: ClassVar[str] = "VersionArchived"
    topic: ClassVar[str] = topics.LIFECYCLE
    example: ClassVar[dict[str, Any]] = {
        "model_id": _MODEL, "version_id": "0b6c1f53-5a3e-4a55-9c0e-3f1d2a6b7c81", "version": "1.0.0",
        "environment": "production", "from_stage": "production", "to_stage": "archived", "reason": "replaced by 1.1.0",
    }


class VersionDeprecated(_Transition):
    """Sent when a version is deprecated: it must not be deployed again."""

    event_type: ClassVar[str] = "VersionDeprecated"
    topic: ClassVar[str] = topics.LIFECYCLE
    example: ClassVar[dict[str, Any]] = {
        "model_id": _MODEL, "version_id": "0b6c1f53-5a3e-4a55-9c0e-3f1d2a6b7c81", "version": "0.9.0",
        "environment": "production", "from_stage": "archived", "to_stage": "deprecated", "reason": "security issue",
    }


class RollbackRequested(Event):
    """A command: roll production back in ``environment``, to ``target_version`` or (strategy ``fast``)
    to the previous production version. Any producer may send it; the lifecycle service answers with
    VersionRolledBack or RollbackFailed whose ``command_id`` is this event's id."""

    event_type: ClassVar[str] = "RollbackRequested"
    topic: ClassVar[str] = topics.LIFECYCLE
    example: ClassVar[dict[str, Any]] = {
        "model_id": _MODEL, "environment": "production", "strategy": "version", "target_version": "1.0.0",
        "reason": "Rollback due to performance degradation", "steps": [],
    }

    model_id: UUID
    environment: str = "production"
    strategy: RollbackStrategy = "fast"
    target_version: str | None = Field(None, description="Required for strategy 'version'; optional for 'gradual'")
    reason: str = ""
    steps: list[int] = Field(default_factory=list, description="Traffic percentages for 'gradual', e.g. [50, 100]")
    step_interval_s: float | None = Field(None, gt=0, description="Advance gradual steps on a timer")


class VersionRolledBack(Event):
    """Sent when production in an environment was moved back to an earlier version."""

    event_type: ClassVar[str] = "VersionRolledBack"
    topic: ClassVar[str] = topics.LIFECYCLE
    example: ClassVar[dict[str, Any]] = {
        "model_id": _MODEL, "environment": "production", "from_version": "1.1.0", "to_version": "1.0.0",
        "strategy": "version", "reason": "Rollback due to performance degradation",
        "command_id": "5d7c0e2a-9a1b-4f0e-8f7d-1b2c3d4e5f60", "rollout_id": None,
    }

    model_id: UUID
    environment: str
    from_version: str | None
    to_version: str
    strategy: RollbackStrategy
    reason: str = ""
    command_id: UUID | None = None
    rollout_id: UUID | None = Field(None, description="Set when the rollback is gradual")


class RollbackFailed(Event):
    """Sent when a rollback could not be done; nothing moved. ``reason`` says why."""

    event_type: ClassVar[str] = "RollbackFailed"
    topic: ClassVar[str] = topics.LIFECYCLE
    example: ClassVar[dict[str, Any]] = {
        "model_id": _MODEL, "environment": "production", "target_version": "0.9.0",
        "reason": "artifact of 0.9.0 failed its sha256 check", "command_id": "5d7c0e2a-9a1b-4f0e-8f7d-1b2c3d4e5f60",
    }

    model_id: UUID
    environment: str
    target_version: str | None
    reason: str
    command_id: UUID | None = None


class RolloutUpdated(Event):
    """Sent when a gradual rollout starts, moves a step, completes or is aborted. ``weights`` maps
    version → percentage of traffic and always sums to 100."""

    event_type: ClassVar[str] = "RolloutUpdated"
    topic: ClassVar[str] = topics.LIFECYCLE
    example: ClassVar[dict[str, Any]] = {
        "model_id": _MODEL, "environment": "production", "rollout_id": "c1d2e3f4-0000-4000-8000-000000000001",
        "stable_version": "1.0.0", "candidate_version": "1.1.0", "status": "progressing", "step": 1,
        "steps": [10, 50, 100], "weights": {"1.0.0": 90, "1.1.0": 10}, "kind": "promotion",
    }

    model_id: UUID
    environment: str
    rollout_id: UUID
    stable_version: str | None
    candidate_version: str
    status: Literal["started", "progressing", "completed", "aborted"]
    step: int = Field(ge=0, description="Index into steps of the current weight; 0 before the first")
    steps: list[int]
    weights: dict[str, int]
    kind: Literal["promotion", "rollback"] = "promotion"
    next_step_at: datetime | None = None


class PromotionDecided(Event):
    """Sent when a model's promotion policy judged an evaluated version: promoted (to ``to_stage``) or
    refused, with the reason (the numbers compared)."""

    event_type: ClassVar[str] = "PromotionDecided"
    topic: ClassVar[str] = topics.LIFECYCLE
    example: ClassVar[dict[str, Any]] = {
        "model_id": _MODEL, "version": "1.2.0", "environment": "production", "to_stage": "production",
        "decision": "promoted", "reason": "accuracy 0.981 beats production 0.970 by 1.1 points (≥ 0.5); "
                                         "p99 latency 0.9 ms ≤ 1.2 × 0.8 ms",
        "evaluation_id": "e1e2e3e4-0000-4000-8000-000000000001",
    }

    model_id: UUID
    version: str
    environment: str
    to_stage: Stage
    decision: Literal["promoted", "refused"]
    reason: str
    evaluation_id: UUID | None = None


class PromotionPolicySet(Event):
    """Sent when a model's promotion policy is set or replaced. ``policy`` is the whole new policy."""

    event_type: ClassVar[str] = "PromotionPolicySet"
    topic: ClassVar[str] = topics.LIFECYCLE
    example: ClassVar[dict[str, Any]] = {
        "model_id": _MODEL,
        "policy": {"environment": "production", "enabled": True,
                   "staging": {"metric": "accuracy", "min_value": 0.9},
                   "production": {"metric": "accuracy", "min_improvement_points": 0.5,
                                  "latency_metric": "latency_p99_ms", "max_latency_ratio": 1.2}},
    }

    model_id: UUID
    policy: dict[str, Any]
