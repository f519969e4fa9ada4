"""Pure rules of the model aggregate: names, tags, typed metadata per model type, and the changes
that register, update and delete a model. No I/O; the clock and ids are passed in."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from libs.events.models import ModelDeleted, ModelRegistered, ModelUpdated
from libs.kit.errors import FieldError, ValidationFailed

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
TAG_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$"
MAX_TAGS = 50
MAX_TAG_VALUE = 256


class ModelType(str, Enum):
    classification = "classification"
    regression = "regression"
    optimization = "optimization"
    transformer = "transformer"
    vision = "vision"
    audio = "audio"
    diffusion = "diffusion"
    other = "other"


Framework = Literal[
    "pytorch", "tensorflow", "jax", "onnx", "sklearn", "huggingface", "xgboost", "lightgbm", "other"
]

Dim = Field(default=None, ge=1, le=1_000_000)


class Quantization(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    type: Literal["int8", "int16", "float16", "bfloat16", "int4"] | None = None
    original_model_id: UUID | None = None
    compression_ratio: float | None = Field(None, gt=0)
    accuracy_drop: float | None = None
    speedup: float | None = Field(None, gt=0)


class CommonMetadata(BaseModel):
    """Fields any model type may carry (seed 004)."""

    model_config = ConfigDict(extra="forbid")
    input_shape: list[int] | None = Field(None, max_length=8)
    output_shape: list[int] | None = Field(None, max_length=8)
    model_format: Literal["pytorch", "onnx", "huggingface", "safetensors", "tensorflow", "other"] | None = None
    is_pretrained: bool | None = None
    pretrained_source: str | None = Field(None, max_length=512)
    quantization: Quantization | None = None
    license: str | None = Field(None, max_length=64)


class TransformerMetadata(CommonMetadata):
    vocab_size: int | None = Field(None, ge=2, le=10_000_000)
    max_seq_len: int | None = Field(None, ge=1, le=1_000_000)
    d_model: int | None = Field(None, ge=1, le=65_536)
    num_heads: int | None = Field(None, ge=1, le=1024)
    num_layers: int | None = Field(None, ge=1, le=1024)
    d_ff: int | None = Field(None, ge=1, le=1_000_000)
    num_classes: int | None = Field(None, ge=1, le=1_000_000)
    dropout: float | None = Field(None, ge=0, lt=1)

    @model_validator(mode="after")
    def _heads_divide_width(self):
        if self.d_model and self.num_heads and self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        return self


class VisionMetadata(CommonMetadata):
    image_size: int | None = Field(None, ge=1, le=16_384)
    image_channels: int | None = Field(None, ge=1, le=64)
    num_classes: int | None = Field(None, ge=1, le=1_000_000)
    base_channels: int | None = Field(None, ge=1, le=4096)
    architecture: Literal["cnn", "vit"] | None = None
    patch_size: int | None = Field(None, ge=1, le=1024)


class AudioMetadata(CommonMetadata):
    sample_rate: int | None = Field(None, ge=1, le=1_000_000)
    n_features: int | None = Field(None, ge=1, le=100_000)
    hidden_size: int | None = Field(None, ge=1, le=65_536)
    num_layers: int | None = Field(None, ge=1, le=64)
    num_classes: int | None = Field(None, ge=1, le=1_000_000)
    rnn_type: Literal["lstm", "gru"] | None = None
    bidirectional: bool | None = None


class ClassificationMetadata(CommonMetadata):
    input_dim: int | None = Field(None, ge=1, le=10_000_000)
    num_classes: int | None = Field(None, ge=2, le=1_000_000)
    hidden_sizes: list[int] | None = Field(None, max_length=64)
    dropout: float | None = Field(None, ge=0, lt=1)


class RegressionMetadata(CommonMetadata):
    input_dim: int | None = Field(None, ge=1, le=10_000_000)
    output_dim: int | None = Field(None, ge=1, le=1_000_000)
    hidden_sizes: list[int] | None = Field(None, max_length=64)


class DiffusionMetadata(CommonMetadata):
    image_size: int | None = Field(None, ge=1, le=16_384)
    image_channels: int | None = Field(None, ge=1, le=64)
    base_channels: int | None = Field(None, ge=1, le=4096)
    timesteps: int | None = Field(None, ge=1, le=100_000)


class OptimizationMetadata(CommonMetadata):
    objective: str | None = Field(None, max_length=256)
    num_variables: int | None = Field(None, ge=1)
    algorithm: str | None = Field(None, max_length=128)


class OtherMetadata(CommonMetadata):
    """Free-form: any extra scalar keys are kept as they are."""

    model_config = ConfigDict(extra="allow")


METADATA_SCHEMAS: dict[ModelType, type[CommonMetadata]] = {
    ModelType.classification: ClassificationMetadata,
    ModelType.regression: RegressionMetadata,
    ModelType.optimization: OptimizationMetadata,
    ModelType.transformer: TransformerMetadata,
    ModelType.vision: VisionMetadata,
    ModelType.audio: AudioMetadata,
    ModelType.diffusion: DiffusionMetadata,
    ModelType.other: OtherMetadata,
}


def validate_metadata(model_type: ModelType, metadata: dict[str, Any]) -> dict[str, Any]:
    """Check ``metadata`` against its type's schema; returns it normalised (unset keys dropped)."""
    schema = METADATA_SCHEMAS[model_type]
    try:
        parsed = schema.model_validate(metadata)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            message = "unknown field for model type " + model_type.value if err["type"] == "extra_forbidden" else err["msg"]
            errors.append(FieldError(f"metadata.{where}" if where else "metadata", message.removeprefix("Value error, ")))
        first = errors[0]
        raise ValidationFailed(f"{first.field}: {first.message}", errors=errors) from None
    return parsed.model_dump(mode="json", exclude_none=True)


def validate_tags(tags: dict[str, str]) -> dict[str, str]:
    errors = []
    if len(tags) > MAX_TAGS:
        errors.append(FieldError("tags", f"at most {MAX_TAGS} tags"))
    for key, value in tags.items():
        if not re.match(TAG_KEY_PATTERN, key):
            errors.append(FieldError(f"tags.{key}", f"tag key must match {TAG_KEY_PATTERN}"))
        elif not isinstance(value, str) or len(value) > MAX_TAG_VALUE:
            errors.append(FieldError(f"tags.{key}", f"tag value must be a string of at most {MAX_TAG_VALUE} characters"))
    if errors:
        raise ValidationFailed(f"{errors[0].field}: {errors[0].message}", errors=errors)
    return dict(tags)


@dataclass(frozen=True)
class Model:
    id: UUID
    name: str
    type: ModelType
    framework: str
    task: str | None
    description: str
    metadata: dict[str, Any]
    tags: dict[str, str]
    owner: str
    created_at: datetime
    updated_at: datetime
    revision: int = 1
    deleted_at: datetime | None = None
    status: str = "draft"  # from lifecycle events; not part of the model's own events

    def state(self) -> dict[str, Any]:
        return {
            "model_id": self.id,
            "name": self.name,
            "type": self.type.value,
            "framework": self.framework,
            "task": self.task,
            "description": self.description,
            "metadata": self.metadata,
            "tags": self.tags,
            "owner": self.owner,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "revision": self.revision,
        }


@dataclass(frozen=True)
class Registration:
    name: str
    type: ModelType
    framework: str
    task: str | None = None
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    owner: str | None = None


def register(cmd: Registration, *, model_id: UUID, actor: str, now: datetime) -> tuple[Model, ModelRegistered]:
    model = Model(
        id=model_id,
        name=cmd.name,
        type=cmd.type,
        framework=cmd.framework,
        task=cmd.task,
        description=cmd.description,
        metadata=validate_metadata(cmd.type, cmd.metadata),
        tags=validate_tags(cmd.tags),
        owner=cmd.owner or actor,
        created_at=now,
        updated_at=now,
    )
    return model, ModelRegistered(**model.state())


def merge_patch(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch: keys set to null are removed, objects merge recursively."""
    result = dict(current)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_patch(result[key], value)
        else:
            result[key] = value
    return result


UPDATABLE = ("description", "task", "framework", "owner", "metadata", "tags")


def update(model: Model, patch: dict[str, Any], *, now: datetime) -> tuple[Model, ModelUpdated | None]:
    """Apply a partial update. ``metadata`` and ``tags`` are merge patches; other fields are replaced.
    Returns the new model and its event, or the same model and None when nothing changes."""
    changes: dict[str, Any] = {}
    for key in UPDATABLE:
        if key not in patch:
            continue
        value = patch[key]
        if key == "metadata":
            value = validate_metadata(model.type, merge_patch(model.metadata, value or {}))
        elif key == "tags":
            value = validate_tags(merge_patch(model.tags, value or {}))
        elif key == "description":
            value = value or ""
        elif key in ("framework", "owner") and value is None:
            raise ValidationFailed(f"{key}: may not be null", errors=[FieldError(key, "may not be null")])
        if value != getattr(model, key):
            changes[key] = value
    if not changes:
        return model, None
    updated = replace(model, **changes, updated_at=now, revision=model.revision + 1)
    return updated, ModelUpdated(**updated.state(), changed=sorted(changes))


def delete(model: Model, *, now: datetime) -> tuple[Model, ModelDeleted]:
    deleted = replace(model, deleted_at=now, updated_at=now, revision=model.revision + 1)
    return deleted, ModelDeleted(model_id=model.id, name=model.name, deleted_at=now)
