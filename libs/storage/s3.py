"""``S3ObjectStore``: the ``ObjectStore`` on an S3-compatible server, through the official ``minio`` client.

MinIO is the production target; any S3 implementation works (tests run against ``moto_server``).
The ``minio`` client is synchronous: short calls go through ``asyncio.to_thread``, transfers run in
a thread of their own fed through a bounded buffer (``libs.storage.streams``), so uploads and
downloads of any size stream with a few parts' worth of memory.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Generator, Iterator
from datetime import timedelta
from typing import TypeVar

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import CopySource
from minio.error import MinioException, S3Error
from minio.helpers import MAX_PART_SIZE, MIN_PART_SIZE, check_bucket_name

from libs.storage.disposition import content_disposition
from libs.storage.port import (
    DEFAULT_CHUNK_SIZE,
    ObjectInfo,
    ObjectNotFound,
    StorageError,
    validate_key,
    validate_prefix,
)
from libs.storage.streams import ChunkPipe, feed_pipe, iterate_in_thread, run_in_thread

T = TypeVar("T")

DEFAULT_PART_SIZE = 16 << 20
"""Multipart upload part size: 16 MiB (S3 allows 5 MiB to 5 GiB, and at most 10,000 parts)."""

MAX_PRESIGN_EXPIRY = timedelta(days=7)
"""The longest expiry SigV4 presigned URLs allow."""

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchObject"})
_BUCKET_EXISTS_CODES = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})


class S3ObjectStore:
    """An ``ObjectStore`` keeping objects in one bucket of an S3-compatible server.

    ``endpoint`` is ``host:port`` (no scheme; ``secure`` picks https). With ``create_bucket`` the
    bucket is created on first use if missing. ``part_size`` is the multipart part size and also
    roughly the upload buffer: expect about four parts of memory per concurrent upload.
    ``public_endpoint`` (and ``public_secure``) sign presigned URLs for the host clients reach,
    when that differs from the one this process uses (for example ``minio:9000`` inside a
    compose network); signing needs no network call.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str = "us-east-1",
        create_bucket: bool = True,
        part_size: int = DEFAULT_PART_SIZE,
        public_endpoint: str | None = None,
        public_secure: bool | None = None,
    ) -> None:
        check_bucket_name(bucket, strict=True)  # DNS-compatible names only: MinIO and S3 agree on those
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes")
        self._bucket = bucket
        self._part_size = part_size
        self._create_bucket = create_bucket
        self._bucket_ready = False
        self._bucket_lock = threading.Lock()
        self._closed = False
        # Our own pool, so close() can release it; retries mirror the minio defaults.
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=15, read=300),
            maxsize=16,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=urllib3.Retry(total=5, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        # An explicit region means the client never calls GetBucketLocation (and presigning is offline).
        self._client = Minio(
            endpoint, access_key, secret_key, secure=secure, region=region, http_client=self._http
        )
        self._signer = self._client
        if public_endpoint is not None:
            self._signer = Minio(
                public_endpoint,
                access_key,
                secret_key,
                secure=secure if public_secure is None else public_secure,
                region=region,
                http_client=self._http,
            )

    @property
    def name(self) -> str:
        """``"s3"``."""
        return "s3"

    @property
    def bucket(self) -> str:
        """The bucket holding every object of this store."""
        return self._bucket

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Stream ``chunks`` to ``key``: one PUT if it fits in a part, else a multipart upload.

        The length need not be known in advance. If ``chunks`` fails, the multipart upload is
        aborted (parts already sent are discarded by the server) and nothing appears at ``key``.
        """
        validate_key(key)
        self._check_open()
        pipe = ChunkPipe(max_buffered=self._part_size)
        uploader = run_in_thread(self._put_blocking, key, pipe, name="cairn-s3-put")
        return await feed_pipe(pipe, chunks, uploader)

    def open(self, key: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> AsyncIterator[bytes]:
        """Stream the object at ``key`` with a couple of chunks of read-ahead; ``ObjectNotFound`` on first iteration."""
        validate_key(key)
        self._check_open()
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")

        def read_chunks() -> Generator[bytes, None, None]:
            with self._s3_errors(key):
                self._ensure_bucket()
                response = self._client.get_object(self._bucket, key)
                try:
                    yield from response.stream(chunk_size)
                finally:
                    response.close()
                    response.release_conn()

        return iterate_in_thread(read_chunks, name="cairn-s3-get")

    async def stat(self, key: str) -> ObjectInfo | None:
        """Return size and ETag of the object at ``key``, or ``None`` if it does not exist."""
        validate_key(key)
        return await self._run(self._stat_blocking, key)

    async def exists(self, key: str) -> bool:
        """Return whether an object exists at ``key``."""
        return await self.stat(key) is not None

    async def delete(self, key: str) -> None:
        """Delete the object at ``key`` (S3 deletes are idempotent)."""
        validate_key(key)

        def remove() -> None:
            with self._s3_errors(key):
                self._ensure_bucket()
                self._client.remove_object(self._bucket, key)

        await self._run(remove)

    async def move(self, src: str, dst: str) -> None:
        """Server-side copy ``src`` to ``dst``, then delete ``src``; no bytes pass through this process.

        ``copy_object`` switches to a multipart ``UploadPartCopy`` (``compose_object``) for sources
        above the 5 GiB single-copy limit, pinned to the source's ETag so a concurrent overwrite
        of ``src`` makes the copy fail rather than mix two versions.
        """
        validate_key(src)
        validate_key(dst)

        def copy_then_delete() -> None:
            with self._s3_errors(src):
                self._ensure_bucket()
                if src == dst:
                    self._client.stat_object(self._bucket, src)  # still report a missing source
                    return
                self._client.copy_object(self._bucket, dst, CopySource(self._bucket, src))
                self._client.remove_object(self._bucket, src)

        await self._run(copy_then_delete)

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Return every object whose key starts with ``prefix``, sorted by key."""
        validate_prefix(prefix)

        def list_all() -> list[ObjectInfo]:
            with self._s3_errors(prefix):
                self._ensure_bucket()
                found = [
                    ObjectInfo(key=obj.object_name, size=obj.size or 0, etag=_clean_etag(obj.etag))
                    for obj in self._client.list_objects(self._bucket, prefix=prefix or None, recursive=True)
                    if not obj.is_dir and obj.object_name is not None
                ]
            found.sort(key=lambda info: info.key)
            return found

        return await self._run(list_all)

    async def presigned_get_url(
        self, key: str, expires: timedelta, *, filename: str | None = None
    ) -> str:
        """Return a SigV4 presigned GET URL; with ``filename`` the response is an attachment of that name."""
        validate_key(key)
        _check_expiry(expires)
        overrides = {"response-content-disposition": content_disposition(filename)} if filename else None

        def sign() -> str:
            with self._s3_errors(key):
                self._ensure_bucket()
                return self._signer.presigned_get_object(
                    self._bucket, key, expires=expires, response_headers=overrides
                )

        return await self._run(sign)

    async def presigned_put_url(self, key: str, expires: timedelta) -> str:
        """Return a SigV4 presigned PUT URL (a single PUT: up to 5 GiB per S3's limit)."""
        validate_key(key)
        _check_expiry(expires)

        def sign() -> str:
            with self._s3_errors(key):
                self._ensure_bucket()
                return self._signer.presigned_put_object(self._bucket, key, expires=expires)

        return await self._run(sign)

    async def close(self) -> None:
        """Close pooled connections; later calls raise ``StorageError``."""
        self._closed = True
        self._http.clear()

    # -- helpers ---------------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        self._check_open()
        return await asyncio.to_thread(fn, *args)

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("the S3 object store is closed")

    def _ensure_bucket(self) -> None:
        """Create the bucket on first use (blocking; called inside worker threads)."""
        if self._bucket_ready:
            return
        with self._bucket_lock:
            if self._bucket_ready:
                return
            if self._create_bucket and not self._client.bucket_exists(self._bucket):
                try:
                    self._client.make_bucket(self._bucket)
                except S3Error as exc:
                    if exc.code not in _BUCKET_EXISTS_CODES:  # lost a creation race: fine
                        raise
            self._bucket_ready = True

    def _put_blocking(self, key: str, pipe: ChunkPipe) -> None:
        with self._s3_errors(key):
            self._ensure_bucket()
            # Sequential parts (num_parallel_uploads=1) keep memory at a few parts; the pipe
            # still overlaps receiving the next part with sending the current one. minio aborts
            # the multipart upload itself when the pipe raises SourceFailed.
            self._client.put_object(
                self._bucket, key, pipe, length=-1, part_size=self._part_size, num_parallel_uploads=1
            )

    def _stat_blocking(self, key: str) -> ObjectInfo | None:
        with self._s3_errors(key):
            self._ensure_bucket()
            try:
                info = self._client.stat_object(self._bucket, key)
            except S3Error as exc:
                if exc.code in _NOT_FOUND_CODES:
                    return None
                raise
        return ObjectInfo(key=key, size=info.size or 0, etag=_clean_etag(info.etag))

    @contextlib.contextmanager
    def _s3_errors(self, key: str) -> Iterator[None]:
        """Map client errors to the port's: missing objects to ``ObjectNotFound``, the rest to ``StorageError``."""
        try:
            yield
        except S3Error as exc:
            if exc.code in _NOT_FOUND_CODES:
                raise ObjectNotFound(key) from None
            raise StorageError(
                f"S3 error {exc.code} on bucket {self._bucket!r}, key {key!r}: {exc.message}"
            ) from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise StorageError(f"S3 request failed on bucket {self._bucket!r}, key {key!r}: {exc}") from exc


def _check_expiry(expires: timedelta) -> None:
    if not timedelta(seconds=1) <= expires <= MAX_PRESIGN_EXPIRY:
        raise ValueError(f"presigned URL expiry must be between 1 second and {MAX_PRESIGN_EXPIRY}")


def _clean_etag(etag: str | None) -> str | None:
    return etag.strip('"') if etag else None


__all__ = ["DEFAULT_PART_SIZE", "MAX_PRESIGN_EXPIRY", "S3ObjectStore"]
