"""The CPU-heavy part of an evaluation: rebuild the model from its weights, load the dataset's held-out
split, measure it and describe its layers. Synchronous; the service runs it with ``asyncio.to_thread``
so the event loop keeps serving while torch computes. No database, broker or network here."""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from libs.ml.artifact import ArtifactError, load_artifact
from libs.ml.compare import example_input, structure_of
from libs.ml.datasets import Dataset, DatasetError, load_dataset
from libs.ml.device import choose_device
from libs.ml.evaluate import evaluate
from services.evaluation.domain import Unevaluable, choose_dataset, metrics_from_report

log = logging.getLogger(__name__)

SPLIT = "test"


@dataclass(frozen=True)
class Measurement:
    """Everything one evaluation found out about a version's weights."""

    model_type: str
    config: dict[str, Any]
    hyperparameters: dict[str, Any]
    dataset: str
    dataset_seed: int
    dataset_hash: str
    split: str
    samples: int
    device: str
    metrics: dict[str, float]
    details: dict[str, Any]
    structure: list[dict[str, Any]] | None


@functools.lru_cache(maxsize=16)
def _dataset(name: str, seed: int, model_type: str) -> Dataset:
    # Datasets are small, immutable and deterministic; keep the recent ones instead of re-splitting.
    return load_dataset(name, seed=seed, for_model_type=model_type)


def measure(
    artifact: bytes,
    *,
    dataset: str | None = None,
    dataset_seed: int | None = None,
    device: str = "auto",
    latency_runs: int = 50,
) -> Measurement:
    """Evaluate artifact bytes on the held-out (test) split of ``dataset`` (default: the dataset named in
    the artifact). Raises :class:`Unevaluable` when that cannot work whatever the retries."""
    try:
        loaded = load_artifact(artifact, map_location="cpu")
    except ArtifactError as exc:
        raise Unevaluable(f"weights are not a readable cairn.torch/1 artifact: {exc}") from None
    extra = loaded.extra or {}
    choice = choose_dataset(extra, dataset, dataset_seed)
    try:
        data = _dataset(choice.name, choice.seed, loaded.model_type)
    except DatasetError as exc:
        raise Unevaluable(f"cannot evaluate a {loaded.model_type} model on dataset {choice.name!r}: {exc}") from None
    model_classes = loaded.config.get("num_classes")
    if data.num_classes is not None and model_classes is not None and model_classes != data.num_classes:
        raise Unevaluable(
            f"the model predicts {model_classes} classes but dataset {choice.name!r} has {data.num_classes}"
        )
    target = choose_device(device)
    split = data.split(SPLIT)
    try:
        report = evaluate(loaded.model, split, device=target, latency_runs=latency_runs, task=data.task).as_dict()
    except (RuntimeError, ValueError, IndexError) as exc:
        # shape mismatches between the model and the data are deterministic: no retry helps
        raise Unevaluable(f"the model does not fit dataset {choice.name!r}: {type(exc).__name__}: {exc}") from None
    structure: list[dict[str, Any]] | None
    try:
        structure = [layer.as_dict() for layer in structure_of(loaded.model, example_input(loaded.model_type, loaded.config))]
    except Exception:  # noqa: BLE001 - the structure is a bonus for comparisons, never a reason to fail
        log.warning("could not describe the model's layers", exc_info=True)
        structure = None
    hyperparameters = extra.get("hyperparameters")
    details = {
        "task": report["task"],
        "report": report,
        "latency_runs": latency_runs,
        "artifact_bytes": len(artifact),
        "held_out": choice.held_out,
        "trained_on": {
            "dataset": choice.trained_on,
            "seed": choice.trained_seed,
            "dataset_hash": extra.get("dataset_hash") if isinstance(extra.get("dataset_hash"), str) else None,
        },
    }
    return Measurement(
        model_type=loaded.model_type,
        config=dict(loaded.config),
        hyperparameters=dict(hyperparameters) if isinstance(hyperparameters, dict) else {},
        dataset=choice.name,
        dataset_seed=choice.seed,
        dataset_hash=data.content_hash,
        split=SPLIT,
        samples=report["n_samples"],
        device=report["device"],
        metrics=metrics_from_report(report),
        details=details,
        structure=structure,
    )
