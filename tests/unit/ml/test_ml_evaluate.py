"""Evaluation metrics against hand-computed values; FLOPs, sizes and timings are sane."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from libs.ml.evaluate import _flops_with_hooks, count_flops, evaluate, state_dict_bytes
from libs.ml.zoo import build_model, example_input


class _Oracle(nn.Module):
    """Predicts the class stored in feature 0, so the expected metrics are known exactly."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.scale = nn.Parameter(torch.tensor(5.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.one_hot(x[:, 0].long(), self.num_classes).float() * self.scale


def test_classification_metrics_match_hand_computation() -> None:
    truth = torch.tensor([0, 0, 0, 1, 1, 2])
    predicted = torch.tensor([0, 0, 1, 1, 2, 2])
    split = TensorDataset(predicted.float().unsqueeze(1), truth)

    report = evaluate(_Oracle(3), split, latency_runs=5)

    # Per class precision: 0 → 2/2, 1 → 1/2, 2 → 1/2; recall: 0 → 2/3, 1 → 1/2, 2 → 1/1.
    precision = (1 + 0.5 + 0.5) / 3
    recall = (2 / 3 + 0.5 + 1) / 3
    f1 = (2 * 1 * (2 / 3) / (1 + 2 / 3) + 0.5 + 2 * 0.5 / 1.5) / 3
    assert report.task == "classification" and report.n_samples == 6
    assert report.accuracy == pytest.approx(4 / 6)
    assert report.precision_macro == pytest.approx(precision)
    assert report.recall_macro == pytest.approx(recall)
    assert report.f1_macro == pytest.approx(f1)
    logits = F.one_hot(predicted, 3).float() * 5
    assert report.loss == pytest.approx(F.cross_entropy(logits, truth).item(), rel=1e-6)
    assert report.mae is None and report.r2 is None


def test_regression_uses_mse_and_skips_classification_metrics() -> None:
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0]]))
        model.bias.zero_()
    inputs = torch.tensor([[1.0, 9.0], [2.0, 9.0], [3.0, 9.0], [4.0, 9.0]])
    targets = torch.tensor([[1.0], [2.0], [3.0], [6.0]])  # errors 0, 0, 0, -2

    report = evaluate(model, (inputs, targets), latency_runs=5)

    assert report.task == "regression"
    assert report.loss == pytest.approx(1.0)  # (0 + 0 + 0 + 4) / 4
    assert report.mae == pytest.approx(0.5)
    assert report.accuracy is None and report.precision_macro is None and report.f1_macro is None


def test_speed_size_and_flops_of_a_known_mlp() -> None:
    model = build_model("classification", {"input_dim": 10, "num_classes": 3, "hidden_sizes": [20]})
    split = TensorDataset(torch.randn(40, 10), torch.randint(0, 3, (40,)))

    report = evaluate(model, split, batch_size=16, latency_runs=30)

    assert report.flops_per_sample == 2 * (10 * 20 + 20 * 3)
    assert report.parameter_count == 10 * 20 + 20 + 20 * 3 + 3
    assert report.state_dict_bytes == report.parameter_count * 4
    assert 0 < report.latency_p50_ms <= report.latency_p99_ms
    assert report.throughput_samples_per_s > 0 and math.isfinite(report.throughput_samples_per_s)
    assert report.batch_size == 16 and report.device == "cpu"
    assert model.training  # evaluate restored the caller's mode


ZOO = {
    "vision": {"image_size": 8, "image_channels": 1, "num_classes": 10},
    "audio": {"n_features": 16, "num_classes": 4, "num_layers": 2, "bidirectional": True},
    "transformer": {"vocab_size": 50, "max_seq_len": 12, "d_model": 32, "num_heads": 4, "num_layers": 2, "d_ff": 64, "num_classes": 3},
    "classification": {"input_dim": 13, "num_classes": 3},
    "regression": {"input_dim": 10},
}


@pytest.mark.parametrize("model_type", ZOO)
def test_flop_counter_agrees_with_the_hook_fallback(model_type: str) -> None:
    """Two independent counts: the dispatch-level counter (plus our attention/RNN formulas) and layer hooks."""
    model = build_model(model_type, ZOO[model_type]).eval()
    sample = example_input(model_type, ZOO[model_type])
    flops, method = count_flops(model, sample)
    assert method == "flop_counter"
    assert flops == _flops_with_hooks(model, sample) > 0


def test_state_dict_bytes_counts_buffers_too() -> None:
    model = build_model("vision", ZOO["vision"])
    params = sum(p.numel() * 4 for p in model.parameters())
    assert state_dict_bytes(model) > params  # BatchNorm running statistics are buffers


def test_empty_split_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        evaluate(nn.Linear(2, 2), (torch.empty(0, 2), torch.empty(0, dtype=torch.long)))
