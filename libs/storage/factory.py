"""Build an ``ObjectStore`` from one configuration URL, and print that URL without its secret.

- ``file:///abs/path`` or ``file://./relative/path`` -> ``FolderObjectStore``
- ``s3://ACCESS:SECRET@host:port/bucket?secure=false&region=us-east-1`` -> ``S3ObjectStore``
  (percent-encode ``/``, ``@``, ``:`` in the credentials; optional parameters: ``secure``,
  ``region``, ``create_bucket``, ``part_size`` in bytes, ``public_endpoint``, ``public_secure``).

Unknown schemes and unknown parameters are rejected: a typo in a setting should stop start-up,
not silently fall back to a default.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from libs.storage.folder import FolderObjectStore
from libs.storage.port import ObjectStore
from libs.storage.s3 import DEFAULT_PART_SIZE, S3ObjectStore

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_S3_PARAMETERS = frozenset({"secure", "region", "create_bucket", "part_size", "public_endpoint", "public_secure"})


def open_object_store(url: str) -> ObjectStore:
    """Return the ``ObjectStore`` described by ``url`` (see the module docstring); ``ValueError`` if malformed.

    Does no I/O beyond creating a folder store's root directory; an S3 bucket is reached (and
    created, unless ``create_bucket=false``) on first use.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return FolderObjectStore(_folder_root(parts.netloc, parts.path, parts.query))
    if scheme == "s3":
        return _s3_store(url)
    raise ValueError(
        f"unsupported object store URL scheme {parts.scheme!r} in {redact_url(url)!r}; "
        "use file:///absolute/path, file://./relative/path or s3://ACCESS:SECRET@host:port/bucket"
    )


def redact_url(url: str) -> str:
    """Return ``url`` with any password in it replaced by ``***``, safe to log.

    Never raises: an unparseable URL is replaced entirely rather than risk printing a secret.
    """
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        userinfo, _, hostinfo = parts.netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))
    except ValueError:
        return "<unparseable URL>"


def _folder_root(netloc: str, path: str, query: str) -> Path:
    if query:
        raise ValueError("file:// object store URLs take no parameters")
    path = unquote(path)
    if netloc == "" and path.startswith("/"):
        return Path(path)
    if netloc == "." and path.startswith("/") and len(path) > 1:
        return Path(".") / path.lstrip("/")
    raise ValueError("use file:///absolute/path or file://./relative/path for a folder object store")


def _s3_store(url: str) -> S3ObjectStore:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid port in {redact_url(url)!r}") from exc
    if not parts.hostname:
        raise ValueError(f"missing host in {redact_url(url)!r}")
    if parts.username is None or parts.password is None:
        raise ValueError(f"missing ACCESS:SECRET credentials in {redact_url(url)!r}")
    bucket = parts.path.strip("/")
    if not bucket or "/" in bucket:
        raise ValueError(f"expected exactly one bucket name as the path of {redact_url(url)!r}")

    params: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)):
        if name not in _S3_PARAMETERS:
            raise ValueError(f"unknown parameter {name!r} in {redact_url(url)!r}")
        if name in params:
            raise ValueError(f"parameter {name!r} given twice in {redact_url(url)!r}")
        params[name] = value

    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    public_secure = params.get("public_secure")
    return S3ObjectStore(
        f"{host}:{port}" if port is not None else host,
        unquote(parts.username),
        unquote(parts.password),
        bucket,
        secure=_flag(params.get("secure", "false"), "secure"),
        region=params.get("region") or "us-east-1",
        create_bucket=_flag(params.get("create_bucket", "true"), "create_bucket"),
        part_size=_integer(params.get("part_size", str(DEFAULT_PART_SIZE)), "part_size"),
        public_endpoint=params.get("public_endpoint") or None,
        public_secure=None if public_secure is None else _flag(public_secure, "public_secure"),
    )


def _flag(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"parameter {name!r} must be true or false, not {value!r}")


def _integer(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"parameter {name!r} must be an integer number of bytes, not {value!r}") from None


__all__ = ["open_object_store", "redact_url"]
