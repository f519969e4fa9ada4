"""Events of the model aggregate (topic ``cairn.models.v1``), emitted by the registry service."""
from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from pydantic import Field

from libs.events import topics
from libs.events.base import Event

_EXAMPLE_MODEL: dict[str, Any] = {
    "model_id": "7d0c6f9e-2f4b-4d7e-9a4e-0d5f3b8f1a11",
    "name": "bert-base-chinese",
    "type": "transformer",
    "framework": "pytorch",
    "task": "text-classification",
    "description": "BERT base for Chinese text classification",
    "metadata": {"vocab_size": 21128, "max_seq_len": 512, "d_model": 768, "num_heads": 12},
    "tags": {"language": "chinese"},
    "owner": "alice",
    "created_at": "2026-06-15T10:00:00+00:00",
    "updated_at": "2026-06-15T10:00:00+00:00",
    "revision": 1,
}


class ModelState(Event):
    """The whole model, so consumers can keep a projection without calling the registry."""

    model_id: UUID
    name: str
    type: str = Field(description="Model type: classification, regression, transformer, vision, audio, ...")
    framework: str
    task: str | None = None
    description: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict, description="Typed metadata, validated per model type")
    tags: dict[str, str] = Field(default_factory=dict)
    owner: str
    created_at: datetime
    updated_at: datetime
    revision: int = Field(ge=1, description="Increases by one with every change")


class ModelRegistered(ModelState):
    """Sent when a model is registered."""

    event_type: ClassVar[str] = "ModelRegistered"
    topic: ClassVar[str] = topics.MODELS
    example: ClassVar[dict[str, Any]] = _EXAMPLE_MODEL


class ModelUpdated(ModelState):
    """Sent when a model's description, task, framework, metadata or tags change; ``changed`` names them."""

    event_type: ClassVar[str] = "ModelUpdated"
    topic: ClassVar[str] = topics.MODELS
    example: ClassVar[dict[str, Any]] = {**_EXAMPLE_MODEL, "revision": 2, "changed": ["description"]}

    changed: list[str] = Field(description="Names of the fields this change touched")


class ModelDeleted(Event):
    """Sent when a model is deleted (soft: its history and audit trail stay)."""

    event_type: ClassVar[str] = "ModelDeleted"
    topic: ClassVar[str] = topics.MODELS
    example: ClassVar[dict[str, Any]] = {
        "model_id": _EXAMPLE_MODEL["model_id"],
        "name": "bert-base-chinese",
        "deleted_at": "2026-06-16T09:00:00+00:00",
    }

    model_id: UUID
    name: str
    deleted_at: datetime
