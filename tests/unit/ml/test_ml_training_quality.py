"""End-to-end: real training on CPU reaches real accuracy, measured on the test split by ``evaluate``."""
from __future__ import annotations

import json
import time

import torch

from libs.ml.artifact import load_artifact
from libs.ml.datasets import load_dataset, suggest_config
from libs.ml.evaluate import evaluate
from libs.ml.trainer import Hyperparameters, Trainer
from libs.ml.zoo import build_model


def _train(name: str, model_type: str, hp: Hyperparameters, **config_overrides):
    dataset = load_dataset(name, for_model_type=model_type)
    torch.manual_seed(0)
    model = build_model(model_type, {**suggest_config(model_type, dataset), **config_overrides})
    started = time.perf_counter()
    result = Trainer(model, dataset, hp).run()
    return dataset, result, time.perf_counter() - started


def test_digits_cnn_reaches_90_percent_test_accuracy_quickly() -> None:
    hp = Hyperparameters(device="cpu", epochs=6, batch_size=32, learning_rate=3e-3, seed=0)
    dataset, result, seconds = _train("digits", "vision", hp)

    report = evaluate(result.model, dataset.test, latency_runs=20)

    print(f"\ndigits CNN: trained {result.epochs_run} epochs in {seconds:.2f}s, test accuracy {report.accuracy:.4f}")
    assert seconds < 60
    assert report.accuracy >= 0.9
    assert report.f1_macro >= 0.85
    # The artifact carries the same model: evaluating it gives the same accuracy.
    assert evaluate(load_artifact(result.artifact).model, dataset.test, latency_runs=5).accuracy == report.accuracy
    json.dumps(report.as_dict())  # plain, JSON-able result


def test_audio_rnn_beats_chance_on_tones() -> None:
    hp = Hyperparameters(device="cpu", epochs=4, batch_size=32, learning_rate=3e-3)
    dataset, result, seconds = _train("tones", "audio", hp)
    report = evaluate(result.model, dataset.test, latency_runs=10)
    print(f"\ntones GRU: {seconds:.2f}s, test accuracy {report.accuracy:.4f} (chance 0.25)")
    assert report.accuracy >= 0.7


def test_text_transformer_beats_chance_on_topics() -> None:
    hp = Hyperparameters(device="cpu", epochs=8, batch_size=32, learning_rate=2e-3)
    dataset, result, seconds = _train("text", "transformer", hp)
    report = evaluate(result.model, dataset.test, latency_runs=10)
    print(f"\ntext transformer: {seconds:.2f}s, test accuracy {report.accuracy:.4f} (chance 0.25)")
    assert report.accuracy >= 0.6
    assert report.flops_per_sample > 0 and report.flops_method == "flop_counter"
