"""Device selection and AMP helpers (CUDA-only checks are skipped on machines without a GPU)."""
from __future__ import annotations

import pytest
import torch

from libs.ml.device import (
    DeviceUnavailableError,
    autocast_context,
    choose_device,
    loader_options,
    make_grad_scaler,
    move_batch,
)

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks behaviour without CUDA")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_cpu_is_always_available() -> None:
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device(" CPU ") == torch.device("cpu")


@needs_no_cuda
def test_auto_falls_back_to_cpu_and_cuda_request_fails_clearly() -> None:
    assert choose_device("auto") == torch.device("cpu")
    with pytest.raises(DeviceUnavailableError, match="'cuda' requested but CUDA is not available"):
        choose_device("cuda")
    with pytest.raises(DeviceUnavailableError):
        choose_device("cuda:1")


def test_unknown_device_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        choose_device("tpu")


def test_amp_is_off_on_cpu() -> None:
    cpu = torch.device("cpu")
    with autocast_context(cpu, enabled=True):
        assert not torch.is_autocast_enabled("cpu")
        output = torch.nn.Linear(4, 2)(torch.randn(3, 4))
    assert output.dtype == torch.float32
    scaler = make_grad_scaler(cpu, enabled=True)
    assert not scaler.is_enabled()
    assert loader_options(cpu) == {"pin_memory": False}


def test_move_batch_keeps_structure() -> None:
    batch = (torch.zeros(2), [torch.ones(1), torch.ones(3)])
    moved = move_batch(batch, torch.device("cpu"))
    assert isinstance(moved, tuple) and isinstance(moved[1], list) and torch.equal(moved[1][1], torch.ones(3))


@pytest.mark.gpu
@needs_cuda
def test_cuda_autocast_uses_reduced_precision() -> None:
    cuda = choose_device("cuda")
    layer = torch.nn.Linear(8, 8).to(cuda)
    with autocast_context(cuda, enabled=True):
        output = layer(torch.randn(4, 8, device=cuda))
    assert output.dtype in (torch.bfloat16, torch.float16)
    scaler = make_grad_scaler(cuda, enabled=True)
    assert scaler.is_enabled() == (output.dtype == torch.float16)
    assert loader_options(cuda) == {"pin_memory": True}
