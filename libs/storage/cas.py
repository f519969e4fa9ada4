"""``ContentAddressedStore``: sha256-addressed, deduplicated, verified blobs over any ``ObjectStore``.

A blob lives at ``<prefix>/<h[:2]>/<h>`` where ``h`` is the sha256 of its bytes (the two-character
fan-out keeps directories small on the folder store). Bytes always arrive under
``<incoming_prefix>/<uuid4>`` first and are moved to their final key only once their hash is
known and checked, so a blob key never holds anything but the bytes that hash to its name, and
identical content (the same weights registered twice) is stored once.

Large files can skip the gateway: ``begin_upload`` hands out a presigned PUT URL (or ``None`` for
stores that cannot presign, when the gateway receives the bytes itself), and
``complete_upload`` re-hashes what actually arrived before accepting it.
"""
from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from libs.storage.port import (
    DEFAULT_CHUNK_SIZE,
    InvalidKey,
    ObjectNotFound,
    ObjectStore,
    StorageError,
    validate_key,
)
from libs.storage.streams import rechunk

_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
_OFFLOAD_HASH_BYTES = 256 << 10  # hash chunks at least this big in a thread, off the event loop


class BlobTooLarge(ValueError):
    """The blob exceeds the size limit; nothing was stored."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"blob exceeds the size limit of {limit} bytes")
        self.limit = limit


class BlobMismatch(ValueError):
    """An uploaded blob's content does not match what the client declared; nothing was stored.

    ``actual_sha256`` is ``None`` when the size alone already disagreed.
    """

    def __init__(
        self, expected_sha256: str, actual_sha256: str | None, expected_size: int, actual_size: int
    ) -> None:
        super().__init__(
            f"uploaded blob does not match: expected sha256 {expected_sha256} and {expected_size} bytes, "
            f"got {actual_sha256 or 'unhashed content'} and {actual_size} bytes"
        )
        self.expected_sha256 = expected_sha256
        self.actual_sha256 = actual_sha256
        self.expected_size = expected_size
        self.actual_size = actual_size


class BlobCorrupted(StorageError):
    """A stored blob's bytes no longer hash to its name (or have the wrong size): storage damage.

    ``actual`` is ``None`` when reading stopped early because the blob was longer than expected.
    """

    def __init__(self, expected: str, actual: str | None, *, actual_size: int | None = None) -> None:
        detail = f"got sha256 {actual}" if actual else "it is longer than expected"
        size = f" ({actual_size} bytes read)" if actual_size is not None else ""
        super().__init__(f"blob {expected} is corrupted: {detail}{size}")
        self.expected = expected
        self.actual = actual
        self.actual_size = actual_size


@dataclass(frozen=True, slots=True)
class BlobRef:
    """A stored blob: its sha256 (64 lowercase hex), size in bytes and object key.

    ``deduplicated`` is ``True`` when the bytes were already stored and the new copy was dropped.
    """

    sha256: str
    size: int
    key: str
    deduplicated: bool


@dataclass(frozen=True, slots=True)
class PendingUpload:
    """A direct upload in progress: PUT the bytes to ``url`` (or to the gateway if ``url`` is ``None``) before ``expires_at``."""

    upload_id: str
    key: str
    url: str | None
    expires_at: datetime


def validate_sha256(sha256: str) -> str:
    """Return ``sha256`` if it is exactly 64 lowercase hex characters, else raise ``InvalidKey``."""
    if not isinstance(sha256, str) or _SHA256_PATTERN.fullmatch(sha256) is None:
        raise InvalidKey(sha256, "not a sha256 digest (64 lowercase hex characters)")
    return sha256


def validate_upload_id(upload_id: str) -> str:
    """Return ``upload_id`` if it is a canonical lowercase UUID4 string, else raise ``InvalidKey``."""
    try:
        parsed = uuid.UUID(upload_id)
    except (TypeError, ValueError, AttributeError):
        parsed = None
    if parsed is None or parsed.version != 4 or str(parsed) != upload_id:
        raise InvalidKey(upload_id, "not an upload id (a canonical UUID4 string)")
    return upload_id


class ContentAddressedStore:
    """Content-addressed blobs over ``store``: final blobs under ``prefix``, uploads in flight under ``incoming_prefix``.

    Objects left under ``incoming_prefix`` by crashed or abandoned uploads are garbage; expire
    them with a bucket lifecycle rule (S3) or a periodic sweep (folder).
    """

    def __init__(
        self, store: ObjectStore, *, prefix: str = "blobs/sha256", incoming_prefix: str = "incoming"
    ) -> None:
        validate_key(prefix)
        validate_key(incoming_prefix)
        if _overlaps(prefix, incoming_prefix):
            raise ValueError("prefix and incoming_prefix must not contain one another")
        self._store = store
        self._prefix = prefix
        self._incoming = incoming_prefix

    @property
    def store(self) -> ObjectStore:
        """The underlying object store."""
        return self._store

    def key_for(self, sha256: str) -> str:
        """Return the object key of the blob ``sha256`` (validated): ``<prefix>/<h[:2]>/<h>``."""
        validate_sha256(sha256)
        return f"{self._prefix}/{sha256[:2]}/{sha256}"

    def upload_key(self, upload_id: str) -> str:
        """Return the object key a direct upload's bytes go to: ``<incoming_prefix>/<upload_id>``.

        For stores without presigned URLs, the gateway writes the client's bytes here itself
        (after checking its own signed link) and then calls ``complete_upload``.
        """
        return f"{self._incoming}/{validate_upload_id(upload_id)}"

    async def put_stream(self, chunks: AsyncIterable[bytes], *, max_size: int | None = None) -> BlobRef:
        """Store ``chunks`` as a blob, hashing while streaming; return its ``BlobRef``.

        Raises ``BlobTooLarge`` as soon as more than ``max_size`` bytes arrive (nothing is kept).
        """
        _check_limit(max_size)
        temp = self._new_incoming_key()
        digest = hashlib.sha256()
        size = 0

        async def measured() -> AsyncIterator[bytes]:
            nonlocal size
            hashing = _Hasher(digest)
            # Network reads arrive in small pieces; blocks of 1 MiB keep the per-piece costs (hash hand-off,
            # pipe to the writer thread) off the hot loop.
            async for block in rechunk(chunks, DEFAULT_CHUNK_SIZE):
                size += len(block)
                if max_size is not None and size > max_size:
                    raise BlobTooLarge(max_size)
                await hashing.feed(block)
                yield block
            await hashing.finish()

        try:
            await self._store.put(temp, measured())
        except BaseException:
            await self._discard(temp)
            raise
        return await self._commit(temp, digest.hexdigest(), size)

    def open_verified(
        self, sha256: str, *, expected_size: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> AsyncIterator[bytes]:
        """Stream the blob ``sha256``, hashing on the fly; raise ``BlobCorrupted`` if it is damaged.

        The last chunk is held back until the hash (and ``expected_size``, if given) checks out,
        so a consumer never receives every byte of a corrupted blob: it gets ``BlobCorrupted``
        instead of the final chunk and can abort its response. ``InvalidKey`` is raised by this
        call; ``ObjectNotFound`` by the first iteration.
        """
        key = self.key_for(sha256)
        return self._verified_chunks(sha256, key, expected_size, chunk_size)

    async def verify(self, sha256: str) -> bool:
        """Read the whole blob and return whether it still hashes to ``sha256``; ``ObjectNotFound`` if missing."""
        try:
            async for _ in self.open_verified(sha256):
                pass
        except BlobCorrupted:
            return False
        return True

    async def exists(self, sha256: str) -> bool:
        """Return whether the blob ``sha256`` is stored."""
        return await self._store.exists(self.key_for(sha256))

    async def delete(self, sha256: str) -> None:
        """Delete the blob ``sha256`` (no error if missing). The caller ensures nothing references it any more."""
        await self._store.delete(self.key_for(sha256))

    async def begin_upload(self, expires: timedelta) -> PendingUpload:
        """Start a direct upload: a fresh ``upload_id``, its key and, if the store can presign, a PUT URL valid for ``expires``."""
        if expires <= timedelta(0):
            raise ValueError("expires must be positive")
        upload_id = str(uuid.uuid4())
        key = self.upload_key(upload_id)
        # Taken before signing and truncated like SigV4's X-Amz-Date, so the URL is valid at least
        # until `expires_at`, never a fraction of a second less.
        expires_at = datetime.now(UTC).replace(microsecond=0) + expires
        url = await self._store.presigned_put_url(key, expires)
        return PendingUpload(upload_id=upload_id, key=key, url=url, expires_at=expires_at)

    async def complete_upload(
        self, upload_id: str, *, expected_sha256: str, expected_size: int, max_size: int | None = None
    ) -> BlobRef:
        """Accept the bytes uploaded for ``upload_id`` if they hash to ``expected_sha256`` and have ``expected_size``.

        The server re-hashes what actually arrived; the client's claim is only compared against
        it. Raises ``ObjectNotFound`` if nothing was uploaded, ``BlobTooLarge`` over ``max_size``,
        ``BlobMismatch`` if size or hash differ; in all three error cases nothing is kept.
        """
        validate_sha256(expected_sha256)
        if expected_size < 0:
            raise ValueError("expected_size must not be negative")
        _check_limit(max_size)
        upload_key = self.upload_key(upload_id)

        # Cheap early rejection before copying anything: the declared size is a client claim, the
        # stat is what the server holds.
        uploaded = await self._store.stat(upload_key)
        if uploaded is None:
            raise ObjectNotFound(upload_key)
        if max_size is not None and uploaded.size > max_size:
            await self._discard(upload_key)
            raise BlobTooLarge(max_size)

        # Claim the bytes under a fresh private key first. The presigned URL stays valid until it
        # expires, so the client could overwrite `upload_key` between our hashing and our final
        # move; the claimed copy is out of its reach, so what we hash is what we keep.
        claimed = self._new_incoming_key()
        await self._store.move(upload_key, claimed)
        try:
            info = await self._store.stat(claimed)
            actual_size = info.size if info is not None else 0
            if max_size is not None and actual_size > max_size:
                raise BlobTooLarge(max_size)
            if info is None or actual_size != expected_size:
                raise BlobMismatch(expected_sha256, None, expected_size, actual_size)
            actual_sha256, hashed_size = await self._hash_object(claimed)
            if actual_sha256 != expected_sha256 or hashed_size != expected_size:
                raise BlobMismatch(expected_sha256, actual_sha256, expected_size, hashed_size)
        except BaseException:
            await self._discard(claimed)
            raise
        return await self._commit(claimed, actual_sha256, hashed_size)

    # -- helpers ---------------------------------------------------------------------------------

    def _new_incoming_key(self) -> str:
        return f"{self._incoming}/{uuid.uuid4()}"

    async def _commit(self, temp: str, sha256: str, size: int) -> BlobRef:
        """Move ``temp`` to the blob's final key, or drop it if an intact copy is already there."""
        final = self.key_for(sha256)
        try:
            existing = await self._store.stat(final)
            # A size check is a cheap guard against keeping a truncated copy forever: replace it.
            if existing is not None and existing.size == size:
                await self._store.delete(temp)
                return BlobRef(sha256=sha256, size=size, key=final, deduplicated=True)
            await self._store.move(temp, final)
        except BaseException:
            await self._discard(temp)
            raise
        return BlobRef(sha256=sha256, size=size, key=final, deduplicated=False)

    async def _verified_chunks(
        self, sha256: str, key: str, expected_size: int | None, chunk_size: int
    ) -> AsyncIterator[bytes]:
        digest = hashlib.sha256()
        hashing = _Hasher(digest)
        size = 0
        held: bytes | None = None
        source = self._store.open(key, chunk_size=chunk_size)
        try:
            async for chunk in source:
                size += len(chunk)
                if expected_size is not None and size > expected_size:
                    raise BlobCorrupted(sha256, None, actual_size=size)
                await hashing.feed(chunk)  # hashed in a thread while the held chunk goes out
                if held is not None:
                    yield held
                held = chunk
            await hashing.finish()
            actual = digest.hexdigest()
            if actual != sha256 or (expected_size is not None and size != expected_size):
                raise BlobCorrupted(sha256, actual, actual_size=size)
            if held is not None:
                yield held
        finally:
            await _close(source)

    async def _hash_object(self, key: str) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        source = self._store.open(key)
        try:
            async for chunk in source:
                size += len(chunk)
                await _hash_update(digest, chunk)
        finally:
            await _close(source)
        return digest.hexdigest(), size

    async def _discard(self, key: str) -> None:
        """Best-effort delete of a temp object, also while the caller is being cancelled."""
        try:
            await asyncio.shield(self._store.delete(key))
        except (Exception, asyncio.CancelledError):  # noqa: BLE001 - the original error matters more
            pass


class _Hasher:
    """Feeds a digest in order, each large piece in a worker thread while the caller moves on: hashlib
    releases the GIL on large inputs, so hashing piece N overlaps receiving or sending piece N+1.
    ``feed`` waits only for the previous piece; ``finish`` for the last."""

    __slots__ = ("_digest", "_pending")

    def __init__(self, digest: Any) -> None:
        self._digest = digest
        self._pending: asyncio.Future[None] | None = None

    async def feed(self, chunk: bytes) -> None:
        await self.finish()
        if len(chunk) >= _OFFLOAD_HASH_BYTES:
            self._pending = asyncio.get_running_loop().run_in_executor(None, self._digest.update, chunk)
        else:
            self._digest.update(chunk)

    async def finish(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            await pending


async def _hash_update(digest: Any, chunk: bytes) -> None:
    # hashlib releases the GIL on large inputs, so a thread really takes the work off the loop.
    if len(chunk) >= _OFFLOAD_HASH_BYTES:
        await asyncio.to_thread(digest.update, chunk)
    else:
        digest.update(chunk)


async def _close(iterator: AsyncIterator[bytes]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


def _check_limit(max_size: int | None) -> None:
    if max_size is not None and max_size < 0:
        raise ValueError("max_size must not be negative")


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


__all__ = [
    "BlobCorrupted",
    "BlobMismatch",
    "BlobRef",
    "BlobTooLarge",
    "ContentAddressedStore",
    "PendingUpload",
    "validate_sha256",
    "validate_upload_id",
]
