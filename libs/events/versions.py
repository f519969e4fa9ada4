"""Events of the version aggregate (topic ``cairn.versions.v1``), emitted by the version service."""
from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from libs.events import topics
from libs.events.base import Event

VersionType = Literal["release", "rc", "beta", "alpha"]

_MODEL = "7d0c6f9e-2f4b-4d7e-9a4e-0d5f3b8f1a11"
_VERSION = "0b6c1f53-5a3e-4a55-9c0e-3f1d2a6b7c81"
_SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


class Dependency(BaseModel):
    """Another model version this one needs (e.g. a tokenizer or an embedding model)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model_id: UUID
    version: str


class Lineage(BaseModel):
    """Where a version came from: the experiment record."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    parent_version: str | None = None
    training_job_id: UUID | None = None
    dataset: str | None = Field(None, description="Dataset name or descriptor id")
    dataset_hash: str | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)


class ArtifactRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    storage: Literal["folder", "s3"]


class VersionState(Event):
    """The whole version, so consumers can keep a projection."""

    model_id: UUID
    version_id: UUID
    version: str = Field(description="Semantic version, e.g. 1.3.0-beta.1")
    version_type: VersionType
    change_log: str = ""
    metrics: dict[str, float] = Field(default_factory=dict, description="Performance metrics")
    training_data: dict[str, Any] = Field(default_factory=dict)
    dependencies: list[Dependency] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    lineage: Lineage = Field(default_factory=Lineage)
    metadata: dict[str, Any] = Field(default_factory=dict)
    artifact: ArtifactRef | None = None
    created_by: str
    created_at: datetime


_EXAMPLE_VERSION: dict[str, Any] = {
    "model_id": _MODEL, "version_id": _VERSION, "version": "1.1.0", "version_type": "release",
    "change_log": "Improved version with better performance", "metrics": {"accuracy": 0.97},
    "training_data": {"data_count": 1000}, "dependencies": [], "tags": ["stable"],
    "lineage": {"parent_version": "1.0.0", "dataset": "digits", "dataset_hash": _SHA},
    "metadata": {}, "artifact": None, "created_by": "alice", "created_at": "2026-06-15T10:10:00+00:00",
}


class VersionCreated(VersionState):
    """Sent when a version is created (its artifact may follow as ArtifactStored)."""

    event_type: ClassVar[str] = "VersionCreated"
    topic: ClassVar[str] = topics.VERSIONS
    example: ClassVar[dict[str, Any]] = _EXAMPLE_VERSION


class ArtifactStored(Event):
    """Sent when a version's weights are stored and their sha256 and size verified."""

    event_type: ClassVar[str] = "ArtifactStored"
    topic: ClassVar[str] = topics.VERSIONS
    example: ClassVar[dict[str, Any]] = {
        "model_id": _MODEL, "version_id": _VERSION, "version": "1.1.0",
        "artifact": {"sha256": _SHA, "size": 1024000, "storage": "folder"}, "deduplicated": False,
    }

    model_id: UUID
    version_id: UUID
    version: str
    artifact: ArtifactRef
    deduplicated: bool = Field(description="True when identical bytes were already stored")


class VersionTagged(Event):
    """Sent when a version's tags change; ``tags`` is the full new list."""

    event_type: ClassVar[str] = "VersionTagged"
    topic: ClassVar[str] = topics.VERSIONS
    example: ClassVar[dict[str, Any]] = {
        "model_id": _MODEL, "version_id": _VERSION, "version": "1.1.0", "tags": ["stable", "production"],
        "added": ["production"], "removed": [],
    }

    model_id: UUID
    version_id: UUID
    version: str
    tags: list[str]
    added: list[str]
    removed: list[str]


class AliasSet(Event):
    """Sent when an alias (e.g. ``champion``) is pointed at a version, atomically replacing its old target."""

    event_type: ClassVar[str] = "AliasSet"
    topic: ClassVar[str] = topics.VERSIONS
    example: ClassVar[dict[str, Any]] = {
        "model_id": _MODEL, "alias": "champion", "version_id": _VERSION, "version": "1.1.0",
        "previous_version": "1.0.0",
    }

    model_id: UUID
    alias: str
    version_id: UUID
    version: str
    previous_version: str | None = None


class AliasRemoved(Event):
    """Sent when an alias is removed."""

    event_type: ClassVar[str] = "AliasRemoved"
    topic: ClassVar[str] = topics.VERSIONS
    example: ClassVar[dict[str, Any]] = {"model_id": _MODEL, "alias": "champion", "version": "1.1.0"}

    model_id: UUID
    alias: str
    version: str


class VersionMetricsRecorded(Event):
    """Sent when measured metrics (e.g. from an evaluation) are merged into a version."""

    event_type: ClassVar[str] = "VersionMetricsRecorded"
    topic: ClassVar[str] = topics.VERSIONS
    example: ClassVar[dict[str, Any]] = {
        "model_id": _MODEL, "version_id": _VERSION, "version": "1.1.0",
        "metrics": {"accuracy": 0.97, "f1": 0.955}, "source": "evaluation",
    }

    model_id: UUID
    version_id: UUID
    version: str
    metrics: dict[str, float]
    source: str


class VersionDeleted(Event):
    """Sent when a version is deleted (by a user or by the retention policy)."""

    event_type: ClassVar[str] = "VersionDeleted"
    topic: ClassVar[str] = topics.VERSIONS
    example: ClassVar[dict[str, Any]] = {
        "model_id": _MODEL, "version_id": _VERSION, "version": "1.0.0", "reason": "retention: keep last 5",
    }

    model_id: UUID
    version_id: UUID
    version: str
    reason: str = ""


class RetentionPolicySet(Event):
    """Sent when a model's retention policy is set or cleared. Versions it removes at once follow as
    VersionDeleted events with the reason ``retention: keep last N``."""

    event_type: ClassVar[str] = "RetentionPolicySet"
    topic: ClassVar[str] = topics.VERSIONS
    example: ClassVar[dict[str, Any]] = {"model_id": _MODEL, "keep_last": 5, "previous_keep_last": None}

    model_id: UUID
    keep_last: int | None = Field(description="Versions kept (besides live and aliased ones); null: keep all")
    previous_keep_last: int | None = None
