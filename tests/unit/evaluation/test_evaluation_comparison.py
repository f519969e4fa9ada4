"""Assembly of a comparison from two evaluated versions, and its HTML report."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest
import torch

from libs.ml.compare import example_input, render_html_report, structure_of
from libs.ml.zoo import build_model
from services.evaluation import domain

NOW = datetime(2026, 6, 15, 10, 0, tzinfo=timezone.utc)
VISION = {"image_size": 8, "image_channels": 1, "num_classes": 10, "architecture": "cnn"}
MLP = {"input_dim": 64, "num_classes": 10, "hidden_sizes": [32], "dropout": 0.0}


def layers(model_type: str, config: dict) -> list[dict]:
    torch.manual_seed(0)
    model = build_model(model_type, config)
    return [layer.as_dict() for layer in structure_of(model, example_input(model_type, config))]


def side(name: str, model_type: str, config: dict, metrics: dict, *, hp=None, dataset_hash="h-digits-vision",
         version="1.0.0") -> domain.Side:
    resolved = dict(build_model(model_type, config).config)
    return domain.Side(
        model_id=uuid.uuid4(), model_name=name, version=version, version_id=uuid.uuid4(), evaluation_id=uuid.uuid4(),
        evaluated_at=NOW, model_type=model_type, config=resolved, hyperparameters=hp or {"epochs": 4, "lr": 0.003},
        metrics=metrics, structure=layers(model_type, config), dataset="digits", dataset_seed=0,
        dataset_hash=dataset_hash,
    )


GOOD = {"accuracy": 0.96, "f1_macro": 0.95, "loss": 0.13, "latency_p99_ms": 0.61, "parameters": 24058.0}
WEAK = {"accuracy": 0.19, "f1_macro": 0.12, "loss": 2.2, "latency_p99_ms": 0.66, "parameters": 6218.0}


def compare(one, two, wanted=None):
    return domain.assemble_comparison(uuid.uuid4(), one, two, wanted=wanted, created_at=NOW, created_by="alice")


def test_same_architecture_with_other_width_is_changed_layer_by_layer_with_shapes():
    one = side("digits-cnn", "vision", {**VISION, "base_channels": 16}, GOOD)
    two = side("digits-cnn", "vision", {**VISION, "base_channels": 8}, WEAK, hp={"epochs": 1, "lr": 0.003}, version="1.1.0")
    result, _ = compare(one, two)
    structure = result["structure"]
    by_name = {row["name"]: row for row in structure["layers"]}
    first_conv = by_name["features.0.0"]
    assert first_conv["status"] == "changed"
    assert first_conv["model_1"]["parameter_shapes"]["weight"] == [16, 1, 3, 3]
    assert first_conv["model_2"]["parameter_shapes"]["weight"] == [8, 1, 3, 3]
    assert "weight [16, 1, 3, 3] → [8, 1, 3, 3]" in first_conv["differences"]
    assert by_name["head"]["model_1"]["output_shape"] == by_name["head"]["model_2"]["output_shape"] == [1, 10]
    assert by_name["head"]["status"] == "changed"  # 64 → 32 input features
    assert by_name["pool"]["differences"] == ["output [1, 64, 1, 1] → [1, 32, 1, 1]"]  # no weights, other shape
    assert structure["only_in_1"] == structure["only_in_2"] == []
    assert structure["counts"]["changed"] == len(structure["changed"]) > 0
    assert structure["parameters"]["model_1"] > structure["parameters"]["model_2"]
    assert structure["parameters"]["delta"] == structure["parameters"]["model_2"] - structure["parameters"]["model_1"]

    assert result["parameters"]["config"]["changed"] == {"base_channels": {"model_1": 16, "model_2": 8}}
    assert result["parameters"]["hyperparameters"]["changed"] == {"epochs": {"model_1": 4, "model_2": 1}}
    assert result["parameters"]["hyperparameters"]["unchanged"] == {"lr": 0.003}
    assert result["parameters"]["model_type"] == {"model_1": "vision", "model_2": "vision", "same": True}

    perf = {row["name"]: row for row in result["performance"]["metrics"]}
    assert perf["accuracy"]["delta"] == pytest.approx(0.19 - 0.96)
    assert perf["accuracy"]["better"] == "model_1"
    assert perf["parameters"]["better"] == "model_2"  # fewer is better
    assert result["differences"]["accuracy"] == "-0.770"
    assert result["differences"]["loss"].startswith("+")
    assert result["performance"]["wins"] == {"model_1": 4, "model_2": 1}
    assert result["notes"] == []
    assert result["model_1"]["metrics"] == GOOD and result["model_2"]["version"] == "1.1.0"
    json.dumps(result)  # stored as jsonb


def test_different_architectures_show_layers_only_in_one_or_the_other():
    one = side("digits-cnn", "vision", {**VISION, "base_channels": 8}, GOOD)
    two = side("digits-mlp", "classification", MLP, WEAK, dataset_hash="h-digits-flat")
    result, _ = compare(one, two)
    structure = result["structure"]
    assert "features.0.0" in structure["only_in_1"]
    assert "mlp.0" in structure["only_in_2"]
    mlp = next(row for row in structure["layers"] if row["name"] == "mlp.0")
    assert mlp["status"] == "only_in_2" and mlp["model_1"] is None
    assert mlp["model_2"]["parameter_shapes"] == {"weight": [32, 64], "bias": [32]}
    assert result["parameters"]["model_type"]["same"] is False
    assert "image_size" in result["parameters"]["config"]["only_in_model_1"]
    assert "hidden_sizes" in result["parameters"]["config"]["only_in_model_2"]
    assert any("different data" in note for note in result["notes"])


def test_the_metric_filter_keeps_only_the_asked_metrics_in_standard_order():
    one = side("a", "classification", MLP, GOOD, dataset_hash="h")
    two = side("b", "classification", MLP, WEAK, dataset_hash="h")
    result, report = compare(one, two, wanted=["parameters", "accuracy"])
    assert list(result["differences"]) == ["accuracy", "parameters"]
    assert result["model_1"]["metrics"] == {"accuracy": 0.96, "parameters": 24058.0}
    assert [row["name"] for row in report["metrics"]["metrics"]] == ["accuracy", "parameters"]


def test_missing_structure_still_compares_metrics_and_says_so():
    one = side("a", "classification", MLP, GOOD, dataset_hash="h")
    two = side("b", "classification", MLP, WEAK, dataset_hash="h")
    result, report = compare(one, domain.Side(**{**two.__dict__, "structure": None}))
    assert result["structure"] is None and report["structure"] is None
    assert result["differences"]
    assert any("structure" in note for note in result["notes"])


def test_the_html_report_escapes_user_text_and_draws_a_chart():
    one = side("digits-cnn", "vision", {**VISION, "base_channels": 16}, GOOD,
               hp={"note": "<script>alert('x')</script>", "epochs": 4})
    two = side("digits-cnn.small", "vision", {**VISION, "base_channels": 8}, WEAK, hp={"note": "plain", "epochs": 1})
    _, report = compare(one, two)
    html = render_html_report(json.loads(json.dumps(report)))  # rendered from what the database gives back
    assert "<svg" in html
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "digits-cnn 1.0.0 vs digits-cnn.small 1.0.0" in html
    assert "features.0.0" in html and "[16, 1, 3, 3]" in html
