"""HMAC-SHA256 links for stores that cannot presign URLs (the folder store): the gateway signs its own.

A link is ``path`` + ``expires_at`` + optional ``extra`` parameters + a token. The token is an
HMAC over all of them, so changing any one (another blob, a later expiry, a different download
name) invalidates the link. Pure functions: the caller supplies the secret and the clock.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from types import MappingProxyType

MIN_SECRET_BYTES = 16
"""Shortest secret accepted; use 32 random bytes (``secrets.token_bytes(32)``)."""

_NO_EXTRA: Mapping[str, str] = MappingProxyType({})
_DOMAIN = "cairn-link-v1"  # versions the message format and keeps these MACs apart from other uses of the key


class LinkError(Exception):
    """Base of the errors ``verify_link`` raises."""


class LinkExpired(LinkError):
    """The link was genuine but its expiry time has passed."""


class LinkInvalid(LinkError):
    """The link was not signed with this secret, or was altered after signing."""


def sign_link(
    path: str, expires_at: int, secret: bytes, *, extra: Mapping[str, str] = _NO_EXTRA
) -> str:
    """Return a URL-safe token (base64url, no padding) authorising ``path`` until ``expires_at`` (unix seconds).

    ``extra`` holds further query parameters to bind to the link (for example a download file
    name); the same mapping must be passed to ``verify_link``.
    """
    return _encode(_mac(path, expires_at, secret, extra))


def verify_link(
    path: str,
    expires_at: int,
    token: str,
    secret: bytes,
    now: int,
    *,
    extra: Mapping[str, str] = _NO_EXTRA,
) -> None:
    """Return if ``token`` authorises ``path``/``expires_at``/``extra`` at time ``now``, else raise.

    Raises ``LinkInvalid`` for a token that does not match (checked first, in constant time, so
    an attacker learns nothing about expiry from a forged link) and ``LinkExpired`` once
    ``now >= expires_at``.
    """
    expected = _mac(path, expires_at, secret, extra)
    try:
        given = _decode(token)
    except (ValueError, binascii.Error):
        raise LinkInvalid("malformed link token") from None
    if not hmac.compare_digest(given, expected):
        raise LinkInvalid("link signature does not match")
    if _seconds(now, "now") >= expires_at:
        raise LinkExpired(f"link expired at {expires_at}")


def _mac(path: str, expires_at: int, secret: bytes, extra: Mapping[str, str]) -> bytes:
    if not isinstance(secret, (bytes, bytearray)) or len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the link signing secret must be at least {MIN_SECRET_BYTES} bytes")
    if not isinstance(path, str):
        raise TypeError("path must be a string")
    items = sorted(extra.items())
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in items):
        raise TypeError("extra must map strings to strings")
    # JSON of a fixed-shape list is an unambiguous encoding: no field can bleed into the next.
    message = json.dumps(
        [_DOMAIN, path, _seconds(expires_at, "expires_at"), items],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    return hmac.new(bytes(secret), message, hashlib.sha256).digest()


def _seconds(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int of unix seconds")
    return value


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(token: str) -> bytes:
    if not isinstance(token, str) or not token.isascii():
        raise ValueError("token must be an ASCII string")
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    if _encode(raw) != token:  # reject non-canonical spellings of the same bytes
        raise ValueError("non-canonical token")
    return raw


__all__ = [
    "MIN_SECRET_BYTES",
    "LinkError",
    "LinkExpired",
    "LinkInvalid",
    "sign_link",
    "verify_link",
]
