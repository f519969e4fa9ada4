"""Evaluation of a trained model on a held-out split: quality, speed, size and compute.

:func:`evaluate` measures, on one split:

- classification: accuracy, macro precision/recall/F1 and mean cross-entropy; regression: MSE (as
  ``loss``), MAE and R²; classification metrics are ``None`` for regression;
- latency at batch size 1 (p50/p99 in ms, after warm-up, under ``torch.inference_mode``) and throughput
  in samples/s at ``batch_size``;
- parameter count, state_dict size in bytes and FLOPs per sample.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts as 2 FLOPs), taught
two CPU kernels it does not know (fused attention, oneDNN RNN layers). If the counter fails or sees
nothing, Linear/Conv/attention/RNN multiply-adds are counted with forward hooks instead.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, mean_absolute_error, precision_recall_fscore_support, r2_score
from torch import nn
from torch.utils.data import TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from libs.ml.device import choose_device, move_batch, synchronize

Split = TensorDataset | tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class EvaluationReport:
    """Metrics of one model on one split; :meth:`as_dict` gives a JSON-able dict."""

    task: str
    n_samples: int
    loss: float
    accuracy: float | None
    precision_macro: float | None
    recall_macro: float | None
    f1_macro: float | None
    mae: float | None
    r2: float | None
    latency_p50_ms: float
    latency_p99_ms: float
    throughput_samples_per_s: float
    parameter_count: int
    state_dict_bytes: int
    flops_per_sample: int
    flops_method: str
    device: str
    batch_size: int

    def as_dict(self) -> dict[str, Any]:
        """Plain dict of every field."""
        return asdict(self)


def _tensors(split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(split, TensorDataset):
        if len(split.tensors) != 2:
            raise ValueError(f"expected a TensorDataset of (inputs, targets), got {len(split.tensors)} tensors")
        return split.tensors[0], split.tensors[1]
    inputs, targets = split
    return inputs, targets


def _infer_task(targets: torch.Tensor) -> str:
    # Class ids are integers; regression targets are floats. The datasets module guarantees this split.
    return "regression" if targets.is_floating_point() else "classification"


def _predict(model: nn.Module, inputs: torch.Tensor, device: torch.device, batch_size: int) -> torch.Tensor:
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            outputs.append(model(move_batch(inputs[start : start + batch_size], device)).float().cpu())
    return torch.cat(outputs)


def _quality(task: str, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float | None]:
    if task == "regression":
        targets = targets.float().reshape(outputs.shape)
        truth, predicted = targets.numpy().reshape(len(targets), -1), outputs.numpy().reshape(len(outputs), -1)
        return {
            "loss": F.mse_loss(outputs, targets).item(),
            "mae": float(mean_absolute_error(truth, predicted)),
            # R² is undefined for fewer than two samples.
            "r2": float(r2_score(truth, predicted)) if len(truth) > 1 else None,
            "accuracy": None,
            "precision_macro": None,
            "recall_macro": None,
            "f1_macro": None,
        }
    predicted = outputs.argmax(dim=1).numpy()
    truth = targets.numpy()
    precision, recall, f1, _ = precision_recall_fscore_support(truth, predicted, average="macro", zero_division=0)
    return {
        "loss": F.cross_entropy(outputs, targets.long()).item(),
        "accuracy": float(accuracy_score(truth, predicted)),
        "precision_macro": float(precision),
        "recall_macro": float(recall),
        "f1_macro": float(f1),
        "mae": None,
        "r2": None,
    }


def _latency_ms(model: nn.Module, sample: torch.Tensor, device: torch.device, runs: int) -> tuple[float, float]:
    sample = move_batch(sample, device)
    timings = []
    with torch.inference_mode():
        # Warm-up: first calls pay for allocator growth, oneDNN/cuDNN kernel selection and lazy init.
        for _ in range(min(10, max(3, runs // 5))):
            model(sample)
        synchronize(device)
        for _ in range(runs):
            start = time.perf_counter()
            model(sample)
            synchronize(device)
            timings.append((time.perf_counter() - start) * 1000.0)
    return float(np.percentile(timings, 50)), float(np.percentile(timings, 99))


def _throughput(model: nn.Module, inputs: torch.Tensor, device: torch.device, batch_size: int) -> float:
    # The quality pass already warmed the model up at this batch size, so one timed pass is enough.
    synchronize(device)
    start = time.perf_counter()
    _predict(model, inputs, device, batch_size)
    synchronize(device)
    seconds = time.perf_counter() - start
    return len(inputs) / seconds if seconds > 0 else math.inf


# -- FLOPs -----------------------------------------------------------------------------------------


def _sdpa_cpu_flops(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, out_shape: Any = None, **kw: Any) -> int:
    """FLOPs of fused CPU attention: Q·Kᵀ and attention·V, each 2·b·h·s_q·s_k·d."""
    b, h, s_q, d = query_shape
    s_k, d_v = key_shape[-2], value_shape[-1]
    return 2 * b * h * s_q * s_k * d + 2 * b * h * s_q * s_k * d_v


def _mkldnn_rnn_layer_flops(input_shape: Any, w_ih_shape: Any, w_hh_shape: Any, *args: Any, out_shape: Any = None, **kw: Any) -> int:
    """FLOPs of one oneDNN RNN layer/direction: input and recurrent matmuls for every time step."""
    steps_times_batch = math.prod(input_shape[:-1])
    gates, in_features = w_ih_shape
    hidden = w_hh_shape[1]
    return 2 * steps_times_batch * gates * (in_features + hidden)


def _extra_flop_formulas() -> dict[Any, Callable[..., int]]:
    aten = torch.ops.aten
    formulas: dict[Any, Callable[..., int]] = {}
    # Kernels the stock counter has no formula for in this torch build; counted as zero otherwise.
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        formulas[aten._scaled_dot_product_flash_attention_for_cpu] = _sdpa_cpu_flops
    if hasattr(aten, "mkldnn_rnn_layer"):
        formulas[aten.mkldnn_rnn_layer] = _mkldnn_rnn_layer_flops
    return formulas


def _flops_with_counter(model: nn.Module, sample: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False, custom_mapping=_extra_flop_formulas())
    # Grad mode on (but nothing is backpropagated): it keeps TransformerEncoder off its fused inference
    # fast path, whose single opaque kernel the counter cannot see into.
    with torch.enable_grad(), counter:
        model(sample)
    return int(counter.get_total_flops())


def _flops_with_hooks(model: nn.Module, sample: torch.Tensor) -> int:
    """Count 2·MACs of Linear, Conv, attention and RNN layers from the shapes seen in a forward pass."""
    total = 0

    def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        nonlocal total
        out = output[0] if isinstance(output, tuple) else output
        if isinstance(module, nn.Linear):
            total += 2 * (out.numel() // module.out_features) * module.in_features * module.out_features
        elif isinstance(module, nn.modules.conv._ConvNd):
            kernel = math.prod(module.kernel_size) * module.in_channels // module.groups
            total += 2 * out.numel() * kernel
        elif isinstance(module, nn.MultiheadAttention):
            query, key = args[0], args[1]
            embed = module.embed_dim
            queries, keys = query.numel() // embed, key.numel() // key.shape[-1]
            key_len = key.shape[0] if key.dim() == 2 or not module.batch_first else key.shape[1]
            # q/k/v and output projections, then Q·Kᵀ and attention·V.
            total += 2 * embed * embed * (2 * queries + 2 * keys)
            total += 4 * queries * key_len * embed
        elif isinstance(module, nn.RNNBase):
            gates = {"LSTM": 4, "GRU": 3}.get(module.mode, 1)
            steps = args[0].numel() // args[0].shape[-1]  # batch * time
            directions = 2 if module.bidirectional else 1
            for layer in range(module.num_layers):
                in_features = module.input_size if layer == 0 else module.hidden_size * directions
                total += 2 * steps * directions * gates * module.hidden_size * (in_features + module.hidden_size)

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd, nn.MultiheadAttention, nn.RNNBase))
    ]
    try:
        with torch.enable_grad():  # same reason as in _flops_with_counter: stay off the fused fast path
            model(sample)
    finally:
        for handle in handles:
            handle.remove()
    return total


def count_flops(model: nn.Module, sample: torch.Tensor) -> tuple[int, str]:
    """FLOPs of one forward pass on ``sample`` and the method used (``"flop_counter"`` or ``"mac_hooks"``)."""
    try:
        flops = _flops_with_counter(model, sample)
        if flops > 0:
            return flops, "flop_counter"
    except Exception:  # noqa: BLE001 - any counter failure falls back to the hook count below
        pass
    return _flops_with_hooks(model, sample), "mac_hooks"


def state_dict_bytes(model: nn.Module) -> int:
    """Bytes of tensor data in ``model.state_dict()`` (parameters and buffers, no file overhead)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


# -- entry point -----------------------------------------------------------------------------------


def evaluate(
    model: nn.Module,
    dataset_split: Split,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 256,
    latency_runs: int = 50,
    task: str | None = None,
) -> EvaluationReport:
    """Evaluate ``model`` on ``dataset_split`` (a ``TensorDataset`` or ``(inputs, targets)`` pair).

    ``task`` defaults to regression for float targets and classification for integer targets. The model
    is moved to ``device`` and put in eval mode; its previous train/eval mode is restored afterwards.
    """
    if batch_size < 1 or latency_runs < 1:
        raise ValueError("batch_size and latency_runs must be >= 1")
    inputs, targets = _tensors(dataset_split)
    if len(inputs) == 0:
        raise ValueError("cannot evaluate on an empty split")
    task = task or _infer_task(targets)
    if task not in ("classification", "regression"):
        raise ValueError(f"unknown task {task!r}")
    target_device = device if isinstance(device, torch.device) else choose_device(device)
    was_training = model.training
    model.to(target_device).eval()
    try:
        outputs = _predict(model, inputs, target_device, batch_size)
        quality = _quality(task, outputs, targets)
        p50, p99 = _latency_ms(model, inputs[:1], target_device, latency_runs)
        throughput = _throughput(model, inputs, target_device, batch_size)
        flops, method = count_flops(model, move_batch(inputs[:1], target_device))
    finally:
        model.train(was_training)
    return EvaluationReport(
        task=task,
        n_samples=len(inputs),
        latency_p50_ms=p50,
        latency_p99_ms=p99,
        throughput_samples_per_s=throughput,
        parameter_count=sum(p.numel() for p in model.parameters()),
        state_dict_bytes=state_dict_bytes(model),
        flops_per_sample=flops,
        flops_method=method,
        device=str(target_device),
        batch_size=batch_size,
        **quality,
    )
