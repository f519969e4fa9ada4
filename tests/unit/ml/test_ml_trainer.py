"""Training loop: exact resume, cancellation, early stopping, callbacks, checkpoints and the final artifact."""
from __future__ import annotations

import asyncio
import io
import random
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from libs.ml.artifact import load_artifact
from libs.ml.datasets import Dataset, load_dataset, suggest_config
from libs.ml.device import DeviceUnavailableError
from libs.ml.trainer import (
    CHECKPOINT_FORMAT,
    EpochReport,
    Hyperparameters,
    ResumeError,
    Trainer,
    TrainingCancelled,
)
from libs.ml.zoo import build_model

TIMING_FIELDS = ("samples_per_second", "elapsed_s")


def _model(model_type: str, dataset: Dataset, init_seed: int, **overrides):
    torch.manual_seed(init_seed)
    return build_model(model_type, {**suggest_config(model_type, dataset), **overrides})


def _without_timing(report: EpochReport) -> EpochReport:
    return replace(report, samples_per_second=0.0, elapsed_s=0.0)


@pytest.fixture(scope="module")
def wine() -> Dataset:
    return load_dataset("wine")


@pytest.fixture(scope="module")
def text() -> Dataset:
    return load_dataset("text")


RESUME_CASES = {
    # Dropout + SGD momentum + step decay: RNG, optimizer buffers and scheduler all have to be restored.
    "mlp-sgd-step": (
        "wine",
        "classification",
        {"dropout": 0.3},
        dict(epochs=2, batch_size=16, optimizer="sgd", learning_rate=0.05, scheduler="step", step_size=1, gamma=0.5),
    ),
    # Transformer dropout + AdamW moments + cosine schedule.
    "transformer-adamw-cosine": (
        "text",
        "transformer",
        {"d_model": 32, "num_heads": 2, "num_layers": 1, "d_ff": 64},
        dict(epochs=2, batch_size=32, optimizer="adamw", learning_rate=2e-3, weight_decay=0.01, scheduler="cosine"),
    ),
}


@pytest.mark.parametrize("case", RESUME_CASES)
def test_resume_from_epoch_one_matches_the_uninterrupted_run_exactly(case: str, request: pytest.FixtureRequest) -> None:
    dataset_name, model_type, overrides, hp_fields = RESUME_CASES[case]
    dataset = request.getfixturevalue(dataset_name)
    hp = Hyperparameters(device="cpu", seed=5, restore_best_weights=False, **hp_fields)

    checkpoints: list[bytes] = []
    uninterrupted = Trainer(_model(model_type, dataset, 0, **overrides), dataset, hp).run(
        on_checkpoint=lambda data, report: checkpoints.append(data)
    )
    assert len(checkpoints) == 2

    # Different initial weights prove the resumed run really takes everything from the checkpoint.
    resumed_model = _model(model_type, dataset, 123, **overrides)
    resumed = Trainer(resumed_model, dataset, hp).run(resume_from=checkpoints[0])

    expected, actual = uninterrupted.model.state_dict(), resumed.model.state_dict()
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), f"{name} differs after resume"
    assert [_without_timing(r) for r in resumed.history] == [_without_timing(r) for r in uninterrupted.history]
    assert resumed.epochs_run == 2 and resumed.best_epoch == uninterrupted.best_epoch


def test_checkpoint_loads_weights_only_and_holds_the_full_training_state(wine: Dataset) -> None:
    hp = Hyperparameters(device="cpu", epochs=1, batch_size=32, scheduler="step", step_size=1)
    checkpoints: list[bytes] = []
    Trainer(_model("classification", wine, 0), wine, hp).run(on_checkpoint=lambda data, _: checkpoints.append(data))

    payload = torch.load(io.BytesIO(checkpoints[0]), weights_only=True)

    assert payload["format"] == CHECKPOINT_FORMAT and payload["epoch"] == 1
    assert {"model_state", "optimizer_state", "scheduler_state", "scaler_state", "rng", "best", "early_stop_counter"} <= set(payload)
    assert set(payload["rng"]) == {"python", "numpy", "torch", "cuda"}
    assert payload["hyperparameters"] == hp.model_dump()
    assert payload["best"]["epoch"] == 1 and payload["best"]["state"].keys() == payload["model_state"].keys()


def test_resume_refuses_other_hyperparameters_or_data(wine: Dataset) -> None:
    hp = Hyperparameters(device="cpu", epochs=2, batch_size=32)
    checkpoints: list[bytes] = []
    Trainer(_model("classification", wine, 0), wine, hp).run(on_checkpoint=lambda data, _: checkpoints.append(data))

    with pytest.raises(ResumeError, match=r"\['learning_rate'\]"):
        Trainer(_model("classification", wine, 0), wine, hp.model_copy(update={"learning_rate": 0.1})).run(
            resume_from=checkpoints[0]
        )
    other_split = load_dataset("wine", seed=9)
    with pytest.raises(ResumeError, match="different data"):
        Trainer(_model("classification", other_split, 0), other_split, hp).run(resume_from=checkpoints[0])
    with pytest.raises(ResumeError, match="cannot read checkpoint"):
        Trainer(_model("classification", wine, 0), wine, hp).run(resume_from=b"junk")


def test_should_stop_cancels_between_batches_with_the_last_checkpoint(wine: Dataset) -> None:
    hp = Hyperparameters(device="cpu", epochs=5, batch_size=16)  # 124 samples → 8 batches per epoch
    polls = 0

    def should_stop() -> bool:
        nonlocal polls
        polls += 1
        return polls > 11  # the 12th poll happens before the 4th batch of epoch 2

    checkpoints: list[bytes] = []
    with pytest.raises(TrainingCancelled, match="during epoch 2") as cancelled:
        Trainer(_model("classification", wine, 0), wine, hp).run(
            should_stop=should_stop, on_checkpoint=lambda data, _: checkpoints.append(data)
        )
    assert polls == 12
    assert cancelled.value.epochs_completed == 1
    assert cancelled.value.last_checkpoint == checkpoints[-1] and len(checkpoints) == 1
    # The checkpoint carried by the exception is good for resuming.
    result = Trainer(_model("classification", wine, 0), wine, hp).run(resume_from=cancelled.value.last_checkpoint)
    assert result.epochs_run == 5 and [r.epoch for r in result.history] == [1, 2, 3, 4, 5]


def test_early_stopping_stops_on_a_plateau(wine: Dataset) -> None:
    # A learning rate this small cannot move the validation loss by min_delta: a guaranteed plateau.
    hp = Hyperparameters(
        device="cpu", epochs=50, batch_size=32, learning_rate=1e-7, early_stopping_patience=2, min_delta=1e-3
    )
    result = Trainer(_model("classification", wine, 0), wine, hp).run()
    assert result.stopped_early
    assert result.epochs_run == 3 < hp.epochs
    assert result.best_epoch == 1
    assert len(result.history) == 3


def test_early_stopping_can_monitor_accuracy(wine: Dataset) -> None:
    hp = Hyperparameters(
        device="cpu", epochs=40, batch_size=16, learning_rate=1e-2, early_stopping_patience=3, monitor="val_accuracy"
    )
    result = Trainer(_model("classification", wine, 0), wine, hp).run()
    # Wine reaches 100% validation accuracy within a few epochs; after that nothing can improve.
    assert result.stopped_early and result.epochs_run < 40
    assert result.best_metric == max(r.val_accuracy for r in result.history)


def test_reports_callbacks_and_final_artifact(wine: Dataset) -> None:
    hp = Hyperparameters(device="cpu", epochs=3, batch_size=32, learning_rate=5e-3)
    reports: list[EpochReport] = []
    result = Trainer(_model("classification", wine, 0), wine, hp).run(on_epoch_end=reports.append)

    assert [r.epoch for r in reports] == [1, 2, 3] and all(r.epochs == 3 for r in reports)
    assert reports == result.history
    assert reports[-1].train_loss < reports[0].train_loss
    assert all(r.samples_per_second > 0 and r.learning_rate == 5e-3 for r in reports)
    assert reports[0].elapsed_s <= reports[1].elapsed_s <= reports[2].elapsed_s

    loaded = load_artifact(result.artifact)
    assert loaded.model_type == "classification"
    assert loaded.extra["hyperparameters"] == hp.model_dump()
    assert loaded.extra["dataset"] == wine.descriptor
    assert loaded.extra["dataset_hash"] == wine.content_hash
    assert loaded.extra["training"]["best_epoch"] == result.best_epoch
    inputs = wine.test.tensors[0]
    with torch.no_grad():
        assert torch.equal(loaded.model(inputs), result.model(inputs))


def test_async_callbacks_run_without_an_event_loop(wine: Dataset) -> None:
    seen: list[int] = []

    async def on_epoch_end(report: EpochReport) -> None:
        await asyncio.sleep(0)
        seen.append(report.epoch)

    Trainer(_model("classification", wine, 0), wine, Hyperparameters(device="cpu", epochs=2)).run(on_epoch_end=on_epoch_end)
    assert seen == [1, 2]


async def test_async_callbacks_run_on_the_callers_loop_when_training_in_a_thread(wine: Dataset) -> None:
    loop_thread = threading.get_ident()
    calls: list[tuple[int, int]] = []

    async def on_checkpoint(data: bytes, report: EpochReport) -> None:
        calls.append((report.epoch, threading.get_ident()))

    trainer = Trainer(_model("classification", wine, 0), wine, Hyperparameters(device="cpu", epochs=2))
    result = await asyncio.to_thread(trainer.run, on_checkpoint=on_checkpoint, event_loop=asyncio.get_running_loop())

    assert result.epochs_run == 2
    assert calls == [(1, loop_thread), (2, loop_thread)]


def test_regression_training_reduces_validation_error() -> None:
    dataset = load_dataset("diabetes")
    hp = Hyperparameters(device="cpu", epochs=15, batch_size=32, learning_rate=2e-3)
    result = Trainer(_model("regression", dataset, 0), dataset, hp).run()
    assert result.history[0].val_accuracy is None
    # Targets are standardised: predicting the mean scores about 1.0, a useful model clearly less.
    assert min(r.val_loss for r in result.history) < 0.6
    with pytest.raises(ValueError, match="val_accuracy"):
        Trainer(_model("regression", dataset, 0), dataset, Hyperparameters(monitor="val_accuracy"))


def test_training_leaves_the_callers_rng_untouched(wine: Dataset) -> None:
    model = _model("classification", wine, 7, dropout=0.2)
    torch_before, python_before, numpy_before = torch.get_rng_state(), random.getstate(), np.random.get_state()

    Trainer(model, wine, Hyperparameters(device="cpu", epochs=1, seed=99)).run()

    assert torch.equal(torch.get_rng_state(), torch_before)
    assert random.getstate() == python_before
    assert np.array_equal(np.random.get_state()[1], numpy_before[1])


def test_hyperparameters_are_validated() -> None:
    with pytest.raises(ValidationError):
        Hyperparameters(epochs=0)
    with pytest.raises(ValidationError):
        Hyperparameters(epochs=1001)
    with pytest.raises(ValidationError):
        Hyperparameters(optimizer="rmsprop")
    with pytest.raises(ValidationError):
        Hyperparameters(learning_rate=0)
    with pytest.raises(ValidationError):
        Hyperparameters(unknown_field=1)
    with pytest.raises(ValidationError, match="step_size"):
        Hyperparameters(epochs=3, scheduler="step", step_size=5)
    assert Hyperparameters().mixed_precision is True and Hyperparameters().early_stopping_patience is None


def test_mismatched_model_and_dataset_are_rejected(wine: Dataset) -> None:
    digits_images = load_dataset("digits", for_model_type="vision")
    with pytest.raises(ValueError, match="shaped for 'vision' models, not 'classification'"):
        Trainer(_model("classification", wine, 0), digits_images, Hyperparameters())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks behaviour without CUDA")
def test_requesting_cuda_without_a_gpu_fails_clearly(wine: Dataset) -> None:
    with pytest.raises(DeviceUnavailableError):
        Trainer(_model("classification", wine, 0), wine, Hyperparameters(device="cuda", epochs=1)).run()
