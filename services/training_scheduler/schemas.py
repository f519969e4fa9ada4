"""The training scheduler's HTTP contract: jobs (for the gateway) and the worker protocol (for workers).
The gateway may declare the same models so its OpenAPI shows them."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from libs.events.training import TrainingSpec
from services.training_scheduler.domain import MAX_REASON, JobState

Finite = Annotated[float, Field(allow_inf_nan=False)]
Pool = Literal["gpu", "cpu"]
Bump = Literal["major", "minor", "patch"]
WorkerName = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class TrainingJobCreate(BaseModel):
    """Queue a training job for a model. ``hyperparameters`` follow ``libs.ml.trainer.Hyperparameters``
    (epochs, batch_size, learning_rate, optimizer, scheduler, seed, early_stopping_patience, device,
    mixed_precision, ...); the architecture is the model's typed metadata completed for the dataset."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "dataset": "digits",
                "hyperparameters": {"epochs": 5, "batch_size": 64, "learning_rate": 0.001, "optimizer": "adam"},
                "pool": "cpu",
                "bump": "minor",
            }
        },
    )

    dataset: str = Field(min_length=1, max_length=64, description="digits, wine, breast_cancer, diabetes, tones, text")
    dataset_seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of the train/val/test split")
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    pool: Pool = "cpu"
    max_attempts: int | None = Field(None, ge=1, le=20, description="Defaults to the scheduler's setting")
    parent_version: str | None = Field(None, min_length=1, max_length=128)
    bump: Bump = "minor"


class TrainingJobOut(BaseModel):
    job_id: UUID
    model_id: UUID
    state: JobState
    pool: Pool
    attempt: int = Field(description="Number of the latest claimed attempt (0 before the first)")
    failures: int = Field(description="Failed attempts; the job fails when this reaches max_attempts")
    max_attempts: int
    spec: TrainingSpec
    worker: str | None
    device: str | None
    heartbeat_at: datetime | None
    next_attempt_at: datetime | None
    checkpoint_epoch: int = Field(description="Latest epoch with a stored checkpoint")
    progress: dict[str, Any] | None = Field(description="The latest epoch report")
    result: dict[str, Any] | None = Field(description="Version, metrics and timings once the job succeeded")
    last_error: str | None
    cancel_reason: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class TrainingJobPage(BaseModel):
    total: int
    page: int
    page_size: int
    jobs: list[TrainingJobOut]


class JobListQuery:
    """Filters and paging of ``GET /models/{model}/training-jobs``."""

    def __init__(
        self,
        state: JobState | None = None,
        page: int = Query(1, ge=1, le=100_000),
        page_size: int = Query(20, ge=1, le=100),
    ) -> None:
        self.state, self.page, self.page_size = state, page, page_size


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=500)


# -- the worker protocol ---------------------------------------------------------------------------


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    attempt: int = Field(ge=1, description="The attempt named by the job message the worker holds")
    worker: WorkerName
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d{1,2})?)$", description="The best device this worker has")


class ClaimOut(BaseModel):
    lease_id: UUID
    job_id: UUID
    model_id: UUID
    attempt: int
    spec: TrainingSpec
    checkpoint_key: str
    resume: bool = Field(description="A checkpoint of an earlier attempt exists; continue from it")
    resumed_from_epoch: int
    device: str
    requested_by: str
    heartbeat_timeout_s: float


class LeaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lease_id: UUID


class HeartbeatOut(BaseModel):
    cancel: bool = Field(description="Stop training: the job was cancelled")


class ProgressIn(LeaseIn):
    epoch: int = Field(ge=1)
    epochs: int = Field(ge=1)
    train_loss: Finite
    val_loss: Finite | None = None
    val_accuracy: Finite | None = None
    samples_per_second: Finite = Field(ge=0)
    learning_rate: Finite = Field(ge=0)
    elapsed_s: Finite | None = Field(None, ge=0)
    checkpoint_epoch: int | None = Field(None, ge=1, description="Set when this epoch's checkpoint is stored")


class CompleteIn(LeaseIn):
    version: str = Field(min_length=1, max_length=128)
    version_id: UUID
    artifact_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    metrics: dict[Annotated[str, StringConstraints(min_length=1, max_length=128)], Finite] = Field(default_factory=dict)
    epochs_run: int = Field(ge=0)
    best_epoch: int = Field(ge=0)
    stopped_early: bool = False
    dataset_hash: str = Field(min_length=1, max_length=128)
    duration_s: Finite = Field(ge=0)


class FailIn(LeaseIn):
    reason: str = Field(min_length=1, max_length=20_000, description=f"Kept up to {MAX_REASON} characters")


class ReleaseIn(LeaseIn):
    reason: str = Field("", max_length=2000)
