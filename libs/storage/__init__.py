"""Object storage for Cairn: one ``ObjectStore`` port, two adapters, and what is built on top.

- ``port``: the ``ObjectStore`` protocol, ``ObjectInfo``, errors and ``validate_key``.
- ``folder``: ``FolderObjectStore``, the embedded default (a directory on local disk).
- ``s3``: ``S3ObjectStore`` on the official ``minio`` client (MinIO in production).
- ``factory``: ``open_object_store(url)`` and ``redact_url(url)`` for configuration.
- ``cas``: ``ContentAddressedStore``, sha256-addressed, deduplicated, verified blobs.
- ``signing``: HMAC links for stores that cannot presign URLs themselves.
- ``disposition``: a safe ``Content-Disposition`` header value for downloads.
- ``testing``: ``MotoS3Server``, a real S3 server on loopback for tests and benchmarks.
"""
from libs.storage.port import (
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StorageError,
    validate_key,
)

__all__ = [
    "InvalidKey",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "StorageError",
    "validate_key",
]
