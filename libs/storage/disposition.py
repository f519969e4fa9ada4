"""A safe ``Content-Disposition: attachment`` value for a user-chosen download file name.

Used for S3 presigned GETs (``response-content-disposition``) and by the gateway when it serves
folder-store blobs itself, so both paths name downloads the same way.
"""
from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

_MAX_NAME_LENGTH = 200
_UNSAFE_ASCII = re.compile(r"[^A-Za-z0-9._ ()+-]")


def content_disposition(filename: str) -> str:
    """Return ``attachment; filename="<ascii>"; filename*=UTF-8''<encoded>`` for ``filename``.

    Only the last path component is kept and control characters are dropped, so the header can
    neither be split (no CR/LF) nor steer the client's save location. The quoted ``filename`` is
    an ASCII fallback (unsafe characters become ``_``); ``filename*`` (RFC 6266 / RFC 5987)
    carries the exact UTF-8 name for clients that support it.
    """
    name = re.split(r"[/\\]", filename)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    name = name[:_MAX_NAME_LENGTH].lstrip(".") or "download"
    fallback = _UNSAFE_ASCII.sub("_", unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode())
    fallback = fallback.strip().lstrip(".") or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


__all__ = ["content_disposition"]
