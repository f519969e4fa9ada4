"""Metric names of EvaluationCompleted, dataset choice, ids and retry delays (pure rules)."""
from __future__ import annotations

import math
import typing
import uuid

import pytest
import torch

from libs.events.envelope import Envelope, decode
from libs.events.evaluation import EvaluationCompleted
from libs.ml.datasets import DATASETS, load_dataset, suggest_config
from libs.ml.evaluate import EvaluationReport, evaluate
from libs.ml.zoo import build_model
from services.evaluation import domain, schemas

CLASSIFICATION_KEYS = {
    "accuracy", "precision_macro", "recall_macro", "f1_macro", "loss",
    "latency_p50_ms", "latency_p99_ms", "throughput_per_s", "parameters", "size_bytes", "flops",
}
REGRESSION_KEYS = {
    "loss", "mae", "r2", "latency_p50_ms", "latency_p99_ms", "throughput_per_s", "parameters", "size_bytes", "flops",
}


def report(**overrides) -> EvaluationReport:
    fields = dict(
        task="classification", n_samples=270, loss=0.25, accuracy=0.93, precision_macro=0.92, recall_macro=0.91,
        f1_macro=0.915, mae=None, r2=None, latency_p50_ms=0.4, latency_p99_ms=0.9, throughput_samples_per_s=81234.5,
        parameter_count=24058, state_dict_bytes=97152, flops_per_sample=314624, flops_method="flop_counter",
        device="cpu", batch_size=256,
    )
    fields.update(overrides)
    return EvaluationReport(**fields)


def test_classification_report_maps_to_the_published_names():
    metrics = domain.metrics_from_report(report().as_dict())
    assert set(metrics) == CLASSIFICATION_KEYS
    assert metrics["accuracy"] == 0.93
    assert metrics["throughput_per_s"] == 81234.5  # from throughput_samples_per_s
    assert metrics["parameters"] == 24058.0  # from parameter_count
    assert metrics["size_bytes"] == 97152.0  # from state_dict_bytes
    assert metrics["flops"] == 314624.0  # from flops_per_sample
    assert all(isinstance(v, float) for v in metrics.values())


def test_regression_report_carries_mae_and_r2_instead_of_class_scores():
    r = report(task="regression", accuracy=None, precision_macro=None, recall_macro=None, f1_macro=None,
               mae=0.61, r2=0.47, loss=0.58)
    metrics = domain.metrics_from_report(r.as_dict())
    assert set(metrics) == REGRESSION_KEYS
    assert (metrics["mae"], metrics["r2"], metrics["loss"]) == (0.61, 0.47, 0.58)


def test_missing_and_non_finite_values_are_left_out():
    r = report(task="regression", accuracy=None, precision_macro=None, recall_macro=None, f1_macro=None,
               mae=0.5, r2=None, throughput_samples_per_s=math.inf, loss=math.nan)
    metrics = domain.metrics_from_report(r.as_dict())
    assert set(metrics) == REGRESSION_KEYS - {"r2", "throughput_per_s", "loss"}


def test_a_real_evaluation_becomes_a_valid_event_that_round_trips():
    torch.manual_seed(0)
    data = load_dataset("digits", seed=0, for_model_type="classification")
    model = build_model("classification", suggest_config("classification", data))
    measured = evaluate(model, data.test, latency_runs=3)
    metrics = domain.metrics_from_report(measured.as_dict())
    assert set(metrics) == CLASSIFICATION_KEYS
    event = EvaluationCompleted(
        model_id=uuid.uuid4(), version="1.0.0", version_id=uuid.uuid4(), evaluation_id=uuid.uuid4(),
        dataset="digits", dataset_hash=data.content_hash, samples=measured.n_samples, device=measured.device,
        metrics=metrics,
    )
    envelope = Envelope(data=event, source="evaluation", actor="tests")
    decoded = decode(envelope.headers(), envelope.body())
    assert decoded.data.metrics == metrics
    assert decoded.data.samples == len(data.test)


def test_http_literals_match_the_libraries():
    assert set(typing.get_args(schemas.DatasetName)) == set(DATASETS)
    assert set(typing.get_args(schemas.MetricName)) == set(domain.METRIC_NAMES)
    assert CLASSIFICATION_KEYS | REGRESSION_KEYS == set(domain.METRIC_NAMES)


# -- dataset choice ---------------------------------------------------------------------------------


def trained_extra(name="digits", seed=7):
    return {"dataset": {"name": name, "representation": "vision", "split": {"seed": seed}}, "dataset_hash": "ab"}


def test_default_is_the_training_datasets_own_held_out_split():
    choice = domain.choose_dataset(trained_extra(), None, None)
    assert (choice.name, choice.seed, choice.held_out) == ("digits", 7, True)


def test_a_requested_seed_is_used_and_the_split_is_no_longer_held_out():
    choice = domain.choose_dataset(trained_extra(), None, 3)
    assert (choice.name, choice.seed, choice.held_out) == ("digits", 3, False)


def test_a_requested_dataset_wins_and_uses_seed_zero():
    choice = domain.choose_dataset(trained_extra(), "wine", None)
    assert (choice.name, choice.seed, choice.held_out) == ("wine", 0, None)


def test_a_dataset_can_be_requested_for_weights_that_name_none():
    choice = domain.choose_dataset({}, "digits", None)
    assert (choice.name, choice.seed, choice.trained_on) == ("digits", 0, None)


@pytest.mark.parametrize("extra", [{}, {"dataset": None}, {"dataset": {"split": {"seed": 1}}}, {"dataset": ""}])
def test_no_dataset_anywhere_is_unevaluable(extra):
    with pytest.raises(domain.Unevaluable, match="names no dataset"):
        domain.choose_dataset(extra, None, None)


# -- ids, retries, content negotiation --------------------------------------------------------------


def test_evaluation_ids_are_stable_per_event_and_distinct_across_events():
    event_id = uuid.uuid4()
    assert domain.evaluation_id_for(event_id) == domain.evaluation_id_for(event_id)
    assert domain.evaluation_id_for(event_id) != domain.evaluation_id_for(uuid.uuid4())
    assert domain.evaluation_id_for(event_id) != event_id


def test_retry_delays_double_up_to_the_cap():
    assert [domain.retry_delay_s(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert domain.retry_delay_s(30) == 60.0
    assert domain.retry_delay_s(1, base=0.5, cap=30) == 0.5


@pytest.mark.parametrize(
    ("format", "accept", "html"),
    [
        (None, None, False),
        (None, "application/json", False),
        (None, "text/html,application/xhtml+xml,*/*;q=0.8", True),
        (None, "application/json, text/html", False),
        ("html", "application/json", True),
        ("json", "text/html", False),
    ],
)
def test_html_is_chosen_by_format_then_accept(format, accept, html):
    assert domain.wants_html(format, accept) is html
