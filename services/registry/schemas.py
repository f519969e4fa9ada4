"""The registry's HTTP contract. The gateway declares the same models so its OpenAPI shows them."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from libs.kit.http import RefusedModelPath

from services.registry.domain import NAME_PATTERN, Framework, ModelType


#: names that would be shadowed by the gateway's own routes under /api/v1/models/
RESERVED_NAMES = frozenset({"search", "compare"})

#: keys seed 001 puts inside ``metadata`` that Cairn keeps as first-class model fields
SEED_LIFTED_KEYS = ("description", "framework", "task")


def lift_seed_fields(data: Any) -> Any:
    """Seed 001 writes ``metadata.framework``, ``metadata.task`` and ``metadata.description``; they are
    the model's own fields, so they move up. The same value in both places is fine; two values are not."""
    if not isinstance(data, dict) or not isinstance(data.get("metadata"), dict):
        return data
    metadata = dict(data["metadata"])
    lifted = dict(data)
    for key in SEED_LIFTED_KEYS:
        if key not in metadata:
            continue
        value = metadata.pop(key)
        if lifted.get(key) not in (None, value):
            raise ValueError(f"{key} is given twice with different values (top level and metadata.{key})")
        lifted[key] = value
    lifted["metadata"] = metadata
    return lifted


class ModelCreate(BaseModel):
    """Register a model. ``metadata`` is validated against the schema of ``type``
    (see ``GET /api/v1/model-types``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "name": "bert-base-chinese",
                "type": "transformer",
                "framework": "pytorch",
                "task": "text-classification",
                "description": "BERT base for Chinese text classification",
                "metadata": {"vocab_size": 21128, "max_seq_len": 512, "d_model": 768, "num_heads": 12,
                             "num_layers": 12, "d_ff": 3072, "num_classes": 10},
                "tags": {"language": "chinese"},
            }
        },
    )

    name: str = Field(pattern=NAME_PATTERN, description="Unique among live models; letters, digits, . _ -")
    type: ModelType = Field(ModelType.other, description="Picks the metadata schema; `other` accepts free-form keys")
    framework: Framework = "pytorch"
    task: str | None = Field(None, max_length=128)
    description: str = Field("", max_length=10_000)
    metadata: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    owner: str | None = Field(None, max_length=128, description="Defaults to the caller")
    model_path: RefusedModelPath = None

    @model_validator(mode="before")
    @classmethod
    def _seed_fields(cls, data: Any) -> Any:
        return lift_seed_fields(data)

    @field_validator("name")
    @classmethod
    def _not_a_route(cls, value: str) -> str:
        if value.lower() in RESERVED_NAMES:
            raise ValueError(f"{value!r} is reserved: /api/v1/models/{value.lower()} is a route of its own")
        return value


class ModelPatch(BaseModel):
    """Partial update. ``metadata`` and ``tags`` are JSON merge patches: a key set to null is removed."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(None, max_length=10_000)
    task: str | None = Field(None, max_length=128)
    framework: Framework | None = None
    owner: str | None = Field(None, max_length=128)
    metadata: dict[str, Any] | None = None
    tags: dict[str, str | None] | None = None

    @model_validator(mode="before")
    @classmethod
    def _seed_fields(cls, data: Any) -> Any:
        return lift_seed_fields(data)


class ModelOut(BaseModel):
    model_id: UUID
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
    revision: int
    status: Literal["draft", "staging", "production"] = Field(
        "draft", description="The most advanced stage of the model's versions in the production environment")


class ModelPage(BaseModel):
    total: int
    page: int
    page_size: int
    models: list[ModelOut]


SortField = Literal["created_at", "-created_at", "name", "-name", "updated_at", "-updated_at"]


class ModelListQuery:
    """Filters and paging of ``GET /models``; a dependency shared by the registry and the gateway."""

    def __init__(
        self,
        type: ModelType | None = None,
        framework: str | None = Query(None, max_length=64),
        task: str | None = Query(None, max_length=128),
        owner: str | None = Query(None, max_length=128),
        tag: list[str] | None = Query(None, description="key or key:value; repeat to require several"),
        q: str | None = Query(None, max_length=200, description="substring of name or description"),
        sort: SortField = "-created_at",
        page: int = Query(1, ge=1, le=100_000),
        page_size: int = Query(20, ge=1, le=100),
    ) -> None:
        self.type, self.framework, self.task, self.owner = type, framework, task, owner
        self.tag, self.q, self.sort, self.page, self.page_size = tag or [], q, sort, page, page_size
