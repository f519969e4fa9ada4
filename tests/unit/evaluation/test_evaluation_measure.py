"""The synchronous measuring step: what it computes, and which weights it refuses for good."""
from __future__ import annotations

import os

import pytest
import torch

from libs.ml.artifact import save_artifact
from libs.ml.datasets import load_dataset, suggest_config
from libs.ml.zoo import build_model
from services.evaluation.domain import Unevaluable
from services.evaluation.measure import measure


def artifact(model_type="classification", dataset="digits", seed=0, with_dataset=True) -> bytes:
    torch.manual_seed(0)
    data = load_dataset(dataset, seed=seed, for_model_type=model_type)
    model = build_model(model_type, suggest_config(model_type, data))
    extra = {"dataset": data.descriptor, "dataset_hash": data.content_hash, "hyperparameters": {"epochs": 2}} \
        if with_dataset else {}
    return save_artifact(model, model_type, model.config, extra=extra)


def test_measures_the_held_out_split_of_the_training_data():
    m = measure(artifact(seed=5), device="cpu", latency_runs=3)
    data = load_dataset("digits", seed=5, for_model_type="classification")
    assert (m.dataset, m.dataset_seed, m.dataset_hash) == ("digits", 5, data.content_hash)
    assert m.split == "test" and m.samples == len(data.test)
    assert m.details["held_out"] is True
    assert m.details["trained_on"]["dataset_hash"] == data.content_hash
    assert m.hyperparameters == {"epochs": 2}
    assert m.model_type == "classification" and m.config["input_dim"] == 64
    assert {"accuracy", "f1_macro", "latency_p99_ms", "flops"} <= set(m.metrics)
    assert m.structure and m.structure[0]["name"] == "mlp.0"
    assert m.structure[0]["parameter_shapes"]["weight"] == [64, 64]


def test_regression_weights_get_regression_metrics():
    m = measure(artifact("regression", "diabetes"), device="cpu", latency_runs=3)
    assert {"loss", "mae", "r2"} <= set(m.metrics)
    assert "accuracy" not in m.metrics


def test_random_bytes_are_not_a_cairn_artifact():
    with pytest.raises(Unevaluable, match="cairn.torch/1"):
        measure(os.urandom(2048), device="cpu")


def test_weights_without_a_dataset_need_one_to_be_named():
    weights = artifact(with_dataset=False)
    with pytest.raises(Unevaluable, match="names no dataset"):
        measure(weights, device="cpu")
    assert measure(weights, dataset="digits", device="cpu", latency_runs=2).dataset == "digits"


@pytest.mark.parametrize(
    ("dataset", "message"),
    [("wine", "does not fit|classes"), ("diabetes", "cannot evaluate"), ("breast_cancer", "10 classes")],
)
def test_a_dataset_the_model_cannot_read_is_refused(dataset, message):
    with pytest.raises(Unevaluable, match=message):
        measure(artifact(), dataset=dataset, device="cpu", latency_runs=2)
