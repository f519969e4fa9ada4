"""The ``ObjectStore`` port: what Cairn needs from a blob backend, and nothing more.

Keys are opaque, validated relative names (``validate_key``); the same key rules apply to every
adapter so that a key accepted by one store is accepted by all of them, and no key can ever name
something outside the store.

Errors are three separate kinds on purpose, so a caller cannot mistake one for another:
``InvalidKey`` is the caller's fault (a ``ValueError``), ``ObjectNotFound`` is a normal miss (a
``LookupError``), and ``StorageError`` means the backend itself failed (disk, network, server).
"""
from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, runtime_checkable

MAX_KEY_LENGTH = 512
"""Longest key accepted by ``validate_key``, in characters (all keys are ASCII)."""

DEFAULT_CHUNK_SIZE = 1 << 20
"""Default size of the chunks ``ObjectStore.open`` yields: 1 MiB."""

_KEY_PATTERN = re.compile(r"[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*")


class StorageError(Exception):
    """The storage backend failed: an I/O error, an unreachable or misbehaving server."""


class ObjectNotFound(LookupError):
    """No object exists at ``key``."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no object at key {key!r}")
        self.key = key


class InvalidKey(ValueError):
    """``key`` is not an acceptable object key (see ``validate_key``)."""

    def __init__(self, key: object, reason: str) -> None:
        shown = repr(key) if not isinstance(key, str) or len(key) <= 80 else repr(key[:80] + "...")
        super().__init__(f"invalid object key {shown}: {reason}")
        self.key = key
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a store knows about one object: its key, size in bytes and ETag (``None`` if the store has none)."""

    key: str
    size: int
    etag: str | None = None


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid object key, else raise ``InvalidKey``.

    A valid key is relative, at most ``MAX_KEY_LENGTH`` characters of ``[A-Za-z0-9._/-]``, made of
    non-empty ``/``-separated segments none of which is ``.`` or ``..``. So it has no leading or
    trailing ``/``, no ``//`` and cannot climb out of wherever it is rooted.
    """
    if not isinstance(key, str):
        raise InvalidKey(key, "must be a string")
    if not key:
        raise InvalidKey(key, "must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(key, f"longer than {MAX_KEY_LENGTH} characters")
    if key.startswith("/"):
        raise InvalidKey(key, "must be relative (no leading '/')")
    if _KEY_PATTERN.fullmatch(key) is None:
        raise InvalidKey(key, "only [A-Za-z0-9._-] segments separated by single '/' are allowed")
    if any(segment in (".", "..") for segment in key.split("/")):
        raise InvalidKey(key, "'.' and '..' segments are not allowed")
    return key


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` unchanged if it can start a valid key, else raise ``InvalidKey``.

    ``""`` lists everything; otherwise the prefix must be a valid key, optionally followed by one
    ``/`` (so ``"blobs/"`` and ``"blobs/ab"`` are fine, ``"../"`` and ``"a//"`` are not).
    """
    if prefix == "":
        return prefix
    if not isinstance(prefix, str):
        raise InvalidKey(prefix, "must be a string")
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


@runtime_checkable
class ObjectStore(Protocol):
    """A flat namespace of immutable-once-written byte objects, streamed in and out.

    Implementations: ``FolderObjectStore`` (``name == "folder"``) and ``S3ObjectStore``
    (``name == "s3"``). Every method validates its keys with ``validate_key`` and raises
    ``InvalidKey`` before doing any I/O.
    """

    @property
    def name(self) -> str:
        """Short backend name for logs and metrics: ``"folder"`` or ``"s3"``."""
        ...

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Stream ``chunks`` into the object at ``key`` and return the number of bytes written.

        Memory use is bounded (a few chunks or parts), whatever the object size. The write is
        all-or-nothing: if ``chunks`` raises (or the task is cancelled) the exception propagates
        and ``key`` holds no partial object; any previous object at ``key`` is left intact.
        """
        ...

    def open(self, key: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> AsyncIterator[bytes]:
        """Return an async iterator streaming the object at ``key`` in chunks of at most ``chunk_size``.

        ``InvalidKey`` is raised by this call itself; ``ObjectNotFound`` is raised by the first
        ``__anext__`` (no I/O happens before iteration starts). Close the iterator (``aclose``)
        if you stop early, so the underlying file or connection is released promptly.
        """
        ...

    async def stat(self, key: str) -> ObjectInfo | None:
        """Return the object's ``ObjectInfo``, or ``None`` if there is no object at ``key``."""
        ...

    async def exists(self, key: str) -> bool:
        """Return whether an object exists at ``key``."""
        ...

    async def delete(self, key: str) -> None:
        """Delete the object at ``key``; deleting a missing object is not an error."""
        ...

    async def move(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst``, replacing any object at ``dst``; ``ObjectNotFound`` if ``src`` is missing.

        Atomic on the folder store. On S3 it is a server-side copy then a delete: ``dst`` appears
        complete or not at all, but a crash in between can leave ``src`` behind as well.
        """
        ...

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Return every object whose key starts with ``prefix`` (a plain string prefix), sorted by key."""
        ...

    async def presigned_get_url(
        self, key: str, expires: timedelta, *, filename: str | None = None
    ) -> str | None:
        """Return a URL anyone may GET the object from until ``expires`` has elapsed, or ``None``.

        ``filename`` makes the response a download with that name (``Content-Disposition``).
        ``None`` means this store cannot presign; the gateway then serves the bytes itself
        behind a link signed with ``libs.storage.signing``.
        """
        ...

    async def presigned_put_url(self, key: str, expires: timedelta) -> str | None:
        """Return a URL anyone may PUT the object's bytes to until ``expires`` has elapsed, or ``None``."""
        ...

    async def close(self) -> None:
        """Release connections and threads held by the store; the store must not be used afterwards."""
        ...


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_KEY_LENGTH",
    "InvalidKey",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "StorageError",
    "validate_key",
    "validate_prefix",
]
