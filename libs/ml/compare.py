"""Compare two model versions: layer structure, config/hyperparameters and metrics, plus an HTML report.

Typical use by the evaluation service::

    a_layers = structure_of(model_a, example_input(type_a, config_a))
    b_layers = structure_of(model_b, example_input(type_b, config_b))
    comparison = build_comparison(
        {"name": "digits-cnn", "version": 3}, {"name": "digits-cnn", "version": 4},
        structure=compare_structure(a_layers, b_layers),
        parameters=compare_parameters(config_a, config_b, hparams_a, hparams_b),
        metrics=compare_metrics(metrics_a, metrics_b),
    )
    html = render_html_report(comparison)

Every function returns plain dicts/lists so results can be stored as JSON or sent in events.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jinja2
import torch
from torch import nn

from libs.ml.zoo import example_input

__all__ = [
    "LayerInfo",
    "build_comparison",
    "compare_metrics",
    "compare_parameters",
    "compare_structure",
    "example_input",
    "format_delta",
    "render_html_report",
    "structure_of",
]

_TEMPLATES = Path(__file__).parent / "templates"

# Substrings deciding whether a bigger metric is better; checked in order, first match wins.
_HIGHER_IS_BETTER = ("accuracy", "precision", "recall", "f1", "r2", "auc", "throughput")
_LOWER_IS_BETTER = ("loss", "mse", "mae", "error", "latency", "flops", "parameter", "bytes", "size", "time")


# --------------------------------------------------------------------------------------------------
# Structure
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerInfo:
    """One layer of a model: qualified name, class, own parameter shapes, output shape and parameter count.

    ``output_shape`` is the shape of the first tensor the layer returned during the example forward pass,
    or ``None`` if the layer was not called as a module (e.g. attention output projections that
    ``MultiheadAttention`` applies functionally).
    """

    name: str
    class_name: str
    parameter_shapes: dict[str, list[int]]
    output_shape: list[int] | None
    parameter_count: int

    def as_dict(self) -> dict[str, Any]:
        """Plain dict of the fields."""
        return asdict(self)


def _first_tensor_shape(value: Any) -> list[int] | None:
    if isinstance(value, torch.Tensor):
        return list(value.shape)
    if isinstance(value, (tuple, list)):
        for item in value:
            shape = _first_tensor_shape(item)
            if shape is not None:
                return shape
    return None


def _is_layer(module: nn.Module) -> bool:
    # Leaves and modules holding their own weights (LSTM, MultiheadAttention); pure containers are noise.
    has_children = next(module.children(), None) is not None
    has_own_params = next(module.parameters(recurse=False), None) is not None
    return not has_children or has_own_params


def structure_of(model: nn.Module, example_input: torch.Tensor) -> list[LayerInfo]:
    """Run one forward pass of ``model`` on ``example_input`` and describe each layer in execution order
    of registration (``named_modules`` order). The model's train/eval mode is left as it was."""
    layers = [(name, module) for name, module in model.named_modules() if name and _is_layer(module)]
    if not layers:  # a model that is a single leaf module
        layers = [("", model)]
    outputs: dict[str, list[int] | None] = {}

    def recorder(name: str):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            outputs.setdefault(name, _first_tensor_shape(output))  # first call wins for shared modules

        return hook

    handles = [module.register_forward_hook(recorder(name)) for name, module in layers]
    was_training = model.training
    first_param = next(model.parameters(), None)
    device = first_param.device if first_param is not None else torch.device("cpu")
    try:
        model.eval()
        # Grad mode keeps TransformerEncoder off its fused fast path, which would skip the sub-module hooks.
        with torch.enable_grad():
            model(example_input.to(device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    infos = []
    for name, module in layers:
        own = dict(module.named_parameters(recurse=False)) if name else dict(module.named_parameters())
        infos.append(
            LayerInfo(
                name=name or "<model>",
                class_name=type(module).__name__,
                parameter_shapes={pname: list(p.shape) for pname, p in own.items()},
                output_shape=outputs.get(name),
                parameter_count=sum(p.numel() for p in own.values()),
            )
        )
    return infos


def _layer_dict(layer: LayerInfo | Mapping[str, Any]) -> dict[str, Any]:
    return layer.as_dict() if isinstance(layer, LayerInfo) else dict(layer)


def _layer_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    differences = []
    if a["class_name"] != b["class_name"]:
        differences.append(f"class {a['class_name']} → {b['class_name']}")
    a_params, b_params = a["parameter_shapes"], b["parameter_shapes"]
    for pname in list(a_params) + [p for p in b_params if p not in a_params]:
        if pname not in b_params:
            differences.append(f"parameter {pname} {a_params[pname]} only in A")
        elif pname not in a_params:
            differences.append(f"parameter {pname} {b_params[pname]} only in B")
        elif list(a_params[pname]) != list(b_params[pname]):
            differences.append(f"{pname} {list(a_params[pname])} → {list(b_params[pname])}")
    if a.get("output_shape") != b.get("output_shape"):
        differences.append(f"output {a.get('output_shape')} → {b.get('output_shape')}")
    return differences


def _aligned_names(a_names: list[str], b_names: list[str]) -> list[str]:
    """A's order, with names only in B inserted right after the B layer that precedes them."""
    merged = list(a_names)
    in_merged = set(merged)
    cursor = -1  # position in ``merged`` of the last B name seen
    for name in b_names:
        if name in in_merged:
            cursor = merged.index(name)
        else:
            cursor += 1
            merged.insert(cursor, name)
            in_merged.add(name)
    return merged


def compare_structure(
    a_layers: Sequence[LayerInfo | Mapping[str, Any]], b_layers: Sequence[LayerInfo | Mapping[str, Any]]
) -> dict[str, Any]:
    """Align two layer lists by qualified name.

    Returns ``{"layers": [...], "same": [...], "changed": [...], "only_in_a": [...], "only_in_b": [...],
    "counts": {...}, "parameters": {"a", "b", "delta"}}``. Each entry of ``layers`` has ``name``,
    ``status`` (one of the four categories), the layer dicts ``a``/``b`` (``None`` when absent) and
    human-readable ``differences`` such as ``"weight [16, 1, 3, 3] → [8, 1, 3, 3]"``.
    """
    a_by_name = {d["name"]: d for d in map(_layer_dict, a_layers)}
    b_by_name = {d["name"]: d for d in map(_layer_dict, b_layers)}
    rows = []
    groups: dict[str, list[str]] = {"same": [], "changed": [], "only_in_a": [], "only_in_b": []}
    for name in _aligned_names(list(a_by_name), list(b_by_name)):
        a, b = a_by_name.get(name), b_by_name.get(name)
        if a is None:
            status, differences = "only_in_b", []
        elif b is None:
            status, differences = "only_in_a", []
        else:
            differences = _layer_differences(a, b)
            status = "changed" if differences else "same"
        groups[status].append(name)
        rows.append({"name": name, "status": status, "a": a, "b": b, "differences": differences})
    a_total = sum(d["parameter_count"] for d in a_by_name.values())
    b_total = sum(d["parameter_count"] for d in b_by_name.values())
    return {
        "layers": rows,
        **groups,
        "counts": {status: len(names) for status, names in groups.items()},
        "parameters": {"a": a_total, "b": b_total, "delta": b_total - a_total, "delta_display": format_delta(b_total - a_total, a_total, b_total)},
    }


# --------------------------------------------------------------------------------------------------
# Config and hyperparameters
# --------------------------------------------------------------------------------------------------


def _flatten(mapping: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in (mapping or {}).items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{path}."))
        else:
            flat[path] = list(value) if isinstance(value, tuple) else value
    return flat


def _diff(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> dict[str, Any]:
    fa, fb = _flatten(a), _flatten(b)
    return {
        "added": {k: fb[k] for k in fb if k not in fa},
        "removed": {k: fa[k] for k in fa if k not in fb},
        "changed": {k: {"a": fa[k], "b": fb[k]} for k in fa if k in fb and fa[k] != fb[k]},
        "unchanged": {k: fa[k] for k in fa if k in fb and fa[k] == fb[k]},
    }


def compare_parameters(
    a_config: Mapping[str, Any] | None,
    b_config: Mapping[str, Any] | None,
    a_hparams: Mapping[str, Any] | None = None,
    b_hparams: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Key-level differences of model configs and of training hyperparameters, going from A to B.

    Nested mappings are flattened to dotted keys. Returns ``{"config": diff, "hyperparameters": diff}``
    where each diff has ``added`` (only in B), ``removed`` (only in A), ``changed`` (``{"a", "b"}``) and
    ``unchanged``.
    """
    return {"config": _diff(a_config, b_config), "hyperparameters": _diff(a_hparams, b_hparams)}


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _direction(name: str) -> bool | None:
    """True if higher is better, False if lower is better, None if unknown."""
    lowered = name.lower()
    if any(word in lowered for word in _HIGHER_IS_BETTER):
        return True
    if any(word in lowered for word in _LOWER_IS_BETTER):
        return False
    return None


def format_delta(delta: float, a: float | None = None, b: float | None = None) -> str:
    """Signed, human-readable delta: ``"+0.020"``, ``"-1.35"``, ``"+12,034"`` (integers stay integers)."""
    if isinstance(delta, int) and (a is None or isinstance(a, int)) and (b is None or isinstance(b, int)):
        return f"{delta:+,d}"
    magnitude = abs(delta)
    if magnitude >= 1000:
        return f"{delta:+,.0f}"
    if magnitude >= 10:
        return f"{delta:+.1f}"
    if magnitude >= 1:
        return f"{delta:+.2f}"
    return f"{delta:+.3f}"


def _display(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,d}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def compare_metrics(a_metrics: Mapping[str, Any], b_metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Signed deltas (B − A) of the numeric metrics both versions have.

    Each entry of ``metrics``: ``name``, ``a``, ``b``, ``delta`` (number), ``delta_display`` (e.g.
    ``"+0.020"``), ``relative_change`` (delta / |A|, ``None`` when A is 0), ``higher_is_better`` (``None``
    if unknown) and ``better`` (``"a"``, ``"b"``, ``"tie"`` or ``None``). Metrics present on one side only
    or not numeric (``None``, strings) are listed separately.
    """
    rows, not_comparable = [], []
    for name in a_metrics:
        if name not in b_metrics:
            continue
        a, b = a_metrics[name], b_metrics[name]
        if not (_is_number(a) and _is_number(b)):
            not_comparable.append(name)
            continue
        delta = b - a
        higher = _direction(name)
        if delta == 0:
            better = "tie"
        elif higher is None:
            better = None
        else:
            better = "b" if (delta > 0) == higher else "a"
        rows.append(
            {
                "name": name,
                "a": a,
                "b": b,
                "a_display": _display(a),
                "b_display": _display(b),
                "delta": delta,
                "delta_display": format_delta(delta, a, b),
                "relative_change": delta / abs(a) if a != 0 else None,
                "higher_is_better": higher,
                "better": better,
            }
        )
    return {
        "metrics": rows,
        "only_in_a": [n for n in a_metrics if n not in b_metrics],
        "only_in_b": [n for n in b_metrics if n not in a_metrics],
        "not_comparable": not_comparable,
    }


# --------------------------------------------------------------------------------------------------
# HTML report
# --------------------------------------------------------------------------------------------------


def build_comparison(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    *,
    structure: Mapping[str, Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """Assemble the dict :func:`render_html_report` expects.

    ``a``/``b`` describe the versions (at least ``name``; ``version``, ``model_type``… are shown too);
    the other sections are outputs of :func:`compare_structure`, :func:`compare_parameters` and
    :func:`compare_metrics` and may be omitted.
    """
    return {
        "title": title or f"{a.get('name', 'A')} vs {b.get('name', 'B')}",
        "a": dict(a),
        "b": dict(b),
        "structure": dict(structure) if structure is not None else None,
        "parameters": dict(parameters) if parameters is not None else None,
        "metrics": dict(metrics) if metrics is not None else None,
    }


_CHART_WIDTH, _LABEL_WIDTH, _BAR_HEIGHT, _ROW_GAP = 640, 170, 14, 14
_BAR_AREA = _CHART_WIDTH - _LABEL_WIDTH - 90  # room on the right for the value labels


def _chart_rows(metric_rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Pre-computed SVG geometry: per metric two bars scaled to the larger |value| of the pair, since
    metrics live on different scales (accuracy vs latency vs FLOPs)."""
    rows, y = [], 24
    for row in metric_rows:
        scale = max(abs(row["a"]), abs(row["b"])) or 1.0
        bars = []
        for offset, side in enumerate(("a", "b")):
            value = row[side]
            width = max(abs(value) / scale * _BAR_AREA, 1.0) if value else 0.0
            bars.append(
                {
                    "side": side,
                    "y": y + offset * (_BAR_HEIGHT + 2),
                    "width": round(width, 2),
                    "label": row[f"{side}_display"],
                    "label_x": round(_LABEL_WIDTH + width + 6, 2),
                    "negative": value < 0,
                }
            )
        rows.append({"name": row["name"], "label_y": y + _BAR_HEIGHT + 1, "bars": bars})
        y += 2 * _BAR_HEIGHT + 2 + _ROW_GAP
    return {
        "rows": rows,
        "width": _CHART_WIDTH,
        "height": y,
        "label_width": _LABEL_WIDTH,
        "bar_height": _BAR_HEIGHT,
    }


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,  # names, configs and metric labels come from users: always escape
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html_report(comparison: Mapping[str, Any]) -> str:
    """Render a self-contained HTML page (inline CSS and SVG, no scripts or external resources).

    ``comparison`` is the dict from :func:`build_comparison`; missing sections are skipped.
    """
    metrics = comparison.get("metrics")
    chart = _chart_rows(metrics["metrics"]) if metrics and metrics.get("metrics") else None
    template = _environment().get_template("comparison_report.html")
    return template.render(
        title=comparison.get("title") or "Model comparison",
        a=comparison.get("a") or {"name": "A"},
        b=comparison.get("b") or {"name": "B"},
        structure=comparison.get("structure"),
        parameters=comparison.get("parameters"),
        metrics=metrics,
        chart=chart,
    )
