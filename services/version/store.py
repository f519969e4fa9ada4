"""SQL for the version schema. Every statement is parameterised; asyncpg prepares and caches them.

Reads that answer a route are one statement: the model is picked by a sub-select (by id or by name),
and a version's aliases and live environments are array sub-selects of the same query."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg

from libs.events.versions import ArtifactRef, Dependency, Lineage
from services.version.domain import SemVer, Version

SCHEMA = "version"

Conn = asyncpg.Connection | asyncpg.Pool
ModelKey = Literal["id", "name"]
Which = Literal["semver", "latest", "alias", "latest_artifact"]

# ---- models (projection of cairn.models.v1) ---------------------------------------------------------

_MODEL_COLUMNS = "id, name, deleted, keep_last"
MODEL_BY_ID = f"SELECT {_MODEL_COLUMNS} FROM version.models WHERE id = $1"
MODEL_BY_NAME = (
    f"SELECT {_MODEL_COLUMNS} FROM version.models WHERE lower(name) = lower($1) AND NOT deleted"
    " ORDER BY registered_at DESC LIMIT 1"
)
LOCK_MODEL = f"SELECT {_MODEL_COLUMNS} FROM version.models WHERE id = $1 FOR UPDATE"
LOCK_MODEL_IF_PRESENT = "SELECT 1 FROM version.models WHERE id = $1 FOR UPDATE"
PROJECT_MODEL = """
INSERT INTO version.models (id, name, revision, registered_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, revision = EXCLUDED.revision
 WHERE version.models.revision < EXCLUDED.revision
"""
INSERT_MODEL_IF_ABSENT = """
INSERT INTO version.models (id, name, revision, registered_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING
"""
MARK_MODEL_DELETED = """
INSERT INTO version.models (id, name, deleted, registered_at) VALUES ($1, $2, true, $3)
ON CONFLICT (id) DO UPDATE SET deleted = true
"""
SET_RETENTION = "UPDATE version.models SET keep_last = $2 WHERE id = $1"

# ---- versions ---------------------------------------------------------------------------------------

_VERSION_COLUMNS = (
    "v.id, v.model_id, v.version, v.version_type, v.change_log, v.metrics, v.training_data, v.dependencies,"
    " v.tags, v.lineage, v.metadata, v.artifact_sha256, v.artifact_size, v.artifact_storage, v.created_by,"
    " v.created_at"
)
_VIEW_COLUMNS = (
    _VERSION_COLUMNS
    + ", ARRAY(SELECT a.alias FROM version.aliases a WHERE a.version_id = v.id ORDER BY a.alias) AS aliases"
    + ", ARRAY(SELECT l.environment FROM version.live l WHERE l.model_id = v.model_id AND l.version = v.version"
    " ORDER BY l.environment) AS live_environments"
    + ", (SELECT coalesce(jsonb_object_agg(s.environment, s.stage), '{}'::jsonb) FROM version.stages s"
    " WHERE s.model_id = v.model_id AND s.version = v.version) AS stages"
)
_MODEL_SELECT = {
    "id": "(SELECT id FROM version.models WHERE id = $1 AND NOT deleted)",
    "name": "(SELECT id FROM version.models WHERE lower(name) = lower($1) AND NOT deleted"
            " ORDER BY registered_at DESC LIMIT 1)",
}


def _get_sql(model: ModelKey, which: Which, lock: bool) -> str:
    """``$1`` is the model (id or name); ``$2`` the version text or alias name, when ``which`` needs one."""
    base = f"SELECT {_VIEW_COLUMNS} FROM version.versions v"
    where = f" WHERE v.model_id = {_MODEL_SELECT[model]}"
    if which == "semver":
        sql = base + where + " AND v.version = $2"
    elif which == "alias":
        sql = base + " JOIN version.aliases al ON al.version_id = v.id AND al.alias = $2" + where
    elif which == "latest":
        sql = base + where + " ORDER BY v.sort_key DESC LIMIT 1"
    else:
        sql = base + where + " AND v.artifact_sha256 IS NOT NULL ORDER BY v.sort_key DESC LIMIT 1"
    return sql + (" FOR UPDATE OF v" if lock else "")


GET_VERSION: dict[tuple[ModelKey, Which, bool], str] = {
    (m, w, lock): _get_sql(m, w, lock)
    for m in ("id", "name")
    for w in ("semver", "latest", "alias", "latest_artifact")
    for lock in (False, True)
}


def _list_sql(model: ModelKey, tagged: bool, order: str) -> str:
    direction = "ASC" if order == "asc" else "DESC"
    tags = " AND v.tags ?& $4::text[]" if tagged else ""
    return (
        f"SELECT {_VIEW_COLUMNS}, count(*) OVER () AS total FROM version.versions v"
        f" WHERE v.model_id = {_MODEL_SELECT[model]}{tags}"
        f" ORDER BY v.sort_key {direction} LIMIT $2 OFFSET $3"
    )


LIST_VERSIONS: dict[tuple[ModelKey, bool, str], str] = {
    (m, tagged, order): _list_sql(m, tagged, order)
    for m in ("id", "name") for tagged in (False, True) for order in ("asc", "desc")
}
GET_BY_TRAINING_JOB = (
    f"SELECT {_VIEW_COLUMNS} FROM version.versions v WHERE v.model_id = $1 AND v.lineage->>'training_job_id' = $2"
)
COUNT_VERSIONS = "SELECT count(*) FROM version.versions v WHERE v.model_id = $1 AND ($2::text[] IS NULL OR v.tags ?& $2)"

# byte 24 of sort_key is 0x02 for a release (domain.SemVer.sort_key); the subquery walks the
# (model_id, sort_key) index backwards and stops at the first release
VERSIONS_DECIDING_CREATE = """
SELECT version FROM version.versions WHERE model_id = $1 AND (
    sort_key >= coalesce((SELECT sort_key FROM version.versions WHERE model_id = $1 AND get_byte(sort_key, 24) = 2
                          ORDER BY sort_key DESC LIMIT 1), ''::bytea)
    OR version = $2 OR sort_key = $3)
"""
INSERT_VERSION = """
INSERT INTO version.versions (id, model_id, version, sort_key, version_type, change_log, metrics, training_data,
                              dependencies, tags, lineage, metadata, created_by, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
"""
MISSING_DEPENDENCIES = """
SELECT d.i FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS d(model_id, version, i)
 WHERE NOT EXISTS (SELECT 1 FROM version.versions v WHERE v.model_id = d.model_id AND v.version = d.version)
 ORDER BY d.i
"""
SET_TAGS = "UPDATE version.versions SET tags = $2 WHERE id = $1"
MERGE_METRICS = "UPDATE version.versions SET metrics = metrics || $2::jsonb WHERE id = $1 RETURNING metrics"
SET_ARTIFACT = """
UPDATE version.versions SET artifact_sha256 = $2, artifact_size = $3, artifact_storage = $4
 WHERE id = $1 AND artifact_sha256 IS NULL
"""
DELETE_VERSION = "DELETE FROM version.versions WHERE id = $1"
RETENTION_CANDIDATES = """
SELECT v.id, v.version, v.artifact_sha256, v.artifact_storage,
       EXISTS (SELECT 1 FROM version.live l WHERE l.model_id = v.model_id AND l.version = v.version) AS live,
       EXISTS (SELECT 1 FROM version.aliases a WHERE a.version_id = v.id) AS aliased
  FROM version.versions v WHERE v.model_id = $1
 ORDER BY v.created_at DESC, v.sort_key DESC
"""

# ---- blobs ------------------------------------------------------------------------------------------

# Serialises "is this blob still referenced? then delete it" against "attach this (deduplicated) blob".
LOCK_BLOB = "SELECT pg_advisory_xact_lock(hashtextextended('version.blob:' || $1 || ':' || $2, 0))"
BLOB_REFERENCES = "SELECT count(*) FROM version.versions WHERE artifact_sha256 = $1 AND artifact_storage = $2"

# ---- aliases ----------------------------------------------------------------------------------------

GET_ALIAS = """
SELECT a.alias, a.version_id, v.version FROM version.aliases a JOIN version.versions v ON v.id = a.version_id
 WHERE a.model_id = $1 AND a.alias = $2
"""
UPSERT_ALIAS = """
INSERT INTO version.aliases (model_id, alias, version_id, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (model_id, alias) DO UPDATE
   SET version_id = EXCLUDED.version_id, updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by
"""
DELETE_ALIAS = "DELETE FROM version.aliases WHERE model_id = $1 AND alias = $2"
LIST_ALIASES = """
SELECT a.alias, a.version_id, v.version, a.updated_at, a.updated_by
  FROM version.aliases a JOIN version.versions v ON v.id = a.version_id
 WHERE a.model_id = $1 ORDER BY a.alias
"""

# ---- live (projection of cairn.lifecycle.v1) --------------------------------------------------------

ADD_LIVE = """
INSERT INTO version.live (model_id, version, environment, since) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING
"""
REMOVE_LIVE = "DELETE FROM version.live WHERE model_id = $1 AND version = $2 AND environment = $3"
SET_STAGE = """
INSERT INTO version.stages (model_id, version, environment, stage, since) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (model_id, version, environment) DO UPDATE SET stage = EXCLUDED.stage, since = EXCLUDED.since
"""

# ---- direct uploads ---------------------------------------------------------------------------------

INSERT_UPLOAD = "INSERT INTO version.uploads (upload_id, version_id, expires_at) VALUES ($1, $2, $3)"
UPLOAD_OF_VERSION = "SELECT upload_id FROM version.uploads WHERE upload_id = $1 AND version_id = $2"
DELETE_UPLOAD = "DELETE FROM version.uploads WHERE upload_id = $1"


# ---- rows -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRow:
    id: UUID
    name: str
    deleted: bool
    keep_last: int | None


@dataclass(frozen=True)
class VersionView:
    """A version as the API shows it: the aggregate plus where it is live and which aliases name it."""

    version: Version
    aliases: list[str]
    live_environments: list[str]
    stages: dict[str, str] = field(default_factory=dict)  # environment -> stage; absent means draft


@dataclass(frozen=True)
class Candidate:
    id: UUID
    version: str
    artifact_sha256: str | None
    artifact_storage: str | None
    live: bool
    aliased: bool


def _model(row: asyncpg.Record | None) -> ModelRow | None:
    return ModelRow(row["id"], row["name"], row["deleted"], row["keep_last"]) if row else None


def row_to_version(row: asyncpg.Record) -> Version:
    artifact = None
    if row["artifact_sha256"] is not None:
        artifact = ArtifactRef(sha256=row["artifact_sha256"], size=row["artifact_size"], storage=row["artifact_storage"])
    return Version(
        id=row["id"],
        model_id=row["model_id"],
        version=row["version"],
        version_type=row["version_type"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        change_log=row["change_log"],
        metrics=row["metrics"],
        training_data=row["training_data"],
        dependencies=[Dependency.model_validate(d) for d in row["dependencies"]],
        tags=row["tags"],
        lineage=Lineage.model_validate(row["lineage"]),
        metadata=row["metadata"],
        artifact=artifact,
    )


def row_to_view(row: asyncpg.Record) -> VersionView:
    return VersionView(row_to_version(row), list(row["aliases"]), list(row["live_environments"]), dict(row["stages"]))


def model_key(ref: UUID | str) -> ModelKey:
    return "id" if isinstance(ref, UUID) else "name"


# ---- models -----------------------------------------------------------------------------------------


async def find_model(conn: Conn, ref: UUID | str) -> ModelRow | None:
    """By id (deleted or not: the caller says 404), or the live model of that name."""
    return _model(await conn.fetchrow(MODEL_BY_ID if isinstance(ref, UUID) else MODEL_BY_NAME, ref))


async def lock_model(conn: asyncpg.Connection, model_id: UUID) -> ModelRow | None:
    return _model(await conn.fetchrow(LOCK_MODEL, model_id))


async def lock_model_if_present(conn: asyncpg.Connection, model_id: UUID) -> None:
    await conn.fetchval(LOCK_MODEL_IF_PRESENT, model_id)


async def project_model(conn: Conn, model_id: UUID, name: str, revision: int, registered_at: datetime) -> None:
    await conn.execute(PROJECT_MODEL, model_id, name, revision, registered_at)


async def insert_model_if_absent(conn: Conn, model_id: UUID, name: str, revision: int, registered_at: datetime) -> None:
    await conn.execute(INSERT_MODEL_IF_ABSENT, model_id, name, revision, registered_at)


async def mark_model_deleted(conn: Conn, model_id: UUID, name: str, at: datetime) -> None:
    await conn.execute(MARK_MODEL_DELETED, model_id, name, at)


async def set_retention(conn: Conn, model_id: UUID, keep_last: int | None) -> None:
    await conn.execute(SET_RETENTION, model_id, keep_last)


# ---- versions ---------------------------------------------------------------------------------------


async def get_view(
    conn: Conn, model: UUID | str, which: Which, ref: str | None = None, *, lock: bool = False
) -> VersionView | None:
    sql = GET_VERSION[(model_key(model), which, lock)]
    args = (model, ref) if which in ("semver", "alias") else (model,)
    row = await conn.fetchrow(sql, *args)
    return row_to_view(row) if row else None


async def get_by_training_job(conn: Conn, model_id: UUID, training_job_id: UUID) -> VersionView | None:
    row = await conn.fetchrow(GET_BY_TRAINING_JOB, model_id, str(training_job_id))
    return row_to_view(row) if row else None


async def list_views(
    conn: Conn, model: UUID | str, *, tags: list[str], order: str, limit: int, offset: int
) -> tuple[int, list[VersionView]] | None:
    """The page and the total in one round trip; ``None`` when the page is empty (the caller decides
    whether the model exists, and counts separately when paging past the end)."""
    sql = LIST_VERSIONS[(model_key(model), bool(tags), order)]
    args: tuple[Any, ...] = (model, limit, offset, tags) if tags else (model, limit, offset)
    rows = await conn.fetch(sql, *args)
    if not rows:
        return None
    return rows[0]["total"], [row_to_view(r) for r in rows]


async def count_versions(conn: Conn, model_id: UUID, tags: list[str]) -> int:
    return await conn.fetchval(COUNT_VERSIONS, model_id, tags or None)


async def versions_deciding_create(
    conn: asyncpg.Connection, model_id: UUID, *, explicit: SemVer | None, parent: SemVer | None
) -> list[SemVer]:
    """The versions that decide what a create makes (``domain.next_version``): the highest release and
    everything above it, plus those with the precedence of ``explicit`` and the one named ``parent``.
    A bump or pre-release only looks at that range, so a create costs the same with 10 or 10,000 versions."""
    rows = await conn.fetch(VERSIONS_DECIDING_CREATE, model_id, str(parent) if parent else None,
                            explicit.sort_key() if explicit else None)
    return [SemVer.parse(r["version"]) for r in rows]


async def insert_version(conn: asyncpg.Connection, v: Version) -> None:
    await conn.execute(
        INSERT_VERSION, v.id, v.model_id, v.version, v.semver.sort_key(), v.version_type, v.change_log,
        v.metrics, v.training_data, [d.model_dump(mode="json") for d in v.dependencies], v.tags,
        v.lineage.model_dump(mode="json"), v.metadata, v.created_by, v.created_at,
    )


async def missing_dependencies(conn: Conn, dependencies: list[Dependency]) -> list[int]:
    """0-based indexes of the dependencies that name no stored version."""
    if not dependencies:
        return []
    rows = await conn.fetch(
        MISSING_DEPENDENCIES, [d.model_id for d in dependencies], [d.version for d in dependencies]
    )
    return [r["i"] - 1 for r in rows]


async def set_tags(conn: asyncpg.Connection, version_id: UUID, tags: list[str]) -> None:
    await conn.execute(SET_TAGS, version_id, tags)


async def merge_metrics(conn: asyncpg.Connection, version_id: UUID, metrics: dict[str, float]) -> dict[str, float]:
    return await conn.fetchval(MERGE_METRICS, version_id, metrics)


async def set_artifact(conn: asyncpg.Connection, version_id: UUID, artifact: ArtifactRef) -> bool:
    """False when the version already has one (artifacts are immutable)."""
    status = await conn.execute(SET_ARTIFACT, version_id, artifact.sha256, artifact.size, artifact.storage)
    return status.endswith(" 1")


async def delete_version(conn: asyncpg.Connection, version_id: UUID) -> None:
    await conn.execute(DELETE_VERSION, version_id)


async def retention_candidates(conn: asyncpg.Connection, model_id: UUID) -> list[Candidate]:
    return [
        Candidate(r["id"], r["version"], r["artifact_sha256"], r["artifact_storage"], r["live"], r["aliased"])
        for r in await conn.fetch(RETENTION_CANDIDATES, model_id)
    ]


# ---- blobs ------------------------------------------------------------------------------------------


async def lock_blob(conn: asyncpg.Connection, sha256: str, storage: str) -> None:
    await conn.execute(LOCK_BLOB, storage, sha256)


async def blob_references(conn: asyncpg.Connection, sha256: str, storage: str) -> int:
    return await conn.fetchval(BLOB_REFERENCES, sha256, storage)


# ---- aliases ----------------------------------------------------------------------------------------


async def get_alias(conn: asyncpg.Connection, model_id: UUID, alias: str) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_ALIAS, model_id, alias)


async def upsert_alias(
    conn: asyncpg.Connection, model_id: UUID, alias: str, version_id: UUID, at: datetime, by: str
) -> None:
    await conn.execute(UPSERT_ALIAS, model_id, alias, version_id, at, by)


async def delete_alias(conn: asyncpg.Connection, model_id: UUID, alias: str) -> None:
    await conn.execute(DELETE_ALIAS, model_id, alias)


async def list_aliases(conn: Conn, model_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_ALIASES, model_id)


# ---- live -------------------------------------------------------------------------------------------


async def add_live(conn: asyncpg.Connection, model_id: UUID, version: str, environment: str, since: datetime) -> None:
    await conn.execute(ADD_LIVE, model_id, version, environment, since)


async def remove_live(conn: asyncpg.Connection, model_id: UUID, version: str, environment: str) -> None:
    await conn.execute(REMOVE_LIVE, model_id, version, environment)


async def set_stage(conn: asyncpg.Connection, model_id: UUID, version: str, environment: str, stage: str,
                    since: datetime) -> None:
    await conn.execute(SET_STAGE, model_id, version, environment, stage, since)


# ---- uploads ----------------------------------------------------------------------------------------


async def insert_upload(conn: Conn, upload_id: UUID, version_id: UUID, expires_at: datetime) -> None:
    await conn.execute(INSERT_UPLOAD, upload_id, version_id, expires_at)


async def upload_belongs_to(conn: Conn, upload_id: UUID, version_id: UUID) -> bool:
    return await conn.fetchval(UPLOAD_OF_VERSION, upload_id, version_id) is not None


async def delete_upload(conn: Conn, upload_id: UUID) -> None:
    await conn.execute(DELETE_UPLOAD, upload_id)
