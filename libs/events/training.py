"""Events of training jobs (topic ``cairn.training.v1``), emitted by the training-scheduler service, and
the job message workers consume from ``cairn.jobs.training.<pool>``."""
from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from libs.events import topics
from libs.events.base import Event

Pool = Literal["gpu", "cpu"]

_MODEL = "7d0c6f9e-2f4b-4d7e-9a4e-0d5f3b8f1a11"
_JOB = "a3b9c8d7-1e2f-4a5b-8c6d-7e8f9a0b1c2d"
_HP = {"epochs": 5, "batch_size": 64, "learning_rate": 0.001, "optimizer": "adam", "scheduler": "none",
       "seed": 0, "early_stopping_patience": None, "device": "auto", "mixed_precision": True}


class TrainingSpec(BaseModel):
    """What to train: the dataset, the hyperparameters, and where the result goes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    dataset: str = Field(description="Dataset name: digits, wine, breast_cancer, diabetes, tones, text")
    dataset_seed: int = 0
    hyperparameters: dict[str, Any] = Field(description="See libs.ml.trainer.Hyperparameters")
    model_type: str
    architecture: dict[str, Any] = Field(
        default_factory=dict, description="Zoo config: the model's typed metadata, completed from the dataset")
    parent_version: str | None = None
    bump: Literal["major", "minor", "patch"] = "minor"


class TrainingRequested(Event):
    """Sent when a training job is accepted and queued."""

    event_type: ClassVar[str] = "TrainingRequested"
    topic: ClassVar[str] = topics.TRAINING
    example: ClassVar[dict[str, Any]] = {
        "model_id": _MODEL, "job_id": _JOB, "pool": "cpu", "max_attempts": 3,
        "spec": {"dataset": "digits", "dataset_seed": 0, "hyperparameters": _HP, "model_type": "vision",
                 "architecture": {"image_size": 8, "image_channels": 1, "num_classes": 10}, "parent_version": None,
                 "bump": "minor"},
    }

    model_id: UUID
    job_id: UUID
    pool: Pool
    max_attempts: int = Field(ge=1)
    spec: TrainingSpec


class TrainingJobDispatched(Event):
    """The job message on ``cairn.jobs.training.<pool>``: a worker of that pool should run this attempt."""

    event_type: ClassVar[str] = "TrainingJobDispatched"
    topic: ClassVar[str] = topics.JOBS_TRAINING_PREFIX + "cpu"  # the real topic depends on the pool
    example: ClassVar[dict[str, Any]] = {"model_id": _MODEL, "job_id": _JOB, "pool": "cpu", "attempt": 1}

    model_id: UUID
    job_id: UUID
    pool: Pool
    attempt: int = Field(ge=1)


class TrainingStarted(Event):
    """Sent when a worker claims an attempt of a job and starts (or resumes) training."""

    event_type: ClassVar[str] = "TrainingStarted"
    topic: ClassVar[str] = topics.TRAINING
    example: ClassVar[dict[str, Any]] = {
        "model_id": _MODEL, "job_id": _JOB, "attempt": 1, "worker": "worker-cpu-1", "device": "cpu",
        "resumed_from_epoch": 0,
    }

    model_id: UUID
    job_id: UUID
    attempt: int
    worker: str
    device: str
    resumed_from_epoch: int = Field(0, description="Epochs already done by an earlier attempt (from its checkpoint)")


class TrainingProgress(Event):
    """Sent after every epoch: losses, validation metrics and throughput."""

    event_type: ClassVar[str] = "TrainingProgress"
    topic: ClassVar[str] = topics.TRAINING
    example: ClassVar[dict[str, Any]] = {
        "model_id": _MODEL, "job_id": _JOB, "attempt": 1, "epoch": 2, "epochs": 5, "train_loss": 0.41,
        "val_loss": 0.38, "val_accuracy": 0.91, "samples_per_second": 5400.0, "learning_rate": 0.001,
    }

    model_id: UUID
    job_id: UUID
    attempt: int
    epoch: int
    epochs: int
    train_loss: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    samples_per_second: float
    learning_rate: float


class TrainingCompleted(Event):
    """Sent when a job succeeded: its weights became ``version`` of the model."""

    event_type: ClassVar[str] = "TrainingCompleted"
    topic: ClassVar[str] = topics.TRAINING
    example: ClassVar[dict[str, Any]] = {
        "model_id": _MODEL, "job_id": _JOB, "attempt": 1, "version": "1.1.0",
        "version_id": "0b6c1f53-5a3e-4a55-9c0e-3f1d2a6b7c81",
        "artifact_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "metrics": {"val_accuracy": 0.97, "val_loss": 0.09}, "epochs_run": 5, "best_epoch": 5, "stopped_early": False,
        "dataset_hash": "4f2a", "duration_s": 12.5,
    }

    model_id: UUID
    job_id: UUID
    attempt: int
    version: str
    version_id: UUID
    artifact_sha256: str
    metrics: dict[str, float]
    epochs_run: int
    best_epoch: int
    stopped_early: bool
    dataset_hash: str
    duration_s: float


class TrainingFailed(Event):
    """Sent when an attempt failed. ``final`` is true when no attempt is left (the job is dead-lettered)."""

    event_type: ClassVar[str] = "TrainingFailed"
    topic: ClassVar[str] = topics.TRAINING
    example: ClassVar[dict[str, Any]] = {
        "model_id": _MODEL, "job_id": _JOB, "attempt": 3, "reason": "loss became NaN at epoch 2",
        "final": True, "retry_at": None,
    }

    model_id: UUID
    job_id: UUID
    attempt: int
    reason: str
    final: bool
    retry_at: datetime | None = None


class TrainingCancelled(Event):
    """Sent when a job is cancelled; a running attempt stops and produces no version."""

    event_type: ClassVar[str] = "TrainingCancelled"
    topic: ClassVar[str] = topics.TRAINING
    example: ClassVar[dict[str, Any]] = {"model_id": _MODEL, "job_id": _JOB, "reason": "cancelled by alice"}

    model_id: UUID
    job_id: UUID
    reason: str = ""
