"""The shapes the gateway answers with, as TypedDicts: typed for editors and checkers, plain JSON at
run time (a field the server adds later is kept, not dropped). Timestamps stay RFC 3339 strings."""
from __future__ import annotations

from typing import Any, Callable, TypedDict

#: ``progress(done_bytes, total_bytes_or_None)``; called as bytes move.
ProgressCallback = Callable[[int, "int | None"], None]


class Model(TypedDict, total=False):
    model_id: str
    name: str
    type: str
    framework: str
    task: str | None
    description: str
    metadata: dict[str, Any]
    tags: dict[str, str]
    owner: str
    created_at: str
    updated_at: str
    revision: int


class ModelPage(TypedDict):
    total: int
    page: int
    page_size: int
    models: list[Model]


class ArtifactRef(TypedDict, total=False):
    sha256: str
    size: int
    storage: str


class Version(TypedDict, total=False):
    model_id: str
    version_id: str
    version: str
    version_type: str
    change_log: str
    metrics: dict[str, float]
    training_data: dict[str, Any]
    dependencies: list[dict[str, Any]]
    tags: list[str]
    lineage: dict[str, Any]
    metadata: dict[str, Any]
    artifact: ArtifactRef | None
    aliases: list[str]
    live_environments: list[str]
    created_by: str
    created_at: str


class VersionPage(TypedDict):
    total: int
    page: int
    page_size: int
    versions: list[Version]


class Artifact(TypedDict):
    sha256: str
    size: int
    storage: str
    deduplicated: bool


class DownloadLink(TypedDict):
    model_id: str
    version: str
    download_url: str
    expires_at: str
    sha256: str
    size: int
    filename: str


class Downloaded(TypedDict):
    """What ``download`` wrote: where, how much, and the verified digest."""

    path: str
    model_id: str
    version: str
    sha256: str
    size: int


class Alias(TypedDict, total=False):
    alias: str
    version: str
    version_id: str
    updated_at: str
    updated_by: str
    previous_version: str | None


class TrainingJob(TypedDict, total=False):
    job_id: str
    model_id: str
    state: str
    pool: str
    attempt: int
    failures: int
    max_attempts: int
    spec: dict[str, Any]
    worker: str | None
    device: str | None
    checkpoint_epoch: int
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    last_error: str | None
    cancel_reason: str | None
    created_by: str
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None


class TrainingEvent(TypedDict):
    """One Server-Sent Event of a job: ``event`` is queued, started, progress, failed, released,
    completed or cancelled; ``data`` carries the epoch report, the reason or the resulting version."""

    id: str
    event: str
    data: dict[str, Any]


class AuditPage(TypedDict):
    entries: list[dict[str, Any]]
    next_cursor: str | None


class SearchPage(TypedDict):
    total: int
    page: int
    page_size: int
    models: list[dict[str, Any]]


class Grant(TypedDict, total=False):
    """A permission on one model held by a key name or ``team:<team>``; revoked and expired grants stay
    as history (``active`` false)."""

    grant_id: str
    model_id: str
    model_name: str | None
    principal: str
    permission: str  # read, write, publish or admin (each implies the ones before it)
    granted_by: str
    granted_at: str
    expires_at: str | None
    revoked_at: str | None
    revoked_by: str | None
    active: bool


class AccessCheck(TypedDict, total=False):
    model_id: str
    model_name: str
    principal: str
    permission: str
    allowed: bool
    via: str | None  # role, owner, grant or team grant
    grant_id: str | None
    expires_at: str | None
    reason: str


class ApiKey(TypedDict, total=False):
    key_id: str
    name: str
    role: str
    team: str | None
    created_by: str
    created_at: str
    expires_at: str | None
    rotated_at: str | None
    revoked_at: str | None
    status: str  # active, expired or revoked


class KeyCreated(TypedDict, total=False):
    """A new key, or a rotated one (then with ``previous_valid_until``). ``token`` is a ``Secret``: the
    server shows it once; ``token.reveal()`` gives it, printing the answer does not."""

    key_id: str
    name: str
    role: str
    team: str | None
    expires_at: str | None
    token: Any  # libs.sdk.secret.Secret
    previous_valid_until: str | None
