"""One function per command or event: open a unit of work, decide with the domain, store, emit, commit.

Blob bytes move outside transactions (they may take minutes); the row that makes a blob part of a
version is written afterwards, under an advisory lock per blob that also guards deleting a blob once
no version references it any more."""
from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Iterator
from urllib.parse import quote, urlencode
from uuid import UUID, uuid4

import asyncpg
import httpx

from libs.events.envelope import Envelope
from libs.events.lifecycle import VersionRolledBack
from libs.events.models import ModelDeleted
from libs.events.versions import (
    AliasRemoved,
    AliasSet,
    ArtifactRef,
    ArtifactStored,
    RetentionPolicySet,
    VersionDeleted,
    VersionMetricsRecorded,
    VersionTagged,
)
from libs.kit.errors import (
    CairnError,
    Gone,
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    UpstreamUnavailable,
    ValidationFailed,
)
from libs.kit.http import Caller
from libs.kit.uow import UnitOfWork
from libs.storage.cas import BlobCorrupted, BlobMismatch, BlobRef, BlobTooLarge, ContentAddressedStore
from libs.storage.factory import open_object_store, redact_url
from libs.storage.port import InvalidKey, ObjectNotFound, StorageError
from libs.storage.signing import LinkExpired, LinkInvalid, sign_link, verify_link
from services.version import domain, store
from services.version.settings import VersionSettings
from services.version.store import ModelRow, VersionView

log = logging.getLogger(__name__)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class _LookUpFirst(Exception):
    """The model row is not in the projection (yet): leave the transaction and resolve it first."""


class LinkGone(Gone):
    """A download link that was genuine but has expired."""

    code = "link_expired"


class ArtifactCorrupted(CairnError):
    """The stored bytes no longer hash to the recorded sha256."""

    status = 500
    code = "artifact_corrupted"
    title = "Artifact corrupted"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def parse_ref(ref: str) -> UUID | str:
    """A model is addressed by id or by name."""
    try:
        return UUID(ref)
    except ValueError:
        return ref


def _parsed(text: str | None):
    """A semantic version, or None when absent or invalid (the domain then names the field at fault)."""
    if text is None:
        return None
    try:
        return domain.SemVer.parse(text)
    except domain.InvalidVersion:
        return None


def version_lookup(ref: str) -> tuple[store.Which, str | None]:
    """``latest``, a semver, or else an alias name."""
    if ref == "latest":
        return "latest", None
    if domain.is_semver(ref):
        return "semver", ref
    return "alias", ref


@contextmanager
def storage_errors() -> Iterator[None]:
    """Storage errors are their own family; here they become the kit's HTTP errors."""
    try:
        yield
    except BlobTooLarge as exc:
        raise PayloadTooLarge(f"the artifact exceeds the limit of {exc.limit} bytes") from None
    except BlobMismatch as exc:
        if exc.actual_sha256 is None or exc.actual_size != exc.expected_size:
            err = FieldError("size", f"{exc.actual_size} bytes were uploaded, not {exc.expected_size}")
        else:
            err = FieldError("sha256", f"the uploaded bytes hash to {exc.actual_sha256}")
        raise ValidationFailed(f"{err.field}: {err.message}", errors=[err]) from None
    except ObjectNotFound:
        raise NotFound("no stored bytes found") from None
    except InvalidKey as exc:
        raise NotFound(f"no stored object: {exc.reason}") from None
    except BlobCorrupted:
        raise
    except StorageError as exc:
        log.error("object store failed", extra={"error": str(exc)})
        raise UpstreamUnavailable("the object store failed; try again shortly") from None


@dataclass(frozen=True)
class StoredArtifact:
    artifact: ArtifactRef
    deduplicated: bool


@dataclass(frozen=True)
class ArtifactStream:
    sha256: str
    size: int
    filename: str
    chunks: AsyncIterator[bytes]

    @property
    def repr_digest(self) -> str:
        return "sha-256=:" + base64.b64encode(bytes.fromhex(self.sha256)).decode() + ":"


class VersionHandlers:
    def __init__(self, runtime, settings: VersionSettings) -> None:
        self.rt = runtime
        self.settings = settings
        self._secret = settings.link_secret.get_secret_value().encode()
        self._token = settings.internal_token.get_secret_value()
        self.cas: ContentAddressedStore = None  # type: ignore[assignment]  # opened in open()
        self._registry: httpx.AsyncClient | None = None

    # ---- process resources --------------------------------------------------------------------------

    async def open(self) -> None:
        self.cas = ContentAddressedStore(open_object_store(self.settings.object_store_url))
        self._registry = httpx.AsyncClient(base_url=self.settings.registry_url, timeout=httpx.Timeout(10.0, connect=3.0))
        log.info("object store opened", extra={"store": redact_url(self.settings.object_store_url)})

    async def close(self) -> None:
        if self._registry is not None:
            await self._registry.aclose()
        if self.cas is not None:
            await self.cas.store.close()

    async def ready(self) -> dict[str, str]:
        """Readiness of the object store (a HEAD of a key that need not exist)."""
        if self.cas is None:
            return {"object_store": "error: not open"}
        try:
            await asyncio.wait_for(self.cas.store.stat("readyz"), 2)
        except Exception as exc:  # readiness reports, it does not raise
            return {"object_store": f"error: {type(exc).__name__}"}
        return {"object_store": "ok"}

    @property
    def storage(self) -> str:
        return self.cas.store.name

    def _uow(self, caller: Caller) -> UnitOfWork:
        return UnitOfWork(self.rt.pool, store.SCHEMA, source="version", actor=caller.actor, traceparent=caller.traceparent)

    # ---- models -------------------------------------------------------------------------------------

    async def model(self, ref: str) -> ModelRow:
        """The model, from the local projection or, when it has not arrived yet, from the registry."""
        row = await store.find_model(self.rt.pool, parse_ref(ref))
        if row is None:
            row = await self._model_from_registry(ref)
        if row is None or row.deleted:
            raise NotFound(f"model {ref!r} not found")
        return row

    async def _model_from_registry(self, ref: str) -> ModelRow | None:
        assert self._registry is not None
        try:
            response = await self._registry.get(
                f"/internal/models/{quote(ref, safe='')}",
                headers={"x-cairn-internal-token": self._token, "x-cairn-actor": "version"},
            )
        except httpx.HTTPError as exc:
            log.warning("registry unreachable", extra={"error": type(exc).__name__})
            raise UpstreamUnavailable("the registry is not reachable; try again shortly") from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            log.warning("registry refused a model lookup", extra={"status": response.status_code})
            raise UpstreamUnavailable(f"the registry answered {response.status_code}")
        body = response.json()
        model_id = UUID(body["model_id"])
        await store.insert_model_if_absent(
            self.rt.pool, model_id, body["name"], body["revision"], datetime.fromisoformat(body["created_at"])
        )
        return await store.find_model(self.rt.pool, model_id)

    async def _locked_model(self, uow: UnitOfWork, model: ModelRow) -> ModelRow:
        locked = await store.lock_model(uow.conn, model.id)
        if locked is None or locked.deleted:
            raise NotFound(f"model {model.name!r} not found")
        return locked

    # ---- reads --------------------------------------------------------------------------------------

    async def get(self, model_ref: str, version_ref: str) -> VersionView:
        """One query when the version exists; the rest only decides which 404 to give."""
        which, arg = version_lookup(version_ref)
        view = await store.get_view(self.rt.pool, parse_ref(model_ref), which, arg)
        if view is None:
            await self.model(model_ref)
            raise NotFound(f"version {version_ref!r} of model {model_ref!r} not found")
        return view

    async def list_versions(
        self, model_ref: str, *, tags: list[str], order: str, page: int, page_size: int
    ) -> tuple[int, list[VersionView]]:
        offset = (page - 1) * page_size
        found = await store.list_views(self.rt.pool, parse_ref(model_ref), tags=tags, order=order,
                                       limit=page_size, offset=offset)
        if found is not None:
            return found
        model = await self.model(model_ref)
        return (await store.count_versions(self.rt.pool, model.id, tags) if offset else 0), []

    async def _view_of(self, conn, model: ModelRow, version_ref: str, *, lock: bool = False) -> VersionView:
        which, arg = version_lookup(version_ref)
        view = await store.get_view(conn, model.id, which, arg, lock=lock)
        if view is None:
            raise NotFound(f"version {version_ref!r} of model {model.name!r} not found")
        return view

    # ---- create, delete, retention ------------------------------------------------------------------

    async def create(self, model_ref: str, cmd: domain.Creation, caller: Caller) -> tuple[VersionView, bool]:
        """The new version and True; or, when ``lineage.training_job_id`` already made a version of this
        model (a retried training job), that version and False, with no second event."""
        ref = parse_ref(model_ref)
        # by id, the model row is found and locked in one statement inside the transaction; by name,
        # or when the row is not projected yet (the registry is asked then), it is looked up first
        try:
            return await self._create(ref, None if isinstance(ref, UUID) else await self.model(model_ref), cmd, caller)
        except _LookUpFirst:
            return await self._create(ref, await self.model(model_ref), cmd, caller)

    async def _create(
        self, ref: UUID | str, model: ModelRow | None, cmd: domain.Creation, caller: Caller
    ) -> tuple[VersionView, bool]:
        released: list[tuple[str, str]] = []
        try:
            async with self._uow(caller) as uow:
                if model is None:
                    locked = await store.lock_model(uow.conn, ref)  # type: ignore[arg-type]
                    if locked is None or locked.deleted:
                        raise _LookUpFirst
                    model = locked
                else:
                    locked = await self._locked_model(uow, model)  # serialises creates of one model
                job = cmd.lineage.training_job_id
                if job is not None:
                    made = await store.get_by_training_job(uow.conn, model.id, job)
                    if made is not None:
                        return made, False
                missing = await store.missing_dependencies(uow.conn, cmd.dependencies)
                if missing:
                    errors = [
                        FieldError(f"dependencies.{i}", f"no version {cmd.dependencies[i].version} of model "
                                                        f"{cmd.dependencies[i].model_id}")
                        for i in missing
                    ]
                    raise ValidationFailed(f"{errors[0].field}: {errors[0].message}", errors=errors)
                existing = await store.versions_deciding_create(
                    uow.conn, model.id, explicit=_parsed(cmd.version), parent=_parsed(cmd.lineage.parent_version))
                version, event = domain.create(
                    cmd, existing, model_id=model.id, version_id=uuid4(), actor=caller.actor, now=_now()
                )
                await store.insert_version(uow.conn, version)
                await uow.emit(event)
                if locked.keep_last:
                    released = await self._apply_retention(uow, model.id, locked.keep_last)
        except asyncpg.UniqueViolationError:
            raise Conflict("a version of the same precedence already exists", extra={"field": "version"}) from None
        await self._release_blobs(released)
        return VersionView(version, [], []), True

    async def _apply_retention(self, uow: UnitOfWork, model_id: UUID, keep_last: int) -> list[tuple[str, str]]:
        candidates = await store.retention_candidates(uow.conn, model_id)
        victims = set(domain.retention_victims(
            [c.version for c in candidates],
            keep_last=keep_last,
            live={c.version for c in candidates if c.live},
            aliased={c.version for c in candidates if c.aliased},
        ))
        blobs = []
        for c in candidates:
            if c.version not in victims:
                continue
            await store.delete_version(uow.conn, c.id)
            await uow.emit(VersionDeleted(model_id=model_id, version_id=c.id, version=c.version,
                                          reason=f"retention: keep last {keep_last}"))
            if c.artifact_sha256 and c.artifact_storage:
                blobs.append((c.artifact_sha256, c.artifact_storage))
        return blobs

    async def delete(self, model_ref: str, version_ref: str, caller: Caller, *, reason: str = "") -> None:
        model = await self.model(model_ref)
        async with self._uow(caller) as uow:
            await self._locked_model(uow, model)  # aliases and lifecycle events wait for us
            view = await self._view_of(uow.conn, model, version_ref, lock=True)
            if view.live_environments or view.aliases:
                why = []
                if view.live_environments:
                    why.append("it is live in " + ", ".join(view.live_environments))
                if view.aliases:
                    why.append("it is named by alias " + ", ".join(view.aliases))
                raise Conflict(
                    f"version {view.version.version} cannot be deleted: {'; '.join(why)}",
                    extra={"environments": view.live_environments, "aliases": view.aliases},
                )
            await store.delete_version(uow.conn, view.version.id)
            await uow.emit(VersionDeleted(model_id=model.id, version_id=view.version.id,
                                          version=view.version.version, reason=reason))
        artifact = view.version.artifact
        if artifact is not None:
            await self._release_blobs([(artifact.sha256, artifact.storage)])

    async def _release_blobs(self, blobs: list[tuple[str, str]]) -> None:
        """Delete each blob no remaining version references. Failures leave garbage, never an error."""
        for sha256, storage in dict.fromkeys(blobs):
            if storage != self.storage:
                continue  # kept by another object store than the one this process serves
            try:
                async with self.rt.pool.acquire() as conn, conn.transaction():
                    await store.lock_blob(conn, sha256, storage)
                    if await store.blob_references(conn, sha256, storage) == 0:
                        await self.cas.delete(sha256)
                        log.info("blob deleted", extra={"sha256": sha256})
            except Exception:
                log.exception("could not delete an unreferenced blob", extra={"sha256": sha256})

    async def get_retention(self, model_ref: str) -> ModelRow:
        return await self.model(model_ref)

    async def set_retention(self, model_ref: str, keep_last: int | None, caller: Caller) -> None:
        """Set (or clear) the policy and apply it at once, so the model holds what the policy says."""
        model = await self.model(model_ref)
        released: list[tuple[str, str]] = []
        async with self._uow(caller) as uow:
            locked = await self._locked_model(uow, model)
            if locked.keep_last == keep_last:
                return  # nothing changes: no event
            await store.set_retention(uow.conn, model.id, keep_last)
            await uow.emit(RetentionPolicySet(model_id=model.id, keep_last=keep_last,
                                              previous_keep_last=locked.keep_last))
            if keep_last:
                released = await self._apply_retention(uow, model.id, keep_last)
        await self._release_blobs(released)

    # ---- tags, metrics ------------------------------------------------------------------------------

    async def tag(self, model_ref: str, version_ref: str, add: list[str], remove: list[str], caller: Caller) -> VersionView:
        model = await self.model(model_ref)
        async with self._uow(caller) as uow:
            view = await self._view_of(uow.conn, model, version_ref, lock=True)
            change = domain.change_tags(view.version.tags, add, remove)
            if change.changed:
                await store.set_tags(uow.conn, view.version.id, change.tags)
                await uow.emit(VersionTagged(
                    model_id=model.id, version_id=view.version.id, version=view.version.version,
                    tags=change.tags, added=change.added, removed=change.removed,
                ))
        return replace(view, version=replace(view.version, tags=change.tags))

    async def record_metrics(
        self, model_ref: str, version_ref: str, metrics: dict[str, float], source: str, caller: Caller
    ) -> VersionView:
        model = await self.model(model_ref)
        async with self._uow(caller) as uow:
            view = await self._view_of(uow.conn, model, version_ref, lock=True)
            merged = await store.merge_metrics(uow.conn, view.version.id, metrics)
            await uow.emit(VersionMetricsRecorded(
                model_id=model.id, version_id=view.version.id, version=view.version.version,
                metrics=metrics, source=source,
            ))
        return replace(view, version=replace(view.version, metrics=merged))

    # ---- aliases ------------------------------------------------------------------------------------

    async def set_alias(self, model_ref: str, alias: str, version_ref: str, caller: Caller) -> tuple[VersionView, str | None]:
        domain.validate_alias(alias)
        model = await self.model(model_ref)
        async with self._uow(caller) as uow:
            await self._locked_model(uow, model)  # one alias change per model at a time
            which, arg = version_lookup(version_ref)
            target = await store.get_view(uow.conn, model.id, which, arg)
            if target is None:
                raise NotFound(f"version {version_ref!r} of model {model.name!r} not found",
                               errors=[FieldError("version", "no such version")])
            current = await store.get_alias(uow.conn, model.id, alias)
            previous = current["version"] if current else None
            if current is None or current["version_id"] != target.version.id:
                await store.upsert_alias(uow.conn, model.id, alias, target.version.id, _now(), caller.actor)
                await uow.emit(AliasSet(model_id=model.id, alias=alias, version_id=target.version.id,
                                        version=target.version.version, previous_version=previous))
        return target, previous

    async def remove_alias(self, model_ref: str, alias: str, caller: Caller) -> None:
        model = await self.model(model_ref)
        async with self._uow(caller) as uow:
            await self._locked_model(uow, model)
            current = await store.get_alias(uow.conn, model.id, alias)
            if current is None:
                raise NotFound(f"model {model.name!r} has no alias {alias!r}")
            await store.delete_alias(uow.conn, model.id, alias)
            await uow.emit(AliasRemoved(model_id=model.id, alias=alias, version=current["version"]))

    async def aliases(self, model_ref: str) -> list:
        model = await self.model(model_ref)
        return await store.list_aliases(self.rt.pool, model.id)

    # ---- artifacts ----------------------------------------------------------------------------------

    async def _artifact_target(self, model_ref: str, version_ref: str) -> tuple[ModelRow, VersionView]:
        model = await self.model(model_ref)
        view = await self._view_of(self.rt.pool, model, version_ref)
        if view.version.artifact is not None:
            raise Conflict(f"version {view.version.version} already has an artifact; artifacts are immutable")
        return model, view

    async def store_artifact(
        self,
        model_ref: str,
        version_ref: str,
        chunks: AsyncIterable[bytes],
        caller: Caller,
        *,
        content_length: int | None,
        expected_sha256: str | None,
    ) -> StoredArtifact:
        """Stream the request body into the content-addressed store, then attach it to the version."""
        if expected_sha256 is not None:
            expected_sha256 = expected_sha256.strip().lower()
            if not _SHA256.match(expected_sha256):
                raise ValidationFailed("x-content-sha256: not a sha256 hex digest",
                                       errors=[FieldError("x-content-sha256", "must be 64 hex characters")])
        limit = self.settings.max_artifact_bytes
        if content_length is not None and content_length > limit:
            raise PayloadTooLarge(f"the artifact exceeds the limit of {limit} bytes")
        model, view = await self._artifact_target(model_ref, version_ref)
        with storage_errors():
            blob = await self.cas.put_stream(chunks, max_size=limit)
        if expected_sha256 is not None and blob.sha256 != expected_sha256:
            if not blob.deduplicated:
                await self._release_blobs([(blob.sha256, self.storage)])
            message = f"the body hashes to {blob.sha256}, not {expected_sha256}"
            raise ValidationFailed(f"x-content-sha256: {message}", errors=[FieldError("x-content-sha256", message)])
        return await self._attach(model, view, blob, caller)

    async def _attach(self, model: ModelRow, view: VersionView, blob: BlobRef, caller: Caller) -> StoredArtifact:
        artifact = ArtifactRef(sha256=blob.sha256, size=blob.size, storage=self.storage)  # type: ignore[arg-type]
        try:
            async with self._uow(caller) as uow:
                await store.lock_blob(uow.conn, blob.sha256, self.storage)
                with storage_errors():
                    present = await self.cas.exists(blob.sha256)
                if not present:  # an unreferenced copy was released between storing and now
                    raise Conflict("the stored bytes were removed concurrently; upload them again")
                current = await store.get_view(uow.conn, model.id, "semver", view.version.version, lock=True)
                if current is None or current.version.id != view.version.id:
                    raise NotFound(f"version {view.version.version} of model {model.name!r} was deleted")
                if not await store.set_artifact(uow.conn, view.version.id, artifact):
                    raise Conflict(f"version {view.version.version} already has an artifact; artifacts are immutable")
                await uow.emit(ArtifactStored(model_id=model.id, version_id=view.version.id,
                                              version=view.version.version, artifact=artifact,
                                              deduplicated=blob.deduplicated))
        except CairnError:
            if not blob.deduplicated:
                await self._release_blobs([(blob.sha256, self.storage)])
            raise
        return StoredArtifact(artifact, blob.deduplicated)

    def _check_ttl(self, expires_in: int) -> timedelta:
        if not 1 <= expires_in <= self.settings.max_link_ttl_s:
            message = f"must be between 1 and {self.settings.max_link_ttl_s} seconds"
            raise ValidationFailed(f"expires_in: {message}", errors=[FieldError("expires_in", message)])
        return timedelta(seconds=expires_in)

    async def begin_upload(self, model_ref: str, version_ref: str, expires_in: int):
        ttl = self._check_ttl(expires_in)
        _, view = await self._artifact_target(model_ref, version_ref)
        with storage_errors():
            pending = await self.cas.begin_upload(ttl)
        await store.insert_upload(self.rt.pool, UUID(pending.upload_id), view.version.id, pending.expires_at)
        return pending

    async def complete_upload(
        self, model_ref: str, version_ref: str, upload_id: str, sha256: str, size: int, caller: Caller
    ) -> StoredArtifact:
        model, view = await self._artifact_target(model_ref, version_ref)
        try:
            uid = UUID(upload_id)
        except ValueError:
            raise NotFound(f"no upload {upload_id!r}") from None
        if not await store.upload_belongs_to(self.rt.pool, uid, view.version.id):
            raise NotFound(f"no upload {upload_id!r} for version {view.version.version}")
        try:
            with storage_errors():
                blob = await self.cas.complete_upload(
                    str(uid), expected_sha256=sha256, expected_size=size, max_size=self.settings.max_artifact_bytes
                )
        except NotFound:
            raise NotFound(f"nothing was uploaded for upload {upload_id}") from None
        except (ValidationFailed, PayloadTooLarge):
            await store.delete_upload(self.rt.pool, uid)  # the CAS dropped the bytes
            raise
        await store.delete_upload(self.rt.pool, uid)
        return await self._attach(model, view, blob, caller)

    async def download_link(self, model_ref: str, version_ref: str | None, expires_in: int) -> dict:
        ttl = self._check_ttl(expires_in)
        model = await self.model(model_ref)
        if version_ref is None:
            view = await store.get_view(self.rt.pool, model.id, "latest_artifact")
            if view is None:
                raise NotFound(f"no version of model {model.name!r} has an artifact")
        else:
            view = await self._view_of(self.rt.pool, model, version_ref)
        artifact = view.version.artifact
        if artifact is None:
            raise NotFound(f"version {view.version.version} of model {model.name!r} has no artifact")
        self._check_served_here(artifact)
        filename = domain.download_filename(model.name, view.version.version)
        now = int(time.time())
        with storage_errors():
            url = await self.cas.store.presigned_get_url(self.cas.key_for(artifact.sha256), ttl, filename=filename)
        if url is None:
            path = domain.artifact_link_path(artifact.sha256)
            expires = now + expires_in
            sig = sign_link(path, expires, self._secret, extra={"name": filename})
            url = f"{self.settings.public_url}{path}?" + urlencode({"expires": expires, "name": filename, "sig": sig})
        return {
            "model_id": model.id,
            "version": view.version.version,
            "download_url": url,
            "expires_at": datetime.fromtimestamp(now + expires_in, timezone.utc),
            "sha256": artifact.sha256,
            "size": artifact.size,
            "filename": filename,
        }

    def _check_served_here(self, artifact: ArtifactRef) -> None:
        if artifact.storage != self.storage:
            raise Conflict(f"the artifact is kept in the {artifact.storage} store, which this instance does not serve")

    async def open_artifact(self, sha256: str, expires: str | None, name: str | None, sig: str | None) -> ArtifactStream:
        """Check the signed link, then stream the blob, verifying its hash on the way. The first chunk is
        read before answering, so a missing blob is a 404 rather than a broken 200."""
        path = domain.artifact_link_path(sha256)
        try:
            expires_at = int(expires or "")
        except ValueError:
            raise Forbidden("the download link is malformed") from None
        if not sig or name is None:
            raise Forbidden("the download link is malformed")
        try:
            verify_link(path, expires_at, sig, self._secret, int(time.time()), extra={"name": name})
        except LinkInvalid:
            raise Forbidden("the download link's signature does not match") from None
        except LinkExpired:
            raise LinkGone("the download link has expired") from None
        with storage_errors():
            info = await self.cas.store.stat(self.cas.key_for(sha256))
        if info is None:
            raise NotFound(f"no artifact {sha256}")
        chunks = self.cas.open_verified(sha256, expected_size=info.size)
        try:
            with storage_errors():
                first = await anext(chunks, None)
        except BlobCorrupted as exc:
            log.error("stored artifact is corrupted; download refused", extra={"sha256": sha256, "error": str(exc)})
            raise ArtifactCorrupted("the stored artifact failed its integrity check") from None

        async def body() -> AsyncIterator[bytes]:
            try:
                if first is not None:
                    yield first
                async for chunk in chunks:
                    yield chunk
            except BlobCorrupted as exc:
                # raising aborts the response: the client never sees a clean end of body
                log.error("stored artifact is corrupted; download aborted", extra={"sha256": sha256, "error": str(exc)})
                raise
            finally:
                await chunks.aclose()

        return ArtifactStream(sha256=sha256, size=info.size, filename=name, chunks=body())

    async def verify(self, model_ref: str, version_ref: str) -> tuple[bool, ArtifactRef]:
        view = await self.get(model_ref, version_ref)
        artifact = view.version.artifact
        if artifact is None:
            raise NotFound(f"version {view.version.version} has no artifact")
        self._check_served_here(artifact)
        try:
            with storage_errors():
                async for _ in self.cas.open_verified(artifact.sha256, expected_size=artifact.size):
                    pass
        except (BlobCorrupted, NotFound) as exc:
            log.error("artifact failed verification", extra={"sha256": artifact.sha256, "error": str(exc)})
            return False, artifact
        return True, artifact

    # ---- events consumed ----------------------------------------------------------------------------

    async def on_model_event(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """cairn.models.v1 → the local projection (id, name, deleted)."""
        event = envelope.data
        if isinstance(event, ModelDeleted):
            await store.mark_model_deleted(uow.conn, event.model_id, event.name, event.deleted_at)
        else:
            await store.project_model(uow.conn, event.model_id, event.name, event.revision, event.created_at)

    async def on_lifecycle_event(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """cairn.lifecycle.v1 → where each version is live (in production)."""
        event = envelope.data
        await store.lock_model_if_present(uow.conn, event.model_id)  # ordered against deletes
        if isinstance(event, VersionRolledBack):
            if event.from_version:
                await store.remove_live(uow.conn, event.model_id, event.from_version, event.environment)
            await store.add_live(uow.conn, event.model_id, event.to_version, event.environment, envelope.time)
        else:  # a stage transition: one model's events arrive in order, so the last one names the stage
            await store.set_stage(uow.conn, event.model_id, event.version, event.environment, event.to_stage,
                                  envelope.time)
            if event.to_stage == "production":
                await store.add_live(uow.conn, event.model_id, event.version, event.environment, envelope.time)
            elif event.from_stage == "production":
                await store.remove_live(uow.conn, event.model_id, event.version, event.environment)
