"""The lifecycle service's HTTP contract. The gateway may declare the same models for its OpenAPI."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.lifecycle.domain import DEFAULT_STEPS, Stage

RolloutStatusFilter = Literal["started", "progressing", "completed", "aborted", "active"]


class StageOut(BaseModel):
    version: str
    version_id: UUID
    environment: str
    stage: Stage
    updated_at: datetime


class StagesOut(BaseModel):
    model_id: UUID
    stages: list[StageOut]


class TransitionIn(BaseModel):
    """The generic state-machine command."""

    model_config = ConfigDict(extra="forbid")
    environment: str = Field(max_length=63)
    to_stage: Stage
    reason: str = Field("", max_length=1000)


class TransitionOut(BaseModel):
    model_id: UUID
    version: str
    environment: str
    from_stage: Stage
    to_stage: Stage
    at: datetime


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    environment: str = Field("production", max_length=63)
    strategy: Literal["immediate", "gradual"] = "immediate"
    steps: list[int] = Field(default_factory=lambda: list(DEFAULT_STEPS), max_length=100,
                             description="Candidate traffic percentages for 'gradual': increasing, 1..100, last 100")
    step_interval_s: float | None = Field(None, gt=0, le=86_400 * 30, description="Advance on a timer; None = by command")
    reason: str = Field("", max_length=1000)


class UnpublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    environment: str = Field("production", max_length=63)
    reason: str = Field("", max_length=1000)


class ArchiveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    environment: str = Field(max_length=63)
    reason: str = Field("", max_length=1000)


class DeprecateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    environment: str | None = Field(None, max_length=63, description="None: every environment")
    reason: str = Field("", max_length=1000)


class DeprecateOut(BaseModel):
    model_id: UUID
    version: str
    transitions: list[TransitionOut]


class ArtifactOut(BaseModel):
    sha256: str
    size: int


class RolloutOut(BaseModel):
    rollout_id: UUID
    model_id: UUID
    environment: str
    kind: Literal["promotion", "rollback"]
    status: Literal["started", "progressing", "completed", "aborted"]
    stable_version: str | None
    candidate_version: str
    candidate_version_id: UUID
    candidate_artifact: ArtifactOut | None = None
    steps: list[int]
    step: int = Field(description="Steps applied so far; the candidate's share is steps[step - 1]")
    weights: dict[str, int]
    step_interval_s: float | None
    next_step_at: datetime | None
    reason: str
    actor: str
    command_id: UUID | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class RolloutList(BaseModel):
    model_id: UUID
    rollouts: list[RolloutOut]


class PublishOut(BaseModel):
    model_id: UUID
    version: str
    environment: str
    status: Literal["production", "rolling_out"]
    published_at: datetime
    rollout: RolloutOut | None


class ProductionView(BaseModel):
    """What is live in one environment: the deployer's hot path. Also cached in Redis as
    ``cairn:prod:{model_id}:{environment}``."""

    model_id: UUID
    model_name: str | None
    environment: str
    version: str
    version_id: UUID
    artifact: ArtifactOut
    download: str
    weights: dict[str, int]
    rollout: RolloutOut | None
    updated_at: datetime
    revision: int


class CommandOut(BaseModel):
    command_id: UUID
    model_id: UUID = Field(description="The model the command is about")
    environment: str
    status: Literal["pending", "succeeded", "failed"]
    event_type: str = Field(description="The event whose body is the outcome")
    outcome: dict[str, Any]
    at: datetime


class DeploymentOut(BaseModel):
    version: str
    version_id: UUID
    environment: str
    started_at: datetime
    ended_at: datetime | None
    reason: str
    actor: str
    end_reason: str | None


class DeploymentsOut(BaseModel):
    model_id: UUID
    deployments: list[DeploymentOut]
