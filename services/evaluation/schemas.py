"""The evaluation service's HTTP contract. The gateway may declare the same models so its OpenAPI shows them."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

DatasetName = Literal["digits", "wine", "breast_cancer", "diabetes", "tones", "text"]
MetricName = Literal[
    "accuracy", "precision_macro", "recall_macro", "f1_macro", "loss", "mae", "r2",
    "latency_p50_ms", "latency_p99_ms", "throughput_per_s", "parameters", "size_bytes", "flops",
]
State = Literal["queued", "running", "completed", "failed"]
Trigger = Literal["artifact_stored", "requested", "compare"]
VersionText = Field(min_length=1, max_length=128, description="A version such as 1.3.0")


class EvaluateRequest(BaseModel):
    """Evaluate again, on the dataset the weights were trained on (its held-out split) or on another one."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"dataset": "digits", "dataset_seed": 0}})

    dataset: DatasetName | None = Field(None, description="Defaults to the dataset named in the artifact")
    dataset_seed: int | None = Field(
        None, ge=0, lt=2**31, description="Split seed; defaults to the training split's, so the test split is held out"
    )


class EvaluationAccepted(BaseModel):
    """The request was emitted as EvaluationRequested; the result arrives as EvaluationCompleted or
    EvaluationFailed, and at ``GET /evaluations/{evaluation_id}`` once the command is taken up."""

    evaluation_id: UUID
    request_id: UUID = Field(description="ce_id of the EvaluationRequested event")
    model_id: UUID
    version: str
    dataset: str | None
    dataset_seed: int | None
    state: Literal["requested"] = "requested"


class MetricsSync(BaseModel):
    """Whether the metrics were stored on the version (version service)."""

    state: Literal["none", "pending", "done", "failed"]
    attempts: int
    error: str | None


class EvaluationOut(BaseModel):
    evaluation_id: UUID
    model_id: UUID
    version: str
    version_id: UUID | None
    state: State
    trigger: Trigger
    requested_by: str
    requested_dataset: str | None
    requested_seed: int | None
    dataset: str | None
    dataset_seed: int | None
    dataset_hash: str | None
    split: str | None
    samples: int | None
    held_out: bool | None = Field(None, description="True when measured on the test split of the training data")
    device: str | None
    model_type: str | None
    artifact_sha256: str | None
    metrics: dict[str, float] | None
    reason: str | None = Field(None, description="Why the evaluation failed")
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    metrics_sync: MetricsSync


class EvaluationDetail(EvaluationOut):
    """One evaluation with the full report, the model's config, hyperparameters and layer structure."""

    details: dict[str, Any] | None
    config: dict[str, Any] | None
    hyperparameters: dict[str, Any] | None
    structure: list[dict[str, Any]] | None


class EvaluationList(BaseModel):
    model_id: UUID
    version: str
    evaluations: list[EvaluationOut] = Field(description="Latest first")


class VersionRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(min_length=1, max_length=128, description="Model id or name")
    version: str = VersionText


class CompareRequest(BaseModel):
    """Compare two versions (seed 001 §5.1), from ``model_1`` to ``model_2``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "model_1": {"model_id": "digits-cnn", "version": "1.0.0"},
                "model_2": {"model_id": "digits-cnn", "version": "1.1.0"},
                "metrics": ["accuracy", "latency_p99_ms"],
            }
        },
    )

    model_1: VersionRef
    model_2: VersionRef
    metrics: list[MetricName] | None = Field(None, min_length=1, description="Only these metrics; all by default")


class ComparedVersion(BaseModel):
    model_id: UUID
    name: str
    version: str
    version_id: UUID | None
    evaluation_id: UUID
    evaluated_at: datetime | None
    model_type: str | None
    dataset: str | None
    dataset_seed: int | None
    dataset_hash: str | None
    metrics: dict[str, float]


class ComparisonOut(BaseModel):
    comparison_id: UUID
    created_at: datetime
    created_by: str
    model_1: ComparedVersion
    model_2: ComparedVersion
    differences: dict[str, str] = Field(description='Signed change from model_1 to model_2, e.g. {"accuracy": "+0.020"}')
    performance: dict[str, Any] = Field(description="Per metric: both values, numeric delta, relative change, which is better")
    parameters: dict[str, Any] = Field(description="Model type, config and training hyperparameter differences")
    structure: dict[str, Any] | None = Field(
        description="Layer by layer: same / changed / only_in_1 / only_in_2, with parameter and output tensor shapes"
    )
    notes: list[str]
