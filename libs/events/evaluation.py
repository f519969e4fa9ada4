"""Events of evaluations (topic ``cairn.evaluation.v1``), emitted by the evaluation service, plus the
EvaluationRequested command any producer may send."""
from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

from pydantic import Field

from libs.events import topics
from libs.events.base import Event

_MODEL = "7d0c6f9e-2f4b-4d7e-9a4e-0d5f3b8f1a11"


class EvaluationRequested(Event):
    """A command: evaluate ``version`` of a model on its held-out split (or on ``dataset`` if given)."""

    event_type: ClassVar[str] = "EvaluationRequested"
    topic: ClassVar[str] = topics.EVALUATION
    example: ClassVar[dict[str, Any]] = {"model_id": _MODEL, "version": "1.1.0", "dataset": None, "dataset_seed": None}

    model_id: UUID
    version: str
    dataset: str | None = None
    dataset_seed: int | None = None


class EvaluationCompleted(Event):
    """Sent when a version was measured on a held-out split. ``metrics`` holds accuracy, precision_macro,
    recall_macro, f1_macro, loss, latency_p50_ms, latency_p99_ms, throughput_per_s, parameters,
    size_bytes and flops (regression models carry mae/r2 instead of the classification scores)."""

    event_type: ClassVar[str] = "EvaluationCompleted"
    topic: ClassVar[str] = topics.EVALUATION
    example: ClassVar[dict[str, Any]] = {
        "model_id": _MODEL, "version": "1.1.0", "version_id": "0b6c1f53-5a3e-4a55-9c0e-3f1d2a6b7c81",
        "evaluation_id": "e1e2e3e4-0000-4000-8000-000000000001", "dataset": "digits", "dataset_hash": "4f2a",
        "split": "test", "samples": 270, "device": "cpu",
        "metrics": {"accuracy": 0.97, "precision_macro": 0.97, "recall_macro": 0.97, "f1_macro": 0.97, "loss": 0.1,
                    "latency_p50_ms": 0.4, "latency_p99_ms": 0.9, "throughput_per_s": 80000.0,
                    "parameters": 12000.0, "size_bytes": 48000.0, "flops": 150000.0},
    }

    model_id: UUID
    version: str
    version_id: UUID
    evaluation_id: UUID
    dataset: str
    dataset_hash: str
    split: str = "test"
    samples: int
    device: str
    metrics: dict[str, float] = Field(description="Measured by the evaluation service, never reported by a trainer")


class EvaluationFailed(Event):
    """Sent when a version could not be evaluated (no readable weights, no dataset); ``reason`` says why."""

    event_type: ClassVar[str] = "EvaluationFailed"
    topic: ClassVar[str] = topics.EVALUATION
    example: ClassVar[dict[str, Any]] = {"model_id": _MODEL, "version": "1.1.0", "reason": "artifact is not a cairn.torch/1 file"}

    model_id: UUID
    version: str
    reason: str
