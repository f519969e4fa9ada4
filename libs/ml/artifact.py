"""The weights file format of Cairn model versions (``cairn.torch/1``).

An artifact is ``torch.save`` of a plain dict::

    {"format": "cairn.torch/1", "model_type": str, "config": dict, "state_dict": {name: Tensor}, "extra": dict}

Only tensors and JSON-like values are stored, never pickled classes, so :func:`load_artifact` can use
``torch.load(..., weights_only=True)``: a crafted file cannot execute code when a worker loads it.
The model is rebuilt from ``model_type`` + ``config`` through :mod:`libs.ml.zoo`.
"""
from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from libs.ml.zoo import SUPPORTED_TYPES, ModelConfigError, build_model, resolve_config

FORMAT = "cairn.torch/1"

_ZIP_MAGIC = b"PK\x03\x04"
# Types the weights-only unpickler accepts without an allow-list; ``extra`` is restricted to these.
_PLAIN_SCALARS = (str, int, float, bool, type(None))


class ArtifactError(ValueError):
    """An artifact cannot be written or read; the message says why."""


@dataclass(frozen=True)
class LoadedArtifact:
    """A model rebuilt from an artifact, in eval mode, plus what the artifact said about it."""

    model: nn.Module
    model_type: str
    config: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def _check_plain(value: Any, where: str) -> None:
    """Reject values that ``weights_only`` loading would refuse, so bad artifacts fail at save time."""
    if isinstance(value, _PLAIN_SCALARS):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ArtifactError(f"{where} keys must be strings (got {key!r})")
            _check_plain(item, f"{where}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]")
        return
    raise ArtifactError(f"{where} holds a {type(value).__name__}; only JSON-like values can go in an artifact")


def _plain(value: Any) -> Any:
    """Copy a checked value into builtin dict/list containers (e.g. MappingProxy → dict)."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def save_artifact(
    model: nn.Module, model_type: str, config: Mapping[str, Any], *, extra: dict[str, Any] | None = None
) -> bytes:
    """Serialise ``model``'s weights with its type and config into artifact bytes.

    ``config`` is resolved through the zoo (defaults filled in) so loading rebuilds the same architecture;
    if the model exposes its own ``config`` it must agree. ``extra`` (hyperparameters, dataset descriptor,
    metrics...) must be JSON-like. Tensors are copied to CPU so artifacts trained on a GPU load anywhere.
    """
    try:
        resolved = resolve_config(model_type, config)
    except ModelConfigError as exc:
        raise ArtifactError(f"cannot save artifact: {exc}") from exc
    own = getattr(model, "config", None)
    if isinstance(own, Mapping) and dict(own) != resolved:
        raise ArtifactError(f"cannot save artifact: config {resolved} does not match the model's config {dict(own)}")
    extra = {} if extra is None else extra
    _check_plain(extra, "extra")
    payload = {
        "format": FORMAT,
        "model_type": model_type,
        "config": resolved,
        "state_dict": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
        "extra": _plain(extra),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _read_payload(data: bytes, map_location: Any) -> dict[str, Any]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ArtifactError(f"artifact must be bytes (got {type(data).__name__})")
    data = bytes(data)
    if isinstance(map_location, (str, torch.device)):
        target = torch.device(map_location)
        if target.type == "cuda" and not torch.cuda.is_available():
            raise ArtifactError(f"cannot load artifact onto {target}: CUDA is not available on this machine")
    # torch.save always writes a zip archive; refusing anything else keeps torch.load's legacy raw-pickle
    # reader (and its garbage-in error messages) out of the picture entirely.
    if not data.startswith(_ZIP_MAGIC):
        raise ArtifactError("not a torch artifact: expected the zip archive torch.save writes")
    try:
        payload = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower():
            raise ArtifactError(
                "refusing to load artifact: it contains objects other than tensors and plain values"
            ) from exc
        raise ArtifactError(f"not a torch artifact: {exc}") from exc
    except Exception as exc:  # torch raises RuntimeError, EOFError, zipfile errors... for garbage input
        raise ArtifactError(f"not a torch artifact: {type(exc).__name__}: {exc}") from exc
    if not isinstance(payload, dict):
        raise ArtifactError(f"not a Cairn artifact: top level is a {type(payload).__name__}, expected a dict")
    tag = payload.get("format")
    if tag != FORMAT:
        raise ArtifactError(f"wrong artifact format tag {tag!r}, expected {FORMAT!r}")
    if payload.get("model_type") not in SUPPORTED_TYPES:
        raise ArtifactError(f"artifact has unsupported model_type {payload.get('model_type')!r}")
    if not isinstance(payload.get("config"), dict):
        raise ArtifactError("artifact config is missing or not a dict")
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise ArtifactError("artifact state_dict is missing or holds non-tensor values")
    extra = payload.get("extra", {})
    if not isinstance(extra, dict):
        raise ArtifactError("artifact extra must be a dict")
    return payload


def load_artifact(data: bytes, map_location: Any = "cpu") -> LoadedArtifact:
    """Rebuild the model stored in artifact ``data`` and return it in eval mode.

    Loading is weights-only (no arbitrary unpickling). Raises :class:`ArtifactError` when the bytes are
    not a torch file, carry the wrong format tag, name a config the zoo rejects, or hold a state_dict that
    does not match the architecture. With a string/device ``map_location`` the model is moved there.
    """
    payload = _read_payload(data, map_location)
    model_type, config = payload["model_type"], payload["config"]
    try:
        model = build_model(model_type, config)
    except ModelConfigError as exc:
        raise ArtifactError(f"artifact config is invalid: {exc}") from exc
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise ArtifactError(f"artifact state_dict does not match the {model_type} architecture: {exc}") from exc
    if isinstance(map_location, (str, torch.device)):
        model.to(map_location)
    model.eval()
    return LoadedArtifact(model=model, model_type=model_type, config=dict(model.config), extra=payload["extra"])


def describe_artifact(data: bytes) -> dict[str, Any]:
    """Summarise an artifact without the caller knowing its type: format, type, config, sizes and ``extra``.

    The model is actually rebuilt, so a description also proves the artifact loads.
    """
    loaded = load_artifact(data)
    parameters = list(loaded.model.parameters())
    return {
        "format": FORMAT,
        "model_type": loaded.model_type,
        "config": loaded.config,
        "parameter_count": sum(p.numel() for p in parameters),
        "trainable_parameter_count": sum(p.numel() for p in parameters if p.requires_grad),
        "state_dict_bytes": sum(t.numel() * t.element_size() for t in loaded.model.state_dict().values()),
        "artifact_bytes": len(data),
        "extra": loaded.extra,
    }
