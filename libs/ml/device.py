"""Device selection and CUDA automatic mixed precision (AMP) helpers.

Mixed precision is only ever enabled on CUDA. On CPU it stays off on purpose: CPU autocast runs in
bfloat16, which on most CPUs is no faster than float32 for small models, costs accuracy, and would stop
CPU training from being bit-for-bit reproducible (which checkpoint/resume relies on).

On CUDA, bfloat16 is preferred when the GPU supports it (same exponent range as float32, so no loss
scaling is needed); otherwise float16 is used together with a :class:`torch.amp.GradScaler` that scales
the loss so small gradients do not underflow.
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch

DEVICE_PREFERENCES = ("auto", "cpu", "cuda")


class DeviceUnavailableError(RuntimeError):
    """The requested device (e.g. ``"cuda"``) does not exist on this machine."""


def choose_device(preference: str = "auto") -> torch.device:
    """Resolve ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` to a device.

    Raises :class:`DeviceUnavailableError` when CUDA (or that CUDA index) is requested but absent, and
    ``ValueError`` for any other string.
    """
    choice = preference.strip().lower()
    if choice == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "cuda" or choice.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"device {preference!r} requested but CUDA is not available "
                f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); use 'cpu' or 'auto'"
            )
        device = torch.device(choice)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"device {preference!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
        return device
    raise ValueError(f"unknown device {preference!r}; expected one of {list(DEVICE_PREFERENCES)} or 'cuda:N'")


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``device``: bfloat16 if the GPU supports it, else float16; ``None`` on CPU."""
    if device.type != "cuda":
        return None
    with torch.cuda.device(device):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast_context(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """A context that runs the forward pass under CUDA autocast when ``enabled``; a no-op on CPU."""
    dtype = amp_dtype(device) if enabled else None
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)


def make_grad_scaler(device: torch.device, enabled: bool) -> torch.amp.GradScaler:
    """A ``GradScaler`` that is active only for CUDA float16 autocast.

    bfloat16 and float32 do not underflow the way float16 does, so the scaler is returned disabled (its
    ``scale``/``step``/``update`` become pass-throughs) and the training loop needs no special cases.
    """
    active = enabled and amp_dtype(device) == torch.float16
    return torch.amp.GradScaler("cuda", enabled=active)


def configure_backends(device: torch.device) -> None:
    """Per-run backend tuning: on CUDA let cuDNN benchmark convolution algorithms for the fixed shapes.

    Benchmarking picks the fastest kernel per input shape; the price is that CUDA runs reproduce only to
    float tolerance, not bit for bit. Nothing is changed for CPU.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def loader_options(device: torch.device) -> dict[str, Any]:
    """``DataLoader`` keyword arguments for ``device``: pinned host memory on CUDA for async copies."""
    return {"pin_memory": device.type == "cuda"}


def move_batch(tensors: Any, device: torch.device) -> Any:
    """Move a tensor or a (nested) tuple/list of tensors to ``device``.

    ``non_blocking`` lets host→GPU copies from pinned memory overlap with compute; on CPU it is a no-op.
    """
    if isinstance(tensors, torch.Tensor):
        return tensors.to(device, non_blocking=device.type == "cuda")
    if isinstance(tensors, (list, tuple)):
        return type(tensors)(move_batch(t, device) for t in tensors)
    return tensors


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work so wall-clock timings measure the kernels, not just their launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rng_devices(device: torch.device) -> list[int]:
    """CUDA device indices whose RNG state a run on ``device`` uses (for ``torch.random.fork_rng``)."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]

