"""The version service's HTTP contract. The gateway may declare the same models so its OpenAPI shows them."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from libs.events.versions import ArtifactRef, Dependency, Lineage, VersionType
from libs.kit.http import RefusedModelPath
from services.version.domain import MAX_VERSION_LENGTH, Bump, Prerelease

Metric = Annotated[float, Field(allow_inf_nan=False)]
MetricName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class VersionCreate(BaseModel):
    """Create a version: an explicit ``version``, or a ``bump`` from the highest release with an optional
    ``prerelease`` label; with neither, a patch bump (or the finalisation of an unreleased pre-release)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "bump": "minor",
                "change_log": "Improved version with better performance",
                "metrics": {"accuracy": 0.97},
                "training_data": {"data_count": 1000},
                "tags": ["stable"],
                "lineage": {"parent_version": "1.0.0", "dataset": "digits"},
            }
        },
    )

    version: str | None = Field(None, max_length=MAX_VERSION_LENGTH, description="Explicit semver, e.g. 1.3.0-beta.1")
    bump: Bump | None = None
    prerelease: Prerelease | None = None
    version_type: VersionType | None = Field(None, description="Derived from the version when omitted")
    change_log: str = Field("", max_length=10_000)
    metrics: dict[MetricName, Metric] = Field(default_factory=dict)
    training_data: dict[str, Any] = Field(default_factory=dict)
    dependencies: list[Dependency] = Field(default_factory=list, max_length=100)
    tags: list[str] = Field(default_factory=list, max_length=200)
    lineage: Lineage = Field(default_factory=Lineage)
    metadata: dict[str, Any] = Field(default_factory=dict)
    model_path: RefusedModelPath = None

    @model_validator(mode="before")
    @classmethod
    def _seed_description(cls, data: Any) -> Any:
        """Seed 001 sends ``description``; it is the change log."""
        if isinstance(data, dict) and "description" in data:
            data = dict(data)
            description = data.pop("description")
            if data.get("change_log") not in (None, "", description):
                raise ValueError("give either description or change_log, not two different texts")
            data["change_log"] = description if description is not None else ""
        return data


class VersionOut(BaseModel):
    model_id: UUID
    version_id: UUID
    version: str
    version_type: VersionType
    change_log: str
    metrics: dict[str, float]
    training_data: dict[str, Any]
    dependencies: list[Dependency]
    tags: list[str]
    lineage: Lineage
    metadata: dict[str, Any]
    artifact: ArtifactRef | None
    aliases: list[str]
    live_environments: list[str]
    status: str = Field("draft", description="Lifecycle stage in the production environment "
                                              "(draft, staging, production, archived, deprecated)")
    stages: dict[str, str] = Field(default_factory=dict, description="Stage per environment; absent: draft")
    created_by: str
    created_at: datetime


class VersionPage(BaseModel):
    total: int
    page: int
    page_size: int
    versions: list[VersionOut]


class ArtifactOut(BaseModel):
    sha256: str
    size: int
    storage: Literal["folder", "s3"]
    deduplicated: bool


class UploadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expires_in: int = Field(3600, ge=1, description="Seconds the upload URL stays valid")


class UploadOut(BaseModel):
    upload_id: UUID
    upload_url: str | None
    method: Literal["PUT"] = "PUT"
    expires_at: datetime
    detail: str | None = None


class UploadComplete(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: Sha256
    size: int = Field(ge=0)


class DownloadOut(BaseModel):
    model_id: UUID
    version: str
    download_url: str
    expires_at: datetime
    sha256: str
    size: int
    filename: str


class VerifyOut(BaseModel):
    ok: bool
    sha256: str
    size: int


class TagsChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    add: list[str] = Field(default_factory=list, max_length=200)
    remove: list[str] = Field(default_factory=list, max_length=200)


class AliasSetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(max_length=MAX_VERSION_LENGTH, description="A semver, latest, or another alias")


class AliasSetOut(BaseModel):
    alias: str
    version: str
    version_id: UUID
    previous_version: str | None


class AliasOut(BaseModel):
    alias: str
    version: str
    version_id: UUID
    updated_at: datetime
    updated_by: str


class Retention(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keep_last: int | None = Field(..., ge=1, le=100_000, description="Keep the last N versions; null turns it off")


class RetentionOut(BaseModel):
    model_id: UUID
    keep_last: int | None


class MetricsRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metrics: dict[MetricName, Metric] = Field(min_length=1)
    source: str = Field(min_length=1, max_length=64, description="Who measured them, e.g. evaluation")
