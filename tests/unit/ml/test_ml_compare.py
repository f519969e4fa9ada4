"""Version comparison: layer alignment, config/metric deltas and the self-contained HTML report."""
from __future__ import annotations

import re

import pytest
import torch

from libs.ml.compare import (
    build_comparison,
    compare_metrics,
    compare_parameters,
    compare_structure,
    example_input,
    format_delta,
    render_html_report,
    structure_of,
)
from libs.ml.zoo import build_model

CNN = {"image_size": 8, "image_channels": 1, "num_classes": 10}


def _layers(model_type: str, config: dict):
    model = build_model(model_type, config)
    return model, structure_of(model, example_input(model_type, config))


def test_cnn_with_8_vs_16_base_channels_shows_changed_layers_with_shapes() -> None:
    _, a = _layers("vision", {**CNN, "base_channels": 8})
    _, b = _layers("vision", {**CNN, "base_channels": 16})

    result = compare_structure(a, b)

    rows = {row["name"]: row for row in result["layers"]}
    first_conv = rows["features.0.0"]
    assert first_conv["status"] == "changed"
    assert first_conv["a"]["parameter_shapes"]["weight"] == [8, 1, 3, 3]
    assert first_conv["b"]["parameter_shapes"]["weight"] == [16, 1, 3, 3]
    assert "weight [8, 1, 3, 3] → [16, 1, 3, 3]" in first_conv["differences"]
    assert "output [1, 8, 8, 8] → [1, 16, 8, 8]" in first_conv["differences"]
    assert "weight [10, 32] → [10, 64]" in rows["head"]["differences"]
    assert result["only_in_a"] == [] and result["only_in_b"] == []
    assert "head" in result["changed"] and result["counts"]["changed"] == len(result["changed"])
    assert result["parameters"]["delta"] == result["parameters"]["b"] - result["parameters"]["a"] > 0


def test_identical_models_are_all_same_and_layer_params_add_up() -> None:
    model, a = _layers("transformer", {"vocab_size": 40, "max_seq_len": 8, "d_model": 16, "num_heads": 2, "num_layers": 1, "d_ff": 32, "num_classes": 3})
    result = compare_structure(a, [layer.as_dict() for layer in a])  # dicts (e.g. from JSON) work too
    assert result["counts"] == {"same": len(a), "changed": 0, "only_in_a": 0, "only_in_b": 0}
    assert sum(layer.parameter_count for layer in a) == sum(p.numel() for p in model.parameters())
    attention = next(layer for layer in a if layer.class_name == "MultiheadAttention")
    assert attention.output_shape == [1, 8, 16]


def test_added_layers_are_only_in_b_and_keep_their_position() -> None:
    _, a = _layers("classification", {"input_dim": 4, "num_classes": 2, "hidden_sizes": [8]})
    _, b = _layers("classification", {"input_dim": 4, "num_classes": 2, "hidden_sizes": [8, 8]})

    result = compare_structure(a, b)

    assert result["only_in_b"] == ["mlp.3", "mlp.4"]
    assert result["only_in_a"] == []
    assert [row["name"] for row in result["layers"]] == ["mlp.0", "mlp.1", "mlp.2", "mlp.3", "mlp.4"]
    # mlp.2 was the output layer in A and is a hidden layer in B.
    assert "weight [2, 8] → [8, 8]" in next(r for r in result["layers"] if r["name"] == "mlp.2")["differences"]


def test_structure_of_keeps_the_training_mode() -> None:
    model = build_model("vision", CNN)
    model.train()
    structure_of(model, example_input("vision", CNN))
    assert model.training


def test_compare_parameters_reports_added_removed_changed() -> None:
    result = compare_parameters(
        {"d_model": 64, "num_heads": 4, "dropout": 0.1},
        {"d_model": 128, "num_heads": 4, "d_ff": 256},
        {"learning_rate": 1e-3, "epochs": 5, "early": {"patience": 2}},
        {"learning_rate": 1e-3, "epochs": 8, "early": {"patience": 3}},
    )
    assert result["config"]["changed"] == {"d_model": {"a": 64, "b": 128}}
    assert result["config"]["added"] == {"d_ff": 256}
    assert result["config"]["removed"] == {"dropout": 0.1}
    assert result["config"]["unchanged"] == {"num_heads": 4}
    assert result["hyperparameters"]["changed"] == {"epochs": {"a": 5, "b": 8}, "early.patience": {"a": 2, "b": 3}}
    assert compare_parameters({"x": 1}, {"x": 1})["hyperparameters"]["added"] == {}


def test_compare_metrics_gives_signed_deltas_and_direction() -> None:
    result = compare_metrics(
        {"accuracy": 0.95, "loss": 0.30, "latency_p50_ms": 2.5, "parameter_count": 1000, "custom": 3.0, "note": "x", "old": 1},
        {"accuracy": 0.97, "loss": 0.25, "latency_p50_ms": 2.5, "parameter_count": 1500, "custom": 2.0, "note": "y", "new": 2},
    )
    rows = {row["name"]: row for row in result["metrics"]}
    assert rows["accuracy"]["delta"] == pytest.approx(0.02)
    assert rows["accuracy"]["delta_display"] == "+0.020"
    assert rows["accuracy"]["better"] == "b"
    assert rows["loss"]["delta_display"] == "-0.050" and rows["loss"]["better"] == "b"
    assert rows["latency_p50_ms"]["better"] == "tie"
    assert rows["parameter_count"]["delta_display"] == "+500" and rows["parameter_count"]["better"] == "a"
    assert rows["custom"]["better"] is None and rows["custom"]["relative_change"] == pytest.approx(-1 / 3)
    assert result["only_in_a"] == ["old"] and result["only_in_b"] == ["new"]
    assert result["not_comparable"] == ["note"]


def test_format_delta() -> None:
    assert format_delta(0.02) == "+0.020"
    assert format_delta(-0.0004) == "-0.000"
    assert format_delta(-1.234) == "-1.23"
    assert format_delta(12034, 1, 12035) == "+12,034"
    assert format_delta(2500.4) == "+2,500"


def test_html_report_is_self_contained_escaped_and_has_an_svg_chart() -> None:
    model_a, a = _layers("vision", {**CNN, "base_channels": 8})
    model_b, b = _layers("vision", {**CNN, "base_channels": 16})
    comparison = build_comparison(
        {"name": "<script>alert('a')</script>", "version": 1, "model_type": "vision"},
        {"name": "digits & co", "version": 2, "model_type": "vision"},
        structure=compare_structure(a, b),
        parameters=compare_parameters(model_a.config, model_b.config, {"epochs": 5}, {"epochs": 8}),
        metrics=compare_metrics({"accuracy": 0.91, "loss": 0.3}, {"accuracy": 0.95, "loss": 0.2}),
    )

    html = render_html_report(comparison)

    assert html.startswith("<!DOCTYPE html>")
    assert "&lt;script&gt;alert(&#39;a&#39;)&lt;/script&gt;" in html
    assert "<script" not in html.lower()
    assert "digits &amp; co" in html
    assert "<svg" in html and html.count("<rect") >= 4
    assert "+0.040" in html and "features.0.0" in html and "[8, 1, 3, 3] → [16, 1, 3, 3]" in html
    # No external resources: no src/href attributes, no remote URLs besides the SVG namespace.
    assert not re.search(r"\s(src|href)=", html)
    assert set(re.findall(r"https?://[^\s\"']+", html)) <= {"http://www.w3.org/2000/svg"}


def test_html_report_renders_with_sections_missing() -> None:
    html = render_html_report(build_comparison({"name": "a"}, {"name": "b"}))
    assert "a vs b" in html and "<svg" not in html


def test_structure_output_of_rnn_is_its_sequence_output() -> None:
    config = {"n_features": 6, "num_classes": 2, "hidden_size": 5, "bidirectional": True}
    _, layers = _layers("audio", config)
    rnn = next(layer for layer in layers if layer.name == "rnn")
    assert rnn.class_name == "LSTM" and rnn.output_shape == [1, 16, 10]
    assert torch.Size(rnn.parameter_shapes["weight_ih_l0"]) == torch.Size([20, 6])
