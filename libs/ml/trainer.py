"""The training loop: real optimisation of zoo models on :mod:`libs.ml.datasets`, resumable and cancellable.

``Trainer(model, dataset, hp).run(...)`` is synchronous: the training worker calls it in a thread
(``asyncio.to_thread``). Every epoch trains, validates, reports an :class:`EpochReport` and, when asked
for, builds a checkpoint. A checkpoint holds everything needed to continue bit for bit on CPU (model,
optimizer, scheduler, grad-scaler, RNG states, early-stopping bookkeeping) and contains only tensors and
plain values, so it loads with ``torch.load(..., weights_only=True)``.

Reproducibility: the run seeds Python, NumPy and torch from ``hp.seed``, shuffles with a per-epoch seeded
``torch.Generator``, and restores the caller's global RNG states afterwards. Global RNGs are per process,
so two trainings running concurrently in one process are not reproducible; run one per worker process.
"""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from libs.ml.artifact import save_artifact
from libs.ml.datasets import Dataset
from libs.ml.device import (
    autocast_context,
    choose_device,
    configure_backends,
    loader_options,
    make_grad_scaler,
    move_batch,
    rng_devices,
)

CHECKPOINT_FORMAT = "cairn.checkpoint/1"

# Hyperparameters that may differ between a checkpoint and the run resuming it: they pick hardware or
# extend the schedule, but do not change what the already-trained epochs mean.
_RESUME_MAY_CHANGE = frozenset({"epochs", "device", "mixed_precision"})


class Hyperparameters(BaseModel):
    """Validated training hyperparameters (immutable; unknown fields are rejected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(10, ge=1, le=1000, description="Maximum number of epochs")
    batch_size: int = Field(64, ge=1, le=65536)
    learning_rate: float = Field(1e-3, gt=0, le=10)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    momentum: float = Field(0.9, ge=0, lt=1, description="Only used by sgd")
    weight_decay: float = Field(0.0, ge=0, le=1)
    scheduler: Literal["none", "step", "cosine"] = "none"
    step_size: int = Field(10, ge=1, description="Epochs between learning-rate drops (step scheduler)")
    gamma: float = Field(0.1, gt=0, le=1, description="Learning-rate factor per drop (step scheduler)")
    seed: int = Field(0, ge=0, lt=2**32)
    early_stopping_patience: int | None = Field(
        None, ge=1, description="Epochs without improvement before stopping; None turns early stopping off"
    )
    monitor: Literal["val_loss", "val_accuracy"] = Field(
        "val_loss", description="Metric that picks the best epoch and drives early stopping"
    )
    min_delta: float = Field(0.0, ge=0, description="Smallest change of the monitored metric that counts")
    restore_best_weights: bool = Field(True, description="End with the weights of the best epoch")
    max_grad_norm: float | None = Field(None, gt=0, description="Clip the gradient norm; None = no clipping")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    mixed_precision: bool = Field(True, description="Use AMP where CUDA exists; always off on CPU")

    @model_validator(mode="after")
    def _step_scheduler_fits(self) -> Hyperparameters:
        if self.scheduler == "step" and self.step_size > self.epochs:
            raise ValueError(f"step_size {self.step_size} exceeds epochs {self.epochs}: the step scheduler would never fire")
        return self


@dataclass(frozen=True)
class EpochReport:
    """What happened in one epoch. ``val_accuracy`` is ``None`` for regression; ``learning_rate`` is the
    rate used during the epoch; ``elapsed_s`` counts from the start of training, across resumes."""

    epoch: int
    epochs: int
    train_loss: float
    val_loss: float
    val_accuracy: float | None
    samples_per_second: float
    learning_rate: float
    elapsed_s: float

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the report."""
        return asdict(self)


@dataclass
class TrainingResult:
    """Outcome of :meth:`Trainer.run`; ``artifact`` is :func:`libs.ml.artifact.save_artifact` bytes."""

    model: nn.Module
    best_epoch: int
    best_metric: float | None
    monitor: str
    epochs_run: int
    history: list[EpochReport]
    stopped_early: bool
    artifact: bytes
    device: str = "cpu"


class TrainingCancelled(Exception):
    """``should_stop()`` returned true. ``last_checkpoint`` is the latest checkpoint built (if any)."""

    def __init__(self, message: str, *, epochs_completed: int, last_checkpoint: bytes | None) -> None:
        super().__init__(message)
        self.epochs_completed = epochs_completed
        self.last_checkpoint = last_checkpoint


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite (learning rate too high, bad data...)."""


class ResumeError(ValueError):
    """A checkpoint cannot be used to resume this run (wrong format, other model, data or hyperparameters)."""


EpochCallback = Callable[[EpochReport], "Awaitable[Any] | None"]
CheckpointCallback = Callable[[bytes, EpochReport], "Awaitable[Any] | None"]


# --------------------------------------------------------------------------------------------------
# RNG state as weights_only-loadable values
# --------------------------------------------------------------------------------------------------


def _capture_rng(device: torch.device) -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": [torch.cuda.get_rng_state(i) for i in rng_devices(device)],
    }
    return state


def _restore_rng(state: dict[str, Any], device: torch.device) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["kind"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    # A checkpoint from a CPU run resumed on CUDA has no CUDA state: the seed set at start stays.
    for index, cuda_state in zip(rng_devices(device), state.get("cuda", [])):
        torch.cuda.set_rng_state(cuda_state, index)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


@contextlib.contextmanager
def _caller_rng_preserved(device: torch.device) -> Iterator[None]:
    """Run a block with its own global RNG states, restoring the caller's afterwards."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=rng_devices(device)):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()}


def _epoch_seed(seed: int, epoch: int) -> int:
    # Distinct, reproducible shuffle per epoch, independent of how many epochs ran in this process.
    return (seed * 1_000_003 + epoch) % (2**63)


# --------------------------------------------------------------------------------------------------
# Trainer
# --------------------------------------------------------------------------------------------------


@dataclass
class _RunState:
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    scaler: torch.amp.GradScaler
    next_epoch: int = 1
    history: list[EpochReport] = field(default_factory=list)
    best_metric: float | None = None
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0
    stopped_early: bool = False
    elapsed_offset: float = 0.0
    last_checkpoint: bytes | None = None


class Trainer:
    """Trains ``model`` on ``dataset`` with hyperparameters ``hp``.

    ``model_type`` and ``config`` default to the model's own attributes (every zoo model has them); they
    go into checkpoints and the final artifact.
    """

    def __init__(
        self,
        model: nn.Module,
        dataset: Dataset,
        hp: Hyperparameters | None = None,
        *,
        model_type: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.dataset = dataset
        self.hp = hp or Hyperparameters()
        self.model_type = model_type or getattr(model, "model_type", None)
        self.config = dict(config if config is not None else getattr(model, "config", {}) or {})
        if not self.model_type:
            raise ValueError("model_type is required for models that do not come from libs.ml.zoo")
        if dataset.model_type != self.model_type:
            raise ValueError(
                f"dataset {dataset.name!r} is shaped for {dataset.model_type!r} models, not {self.model_type!r}"
            )
        self.task = dataset.task
        if self.task == "regression" and self.hp.monitor == "val_accuracy":
            raise ValueError("monitor='val_accuracy' needs a classification dataset; use 'val_loss' for regression")

    # -- public --------------------------------------------------------------------------------------

    def run(
        self,
        *,
        resume_from: bytes | None = None,
        on_epoch_end: EpochCallback | None = None,
        on_checkpoint: CheckpointCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
        event_loop: asyncio.AbstractEventLoop | None = None,
    ) -> TrainingResult:
        """Train until ``hp.epochs`` or early stopping; return the result with the final artifact.

        - ``resume_from``: checkpoint bytes from ``on_checkpoint``; training continues with the next epoch
          and (on CPU) ends with exactly the weights an uninterrupted run would have.
        - ``on_epoch_end(report)`` and ``on_checkpoint(checkpoint_bytes, report)`` may be plain functions
          or return awaitables. Awaitables run on ``event_loop`` (pass the worker's loop when calling
          ``run`` from ``asyncio.to_thread``) or, without one, on a fresh loop in this thread.
        - ``should_stop()`` is polled before every batch; when it returns true :class:`TrainingCancelled`
          is raised carrying the last checkpoint.
        """
        hp = self.hp
        device = choose_device(hp.device)
        configure_backends(device)
        use_amp = hp.mixed_precision and device.type == "cuda"
        self.model.to(device)
        started = time.perf_counter()
        with _caller_rng_preserved(device):
            state = self._fresh_state(device, use_amp)
            if resume_from is not None:
                self._resume(state, resume_from, device)
            else:
                _seed_everything(hp.seed)
            train_loader, shuffle_generator = self._train_loader(device)
            for epoch in range(state.next_epoch, hp.epochs + 1):
                if state.stopped_early:
                    break
                report = self._run_epoch(
                    epoch, state, device, use_amp, train_loader, shuffle_generator, should_stop, started
                )
                if on_epoch_end is not None:
                    _invoke(on_epoch_end, (report,), event_loop)
                if on_checkpoint is not None:
                    state.last_checkpoint = self._checkpoint(epoch, state, device, report.elapsed_s)
                    _invoke(on_checkpoint, (state.last_checkpoint, report), event_loop)
        return self._finish(state, device)

    # -- setup ---------------------------------------------------------------------------------------

    def _fresh_state(self, device: torch.device, use_amp: bool) -> _RunState:
        hp = self.hp
        params = [p for p in self.model.parameters() if p.requires_grad]
        if hp.optimizer == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=hp.learning_rate, momentum=hp.momentum, weight_decay=hp.weight_decay
            )
        elif hp.optimizer == "adamw":
            optimizer = torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=hp.weight_decay)
        else:
            optimizer = torch.optim.Adam(params, lr=hp.learning_rate, weight_decay=hp.weight_decay)
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        if hp.scheduler == "step":
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=hp.step_size, gamma=hp.gamma)
        elif hp.scheduler == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=hp.epochs)
        return _RunState(optimizer=optimizer, scheduler=scheduler, scaler=make_grad_scaler(device, use_amp))

    def _train_loader(self, device: torch.device) -> tuple[DataLoader, torch.Generator]:
        generator = torch.Generator()
        loader = DataLoader(
            self.dataset.train,
            batch_size=self.hp.batch_size,
            shuffle=True,
            # The loader draws its base seed from this generator too, so the global RNG (used by dropout)
            # is consumed identically whether or not the run was resumed.
            generator=generator,
            num_workers=0,  # tiny in-memory tensors: worker processes would cost more than they save
            **loader_options(device),
        )
        return loader, generator

    def _eval_loader(self, split: TensorDataset, device: torch.device) -> DataLoader:
        return DataLoader(
            split,
            batch_size=max(self.hp.batch_size, 256),
            shuffle=False,
            generator=torch.Generator(),  # keeps the loader from drawing a seed off the global RNG
            **loader_options(device),
        )

    # -- one epoch -----------------------------------------------------------------------------------

    def _loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # Losses in float32 even under autocast: fp16 log-softmax/MSE lose precision and can overflow.
        if self.task == "regression":
            return F.mse_loss(output.float(), target.float())
        return F.cross_entropy(output.float(), target)

    def _run_epoch(
        self,
        epoch: int,
        state: _RunState,
        device: torch.device,
        use_amp: bool,
        loader: DataLoader,
        shuffle_generator: torch.Generator,
        should_stop: Callable[[], bool] | None,
        started: float,
    ) -> EpochReport:
        hp = self.hp
        learning_rate = float(state.optimizer.param_groups[0]["lr"])
        shuffle_generator.manual_seed(_epoch_seed(hp.seed, epoch))
        self.model.train()
        epoch_start = time.perf_counter()
        # Summed on the device: calling .item() per batch would stall the CUDA queue every step.
        loss_sum, seen = torch.zeros((), device=device), 0
        for inputs, targets in loader:
            if should_stop is not None and should_stop():
                raise TrainingCancelled(
                    f"training cancelled during epoch {epoch}",
                    epochs_completed=epoch - 1,
                    last_checkpoint=state.last_checkpoint,
                )
            inputs, targets = move_batch((inputs, targets), device)
            state.optimizer.zero_grad(set_to_none=True)
            with autocast_context(device, use_amp):
                output = self.model(inputs)
            loss = self._loss(output, targets)
            state.scaler.scale(loss).backward()
            if hp.max_grad_norm is not None:
                state.scaler.unscale_(state.optimizer)  # clip true gradients, not scaled ones
                nn.utils.clip_grad_norm_(self.model.parameters(), hp.max_grad_norm)
            state.scaler.step(state.optimizer)
            state.scaler.update()
            loss_sum += loss.detach() * len(targets)
            seen += len(targets)
        train_loss = loss_sum.item() / max(seen, 1)  # .item() also waits for queued CUDA work
        train_seconds = time.perf_counter() - epoch_start
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"training loss became {train_loss} in epoch {epoch}; lower the learning rate")
        if state.scheduler is not None:
            state.scheduler.step()

        val_loss, val_accuracy = self._validate(device, use_amp)
        self._track_best(epoch, state, val_loss, val_accuracy)
        report = EpochReport(
            epoch=epoch,
            epochs=hp.epochs,
            train_loss=train_loss,
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            samples_per_second=seen / train_seconds if train_seconds > 0 else float("inf"),
            learning_rate=learning_rate,
            elapsed_s=state.elapsed_offset + time.perf_counter() - started,
        )
        state.history.append(report)
        return report

    def _validate(self, device: torch.device, use_amp: bool) -> tuple[float, float | None]:
        self.model.eval()
        loss_sum, correct = torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long)
        count, elements = 0, 0
        with torch.no_grad():
            for inputs, targets in self._eval_loader(self.dataset.val, device):
                inputs, targets = move_batch((inputs, targets), device)
                with autocast_context(device, use_amp):
                    output = self.model(inputs)
                if self.task == "regression":
                    loss_sum += F.mse_loss(output.float(), targets.float(), reduction="sum")
                    elements += targets.numel()
                else:
                    loss_sum += F.cross_entropy(output.float(), targets, reduction="sum")
                    correct += (output.argmax(dim=1) == targets).sum()
                count += len(targets)
        if self.task == "regression":
            return loss_sum.item() / max(elements, 1), None
        return loss_sum.item() / max(count, 1), correct.item() / max(count, 1)

    def _track_best(self, epoch: int, state: _RunState, val_loss: float, val_accuracy: float | None) -> None:
        hp = self.hp
        lower_is_better = hp.monitor == "val_loss"
        metric = val_loss if lower_is_better else float(val_accuracy)  # type: ignore[arg-type]
        if state.best_metric is None:
            improved = True
        elif lower_is_better:
            improved = metric < state.best_metric - hp.min_delta
        else:
            improved = metric > state.best_metric + hp.min_delta
        if improved:
            state.best_metric, state.best_epoch, state.bad_epochs = metric, epoch, 0
            state.best_state = _cpu_state(self.model)
        else:
            state.bad_epochs += 1
        if hp.early_stopping_patience is not None and state.bad_epochs >= hp.early_stopping_patience:
            state.stopped_early = True

    # -- checkpoints ---------------------------------------------------------------------------------

    def _checkpoint(self, epoch: int, state: _RunState, device: torch.device, elapsed: float) -> bytes:
        payload = {
            "format": CHECKPOINT_FORMAT,
            "epoch": epoch,
            "model_type": self.model_type,
            "config": self.config,
            "dataset_hash": self.dataset.content_hash,
            "hyperparameters": self.hp.model_dump(),
            "model_state": _cpu_state(self.model),
            "optimizer_state": state.optimizer.state_dict(),
            "scheduler_state": state.scheduler.state_dict() if state.scheduler is not None else None,
            "scaler_state": state.scaler.state_dict(),
            "rng": _capture_rng(device),
            "best": {"metric": state.best_metric, "epoch": state.best_epoch, "state": state.best_state},
            "early_stop_counter": state.bad_epochs,
            "stopped_early": state.stopped_early,
            "history": [report.as_dict() for report in state.history],
            "elapsed_s": elapsed,
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        return buffer.getvalue()

    def _resume(self, state: _RunState, data: bytes, device: torch.device) -> None:
        try:
            payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # garbage bytes or a pickle with code in it
            raise ResumeError(f"cannot read checkpoint: {type(exc).__name__}: {exc}") from exc
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise ResumeError(f"not a {CHECKPOINT_FORMAT} checkpoint")
        if payload["model_type"] != self.model_type or payload["config"] != self.config:
            raise ResumeError(
                f"checkpoint is for a {payload['model_type']} model with config {payload['config']}, "
                f"this run trains a {self.model_type} model with config {self.config}"
            )
        if payload["dataset_hash"] != self.dataset.content_hash:
            raise ResumeError("checkpoint was trained on different data (dataset content hash differs)")
        saved, current = payload["hyperparameters"], self.hp.model_dump()
        changed = sorted(k for k in current if k not in _RESUME_MAY_CHANGE and saved.get(k) != current[k])
        if changed:
            raise ResumeError(f"hyperparameters differ from the checkpoint's: {changed}")
        if self.hp.scheduler == "cosine" and saved["epochs"] != self.hp.epochs:
            raise ResumeError("epochs cannot change when resuming a cosine schedule (its period is the epoch count)")

        self.model.load_state_dict(payload["model_state"])
        state.optimizer.load_state_dict(payload["optimizer_state"])  # moves its tensors to the params' device
        if state.scheduler is not None:
            state.scheduler.load_state_dict(payload["scheduler_state"])
        if payload["scaler_state"] and state.scaler.is_enabled():
            state.scaler.load_state_dict(payload["scaler_state"])
        best = payload["best"]
        state.best_metric, state.best_epoch, state.best_state = best["metric"], best["epoch"], best["state"]
        state.bad_epochs = payload["early_stop_counter"]
        state.stopped_early = payload["stopped_early"]
        state.history = [EpochReport(**report) for report in payload["history"]]
        state.elapsed_offset = payload["elapsed_s"]
        state.next_epoch = payload["epoch"] + 1
        state.last_checkpoint = bytes(data)
        _restore_rng(payload["rng"], device)

    # -- result --------------------------------------------------------------------------------------

    def _finish(self, state: _RunState, device: torch.device) -> TrainingResult:
        hp = self.hp
        if hp.restore_best_weights and state.best_state is not None:
            self.model.load_state_dict(state.best_state)
        self.model.eval()
        epochs_run = state.history[-1].epoch if state.history else 0
        extra = {
            "hyperparameters": hp.model_dump(),
            "dataset": self.dataset.descriptor,
            "dataset_hash": self.dataset.content_hash,
            "training": {
                "best_epoch": state.best_epoch,
                "best_metric": state.best_metric,
                "monitor": hp.monitor,
                "epochs_run": epochs_run,
                "stopped_early": state.stopped_early,
                "device": str(device),
                "history": [report.as_dict() for report in state.history],
            },
        }
        return TrainingResult(
            model=self.model,
            best_epoch=state.best_epoch,
            best_metric=state.best_metric,
            monitor=hp.monitor,
            epochs_run=epochs_run,
            history=list(state.history),
            stopped_early=state.stopped_early,
            artifact=save_artifact(self.model, self.model_type, self.config, extra=extra),
            device=str(device),
        )


# --------------------------------------------------------------------------------------------------
# Callbacks that may be coroutines
# --------------------------------------------------------------------------------------------------


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _invoke(callback: Callable[..., Any], args: tuple[Any, ...], loop: asyncio.AbstractEventLoop | None) -> None:
    """Call ``callback``; if it returns an awaitable, wait for it to finish before training goes on."""
    result = callback(*args)
    if not inspect.isawaitable(result):
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is not None and loop is not running:
        asyncio.run_coroutine_threadsafe(_await(result), loop).result()
    elif running is None:
        asyncio.run(_await(result))
    else:
        # Blocking here would deadlock the loop the coroutine needs.
        if inspect.iscoroutine(result):
            result.close()
        raise RuntimeError(
            "Trainer.run was called on a running event loop with an async callback; "
            "call it via asyncio.to_thread(...) and pass event_loop=asyncio.get_running_loop()"
        )
