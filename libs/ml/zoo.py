"""Model zoo: turn a registry model *type* and its typed metadata (the *config*) into a ``torch.nn.Module``.

The config is validated field by field; a missing or bad field raises :class:`ModelConfigError` whose
message names the field the way the registry shows it (``metadata.<field>``). Unknown keys are ignored
because registry metadata may carry descriptive fields that do not shape the network.

Every model built here has two attributes so an artifact can rebuild it exactly:

- ``model_type``: one of :data:`SUPPORTED_TYPES`;
- ``config``: the *resolved* config (defaults filled in, unknown keys dropped, plain JSON types).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

SUPPORTED_TYPES: tuple[str, ...] = ("vision", "audio", "transformer", "classification", "regression")

# Number of frames used by :func:`example_input` for audio models (their config does not fix a length).
EXAMPLE_AUDIO_FRAMES = 16

_MISSING: Any = object()


class ModelConfigError(ValueError):
    """A model config is missing a required field or has a bad value; the message names the field."""


# --------------------------------------------------------------------------------------------------
# Field readers: each returns a plain Python value so the resolved config is JSON-serialisable.
# --------------------------------------------------------------------------------------------------


def _get(model_type: str, config: Mapping[str, Any], name: str, default: Any) -> Any:
    if name in config and config[name] is not None:
        return config[name]
    if default is _MISSING:
        raise ModelConfigError(f"{model_type} model needs metadata.{name}")
    return default


def _int(model_type: str, config: Mapping[str, Any], name: str, *, default: Any = _MISSING, minimum: int = 1) -> int:
    value = _get(model_type, config, name, default)
    # bool is an int subclass; True as a layer count is almost certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not value.is_integer()):
        raise ModelConfigError(f"{model_type} model: metadata.{name} must be an integer (got {value!r})")
    value = int(value)
    if value < minimum:
        raise ModelConfigError(f"{model_type} model: metadata.{name} must be >= {minimum} (got {value})")
    return value


def _float(
    model_type: str, config: Mapping[str, Any], name: str, *, default: Any = _MISSING, low: float, high: float
) -> float:
    value = _get(model_type, config, name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModelConfigError(f"{model_type} model: metadata.{name} must be a number (got {value!r})")
    if not low <= value < high:
        raise ModelConfigError(f"{model_type} model: metadata.{name} must be in [{low}, {high}) (got {value})")
    return float(value)


def _bool(model_type: str, config: Mapping[str, Any], name: str, *, default: bool) -> bool:
    value = _get(model_type, config, name, default)
    if not isinstance(value, bool):
        raise ModelConfigError(f"{model_type} model: metadata.{name} must be true or false (got {value!r})")
    return value


def _choice(model_type: str, config: Mapping[str, Any], name: str, *, choices: tuple[str, ...], default: str) -> str:
    value = _get(model_type, config, name, default)
    if not isinstance(value, str) or value.lower() not in choices:
        raise ModelConfigError(f"{model_type} model: metadata.{name} must be one of {list(choices)} (got {value!r})")
    return value.lower()


def _int_list(model_type: str, config: Mapping[str, Any], name: str, *, default: list[int]) -> list[int]:
    value = _get(model_type, config, name, default)
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ModelConfigError(f"{model_type} model: metadata.{name} must be a list of positive integers (got {value!r})")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or item < 1:
            raise ModelConfigError(
                f"{model_type} model: metadata.{name} must be a list of positive integers (got {value!r})"
            )
    return [int(item) for item in value]


# --------------------------------------------------------------------------------------------------
# Config resolution per type
# --------------------------------------------------------------------------------------------------


def _vision_config(c: Mapping[str, Any]) -> dict[str, Any]:
    t = "vision"
    return {
        "image_size": _int(t, c, "image_size"),
        "image_channels": _int(t, c, "image_channels"),
        "num_classes": _int(t, c, "num_classes", minimum=2),
        "base_channels": _int(t, c, "base_channels", default=16),
        "architecture": _choice(t, c, "architecture", choices=("cnn",), default="cnn"),
    }


def _audio_config(c: Mapping[str, Any]) -> dict[str, Any]:
    t = "audio"
    return {
        "n_features": _int(t, c, "n_features"),
        "num_classes": _int(t, c, "num_classes", minimum=2),
        "hidden_size": _int(t, c, "hidden_size", default=64),
        "num_layers": _int(t, c, "num_layers", default=1),
        "rnn_type": _choice(t, c, "rnn_type", choices=("lstm", "gru"), default="lstm"),
        "bidirectional": _bool(t, c, "bidirectional", default=False),
    }


def _transformer_config(c: Mapping[str, Any]) -> dict[str, Any]:
    t = "transformer"
    resolved = {
        # Ids 0 (pad) and 1 (unk) are reserved, so a vocabulary has at least those two entries.
        "vocab_size": _int(t, c, "vocab_size", minimum=2),
        "max_seq_len": _int(t, c, "max_seq_len"),
        "d_model": _int(t, c, "d_model"),
        "num_heads": _int(t, c, "num_heads"),
        "num_layers": _int(t, c, "num_layers"),
        "d_ff": _int(t, c, "d_ff"),
        "num_classes": _int(t, c, "num_classes", minimum=2),
        "dropout": _float(t, c, "dropout", default=0.1, low=0.0, high=1.0),
    }
    if resolved["d_model"] % resolved["num_heads"]:
        raise ModelConfigError(
            f"transformer model: metadata.d_model ({resolved['d_model']}) must be divisible by "
            f"metadata.num_heads ({resolved['num_heads']})"
        )
    return resolved


def _classification_config(c: Mapping[str, Any]) -> dict[str, Any]:
    t = "classification"
    return {
        "input_dim": _int(t, c, "input_dim"),
        "num_classes": _int(t, c, "num_classes", minimum=2),
        "hidden_sizes": _int_list(t, c, "hidden_sizes", default=[64, 64]),
        "dropout": _float(t, c, "dropout", default=0.0, low=0.0, high=1.0),
    }


def _regression_config(c: Mapping[str, Any]) -> dict[str, Any]:
    t = "regression"
    return {
        "input_dim": _int(t, c, "input_dim"),
        "output_dim": _int(t, c, "output_dim", default=1),
        "hidden_sizes": _int_list(t, c, "hidden_sizes", default=[64, 64]),
    }


_RESOLVERS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "vision": _vision_config,
    "audio": _audio_config,
    "transformer": _transformer_config,
    "classification": _classification_config,
    "regression": _regression_config,
}


def _check_type(model_type: str) -> str:
    if model_type not in _RESOLVERS:
        raise ModelConfigError(f"unsupported model type {model_type!r}; supported: {list(SUPPORTED_TYPES)}")
    return model_type


def resolve_config(model_type: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``config`` for ``model_type`` and return it with defaults filled in and unknown keys dropped."""
    if not isinstance(config, Mapping):
        raise ModelConfigError(f"{model_type} model: metadata must be a mapping (got {type(config).__name__})")
    return _RESOLVERS[_check_type(model_type)](config)


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------


def _conv_block(in_channels: int, out_channels: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        # padding=1 keeps the spatial size, so tiny inputs such as 8x8 digits survive three blocks.
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class VisionCNN(nn.Module):
    """Three 3x3 conv blocks (``base``, ``2*base``, ``4*base`` channels), global average pooling, linear head.

    A block halves the resolution only while the feature map is at least 4 pixels wide, and the adaptive
    pooling makes the head independent of ``image_size``; 8x8 digits and 224x224 photos both work.
    Input: float tensor ``(batch, image_channels, image_size, image_size)``.
    """

    model_type = "vision"

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        self.config = _vision_config(config)
        base = self.config["base_channels"]
        channels = [self.config["image_channels"], base, base * 2, base * 4]
        size = self.config["image_size"]
        blocks = []
        for in_ch, out_ch in zip(channels, channels[1:]):
            pool = size >= 4
            blocks.append(_conv_block(in_ch, out_ch, pool))
            size = size // 2 if pool else size
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels[-1], self.config["num_classes"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, size, size)`` images → ``(batch, num_classes)`` logits."""
        return self.head(torch.flatten(self.pool(self.features(images)), 1))


class AudioRNN(nn.Module):
    """LSTM or GRU over frame features, mean-pooled over time, linear head.

    Mean pooling (rather than the last hidden state) lets every frame contribute a gradient, which trains
    faster on short clips and does not depend on which direction a bidirectional RNN reads.
    Input: float tensor ``(batch, frames, n_features)``.
    """

    model_type = "audio"

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        self.config = _audio_config(config)
        c = self.config
        rnn_class = nn.LSTM if c["rnn_type"] == "lstm" else nn.GRU
        self.input_norm = nn.LayerNorm(c["n_features"])
        self.rnn = rnn_class(
            input_size=c["n_features"],
            hidden_size=c["hidden_size"],
            num_layers=c["num_layers"],
            batch_first=True,
            bidirectional=c["bidirectional"],
        )
        directions = 2 if c["bidirectional"] else 1
        self.head = nn.Linear(c["hidden_size"] * directions, c["num_classes"])

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``(batch, frames, n_features)`` → ``(batch, num_classes)`` logits."""
        outputs, _ = self.rnn(self.input_norm(frames))
        return self.head(outputs.mean(dim=1))


class TextTransformer(nn.Module):
    """Transformer encoder classifier over token ids.

    Token id 0 is padding: it gets a zero embedding, is masked out of attention through the key padding
    mask and is excluded from the mean pooling. Positions use a learned embedding of ``max_seq_len`` rows.
    Input: ``LongTensor`` ``(batch, seq)`` with ``seq <= max_seq_len``.
    """

    model_type = "transformer"

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        self.config = _transformer_config(config)
        c = self.config
        self.token_embedding = nn.Embedding(c["vocab_size"], c["d_model"], padding_idx=0)
        self.position_embedding = nn.Embedding(c["max_seq_len"], c["d_model"])
        self.dropout = nn.Dropout(c["dropout"])
        layer = nn.TransformerEncoderLayer(
            d_model=c["d_model"],
            nhead=c["num_heads"],
            dim_feedforward=c["d_ff"],
            dropout=c["dropout"],
            batch_first=True,
            # Pre-norm trains stably without learning-rate warm-up, which matters for short runs.
            norm_first=True,
        )
        # Nested tensors would make training and inference take different kernels; keep one code path.
        self.encoder = nn.TransformerEncoder(layer, num_layers=c["num_layers"], enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c["d_model"])
        self.head = nn.Linear(c["d_model"], c["num_classes"])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(batch, seq)`` token ids (0 = padding) → ``(batch, num_classes)`` logits."""
        seq_len = tokens.shape[1]
        if seq_len > self.config["max_seq_len"]:
            raise ValueError(f"sequence length {seq_len} exceeds max_seq_len {self.config['max_seq_len']}")
        padding = tokens == 0
        # A row that is all padding would mask every key and turn attention into NaN; let it attend to
        # position 0 instead (its pooled output is then just that position's embedding).
        padding[:, 0] &= ~padding.all(dim=1)
        positions = torch.arange(seq_len, device=tokens.device)
        hidden = self.dropout(self.token_embedding(tokens) + self.position_embedding(positions))
        hidden = self.norm(self.encoder(hidden, src_key_padding_mask=padding))
        keep = (~padding).unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)
        return self.head(pooled)


def _mlp(input_dim: int, hidden_sizes: list[int], output_dim: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = input_dim
    for hidden in hidden_sizes:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden
    layers.append(nn.Linear(width, output_dim))
    return nn.Sequential(*layers)


class TabularClassifier(nn.Module):
    """MLP classifier over a flat feature vector. Input: float tensor ``(batch, input_dim)``; output logits."""

    model_type = "classification"

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        self.config = _classification_config(config)
        c = self.config
        self.mlp = _mlp(c["input_dim"], c["hidden_sizes"], c["num_classes"], c["dropout"])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(batch, input_dim)`` → ``(batch, num_classes)`` logits."""
        return self.mlp(features)


class TabularRegressor(nn.Module):
    """MLP regressor. Input: float tensor ``(batch, input_dim)``; output ``(batch, output_dim)``."""

    model_type = "regression"

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        self.config = _regression_config(config)
        c = self.config
        self.mlp = _mlp(c["input_dim"], c["hidden_sizes"], c["output_dim"], 0.0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(batch, input_dim)`` → ``(batch, output_dim)`` predictions."""
        return self.mlp(features)


MODEL_CLASSES: dict[str, type[nn.Module]] = {
    "vision": VisionCNN,
    "audio": AudioRNN,
    "transformer": TextTransformer,
    "classification": TabularClassifier,
    "regression": TabularRegressor,
}


def build_model(model_type: str, config: Mapping[str, Any]) -> nn.Module:
    """Build a freshly initialised model of ``model_type`` from ``config`` (the registry metadata).

    Raises :class:`ModelConfigError` for an unsupported type or a missing/bad config field. Initialisation
    uses the global torch RNG, so seed it (``torch.manual_seed``) for reproducible starting weights.
    """
    _check_type(model_type)
    if not isinstance(config, Mapping):
        raise ModelConfigError(f"{model_type} model: metadata must be a mapping (got {type(config).__name__})")
    return MODEL_CLASSES[model_type](config)


def example_input(model_type: str, config: Mapping[str, Any], batch: int = 1) -> torch.Tensor:
    """A deterministic input batch shaped for ``model_type``/``config``, for forward passes and tracing.

    Audio models get :data:`EXAMPLE_AUDIO_FRAMES` frames; text models get full-length sequences of
    non-padding token ids. Values come from a private generator, so the global RNG is untouched.
    """
    c = resolve_config(model_type, config)
    generator = torch.Generator().manual_seed(0)
    if model_type == "vision":
        shape = (batch, c["image_channels"], c["image_size"], c["image_size"])
        return torch.rand(shape, generator=generator)
    if model_type == "audio":
        return torch.randn((batch, EXAMPLE_AUDIO_FRAMES, c["n_features"]), generator=generator)
    if model_type == "transformer":
        return torch.randint(1, c["vocab_size"], (batch, c["max_seq_len"]), generator=generator)
    return torch.randn((batch, c["input_dim"]), generator=generator)
