"""Pure rules of evaluations and comparisons: which metrics an evaluation publishes and under which
names, which dataset and split seed a version is measured on, evaluation ids, retry delays, and the
assembly of a comparison of two evaluated versions. No I/O; the clock and ids are passed in."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from libs.ml.compare import build_comparison, compare_metrics, compare_parameters, compare_structure

# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------

CLASSIFICATION_METRICS: tuple[str, ...] = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "loss")
REGRESSION_METRICS: tuple[str, ...] = ("loss", "mae", "r2")
COST_METRICS: tuple[str, ...] = (
    "latency_p50_ms", "latency_p99_ms", "throughput_per_s", "parameters", "size_bytes", "flops",
)
#: Every metric name an evaluation may publish, in display order.
METRIC_NAMES: tuple[str, ...] = (*CLASSIFICATION_METRICS, "mae", "r2", *COST_METRICS)

# Published name -> field of libs.ml.evaluate.EvaluationReport, where they differ.
_REPORT_FIELD = {
    "throughput_per_s": "throughput_samples_per_s",
    "parameters": "parameter_count",
    "size_bytes": "state_dict_bytes",
    "flops": "flops_per_sample",
}


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def metrics_from_report(report: Mapping[str, Any]) -> dict[str, float]:
    """The ``metrics`` of EvaluationCompleted from ``EvaluationReport.as_dict()``.

    Classification: accuracy, precision_macro, recall_macro, f1_macro, loss; regression: loss, mae, r2;
    both: latency_p50_ms, latency_p99_ms, throughput_per_s, parameters, size_bytes, flops. Values that
    are missing or not finite (R² of a single sample, an unmeasurably fast pass) are left out, since
    JSON and the version service accept finite numbers only.
    """
    quality = REGRESSION_METRICS if report.get("task") == "regression" else CLASSIFICATION_METRICS
    metrics: dict[str, float] = {}
    for name in (*quality, *COST_METRICS):
        value = _finite(report.get(_REPORT_FIELD.get(name, name)))
        if value is not None:
            metrics[name] = value
    return metrics


# --------------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------------

QUEUED, RUNNING, COMPLETED, FAILED = "queued", "running", "completed", "failed"
STATES = (QUEUED, RUNNING, COMPLETED, FAILED)

TRIGGER_ARTIFACT, TRIGGER_REQUEST, TRIGGER_COMPARE = "artifact_stored", "requested", "compare"
#: Runs someone waits for go first.
PRIORITY = {TRIGGER_COMPARE: 2, TRIGGER_REQUEST: 1, TRIGGER_ARTIFACT: 0}

_NAMESPACE = UUID("5b0f3c1e-7a2d-4e8b-9c61-0e4a8d2f6b13")


def evaluation_id_for(trigger_event_id: UUID) -> UUID:
    """The evaluation an event starts: the same event (redelivered, republished) always names the same
    evaluation, while every new request is a new evaluation."""
    return uuid5(_NAMESPACE, f"evaluation:{trigger_event_id}")


def retry_delay_s(attempt: int, *, base: float = 1.0, cap: float = 60.0) -> float:
    """Back-off before try ``attempt + 1`` (attempt counts from 1): base, 2·base, 4·base... up to cap."""
    return min(cap, base * 2 ** max(0, attempt - 1))


class Unevaluable(ValueError):
    """A version that cannot be evaluated, for a reason no retry changes (weights that are not a
    cairn.torch artifact, no dataset, a dataset the model does not fit). It ends as EvaluationFailed."""


@dataclass(frozen=True)
class DatasetChoice:
    """What a version is measured on, and whether that split is really held out from its training."""

    name: str
    seed: int
    trained_on: str | None
    trained_seed: int | None

    @property
    def held_out(self) -> bool | None:
        """True when this is the test split of the data the model was trained on (same split seed);
        False when the split seed differs (test samples may have been training samples); None when the
        model was trained on another or an unknown dataset."""
        if self.trained_on is None or self.trained_on != self.name:
            return None
        return self.trained_seed == self.seed


def choose_dataset(extra: Mapping[str, Any], requested: str | None, requested_seed: int | None) -> DatasetChoice:
    """The dataset (by name) and split seed of an evaluation.

    A requested dataset wins over the one in the artifact's ``extra.dataset`` descriptor. The split seed
    is the requested one, else the training split's seed when evaluating on the training dataset (so the
    test split is truly held out), else 0. Raises :class:`Unevaluable` when neither names a dataset.
    """
    descriptor = extra.get("dataset") if isinstance(extra, Mapping) else None
    trained_on: str | None = None
    trained_seed: int | None = None
    if isinstance(descriptor, Mapping):
        name = descriptor.get("name")
        trained_on = name if isinstance(name, str) and name else None
        split = descriptor.get("split")
        seed = split.get("seed") if isinstance(split, Mapping) else None
        trained_seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
    elif isinstance(descriptor, str) and descriptor:
        trained_on = descriptor
    name = requested or trained_on
    if not name:
        raise Unevaluable("the artifact names no dataset (extra.dataset) and none was requested")
    if requested_seed is not None:
        seed = requested_seed
    elif name == trained_on and trained_seed is not None:
        seed = trained_seed
    else:
        seed = 0
    return DatasetChoice(name=name, seed=seed, trained_on=trained_on, trained_seed=trained_seed)


# --------------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------------

SIDES = ("model_1", "model_2")


@dataclass(frozen=True)
class Side:
    """One evaluated version taking part in a comparison."""

    model_id: UUID
    model_name: str
    version: str
    version_id: UUID | None
    evaluation_id: UUID
    evaluated_at: datetime | None
    model_type: str | None
    config: Mapping[str, Any]
    hyperparameters: Mapping[str, Any]
    metrics: Mapping[str, float]
    structure: Sequence[Mapping[str, Any]] | None
    dataset: str | None
    dataset_seed: int | None
    dataset_hash: str | None

    def summary(self, metrics: Mapping[str, float]) -> dict[str, Any]:
        return {
            "model_id": str(self.model_id),
            "name": self.model_name,
            "version": self.version,
            "version_id": str(self.version_id) if self.version_id else None,
            "evaluation_id": str(self.evaluation_id),
            "evaluated_at": self.evaluated_at.isoformat() if self.evaluated_at else None,
            "model_type": self.model_type,
            "dataset": self.dataset,
            "dataset_seed": self.dataset_seed,
            "dataset_hash": self.dataset_hash,
            "metrics": dict(metrics),
        }

    def card(self) -> dict[str, Any]:
        """What the HTML report shows about this side (``name`` is the heading)."""
        return {
            "name": f"{self.model_name} {self.version}",
            "model_id": str(self.model_id),
            "model_type": self.model_type,
            "dataset": f"{self.dataset} (seed {self.dataset_seed})" if self.dataset else None,
            "evaluation_id": str(self.evaluation_id),
        }


def select_metrics(metrics: Mapping[str, float], wanted: Sequence[str] | None) -> dict[str, float]:
    """The metrics to compare, in the standard order: all of them, or only those ``wanted``."""
    names = [n for n in METRIC_NAMES if n in metrics] + sorted(n for n in metrics if n not in METRIC_NAMES)
    if wanted is not None:
        keep = set(wanted)
        names = [n for n in names if n in keep]
    return {name: metrics[name] for name in names}


_WHO = {"a": "model_1", "b": "model_2"}


def _rename_side(text: str) -> str:
    # libs.ml.compare says "only in A"/"only in B"; the API names the sides model_1 and model_2.
    return text.replace(" only in A", " only in model_1").replace(" only in B", " only in model_2")


def _performance(metrics: Mapping[str, Any]) -> dict[str, Any]:
    rows = []
    for row in metrics["metrics"]:
        rows.append({
            "name": row["name"],
            "model_1": row["a"],
            "model_2": row["b"],
            "delta": row["delta"],
            "delta_display": row["delta_display"],
            "relative_change": row["relative_change"],
            "higher_is_better": row["higher_is_better"],
            "better": _WHO.get(row["better"], row["better"]),
        })
    wins = {side: sum(1 for r in rows if r["better"] == side) for side in SIDES}
    return {
        "metrics": rows,
        "better": {r["name"]: r["better"] for r in rows},
        "wins": wins,
        "only_in_model_1": list(metrics["only_in_a"]),
        "only_in_model_2": list(metrics["only_in_b"]),
        "not_comparable": list(metrics["not_comparable"]),
    }


def _diff(diff: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "only_in_model_1": dict(diff["removed"]),
        "only_in_model_2": dict(diff["added"]),
        "changed": {k: {"model_1": v["a"], "model_2": v["b"]} for k, v in diff["changed"].items()},
        "unchanged": dict(diff["unchanged"]),
    }


_STATUS = {"same": "same", "changed": "changed", "only_in_a": "only_in_1", "only_in_b": "only_in_2"}


def _layer(layer: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if layer is None:
        return None
    return {
        "class_name": layer["class_name"],
        "parameter_shapes": dict(layer["parameter_shapes"]),
        "output_shape": layer.get("output_shape"),
        "parameter_count": layer["parameter_count"],
    }


def _structure(structure: Mapping[str, Any]) -> dict[str, Any]:
    layers = [
        {
            "name": row["name"],
            "status": _STATUS[row["status"]],
            "model_1": _layer(row["a"]),
            "model_2": _layer(row["b"]),
            "differences": [_rename_side(d) for d in row["differences"]],
        }
        for row in structure["layers"]
    ]
    parameters = structure["parameters"]
    return {
        "layers": layers,
        "same": list(structure["same"]),
        "changed": list(structure["changed"]),
        "only_in_1": list(structure["only_in_a"]),
        "only_in_2": list(structure["only_in_b"]),
        "counts": {_STATUS[k]: v for k, v in structure["counts"].items()},
        "parameters": {
            "model_1": parameters["a"], "model_2": parameters["b"], "delta": parameters["delta"],
            "delta_display": parameters["delta_display"],
        },
    }


def assemble_comparison(
    comparison_id: UUID,
    one: Side,
    two: Side,
    *,
    wanted: Sequence[str] | None,
    created_at: datetime,
    created_by: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Compare two evaluated versions, going from ``one`` (model_1) to ``two`` (model_2).

    Returns the API answer (``comparison_id``, ``model_1``/``model_2`` with their metrics,
    ``differences`` as signed display strings, ``performance`` with numeric deltas and which side is
    better, ``parameters`` (config and hyperparameter diff), ``structure`` layer by layer with tensor
    shapes, ``notes``) and the dict :func:`libs.ml.compare.render_html_report` renders.
    """
    m1, m2 = select_metrics(one.metrics, wanted), select_metrics(two.metrics, wanted)
    metrics = compare_metrics(m1, m2)
    parameters = compare_parameters(one.config, two.config, one.hyperparameters, two.hyperparameters)
    structure = (
        compare_structure(one.structure, two.structure) if one.structure is not None and two.structure is not None else None
    )
    notes = []
    if one.dataset_hash and two.dataset_hash and one.dataset_hash != two.dataset_hash:
        notes.append(
            f"the versions were evaluated on different data ({one.dataset} seed {one.dataset_seed} vs "
            f"{two.dataset} seed {two.dataset_seed}, content hashes differ): quality deltas compare different test sets"
        )
    if structure is None:
        notes.append("the layer structure of at least one version is unknown")
    result = {
        "comparison_id": str(comparison_id),
        "created_at": created_at.isoformat(),
        "created_by": created_by,
        "model_1": one.summary(m1),
        "model_2": two.summary(m2),
        "differences": {row["name"]: row["delta_display"] for row in metrics["metrics"]},
        "performance": _performance(metrics),
        "parameters": {
            "model_type": {"model_1": one.model_type, "model_2": two.model_type, "same": one.model_type == two.model_type},
            "config": _diff(parameters["config"]),
            "hyperparameters": _diff(parameters["hyperparameters"]),
        },
        "structure": _structure(structure) if structure is not None else None,
        "notes": notes,
    }
    title = f"{one.model_name} {one.version} vs {two.model_name} {two.version}"
    report = build_comparison(
        one.card(), two.card(), structure=structure, parameters=parameters, metrics=metrics, title=title,
    )
    return result, report


def wants_html(format: str | None, accept: str | None) -> bool:
    """``?format=`` decides; without it, an Accept header that names text/html before JSON does."""
    if format is not None:
        return format == "html"
    accept = (accept or "").lower()
    if "text/html" not in accept:
        return False
    json_at = accept.find("application/json")
    return json_at == -1 or accept.find("text/html") < json_at
