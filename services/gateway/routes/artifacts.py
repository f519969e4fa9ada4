"""/api/v1/artifacts/{sha256}: downloads by signed, expiring link (the link is the authorisation)."""
from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Query, Request, Response

from libs.kit.http import problems

router = APIRouter(prefix="/api/v1", tags=["artifacts"])
_UPLOAD = re.compile(r"^/api/v1/models/[^/]+/versions/[^/]+/artifact$")


def is_streaming_path(path: str) -> bool:
    """Routes whose bodies stream through and enforce their own size limit."""
    return bool(_UPLOAD.match(path)) or path.startswith("/api/v1/artifacts/")


def signed_link() -> None:
    """No API key: the version service checks the link's HMAC signature and expiry."""


signed_link.permission = "public:signed-link"  # type: ignore[attr-defined]


@router.get("/artifacts/{sha256}", dependencies=[Depends(signed_link)], responses=problems(403, 404, 410))
async def download_artifact(
    sha256: str, request: Request,
    expires: str | None = Query(None, description="Unix time the link expires"),
    name: str | None = Query(None, description="File name for Content-Disposition"),
    sig: str | None = Query(None, description="HMAC signature of path, expiry and name"),
) -> Response:
    """Stream the bytes; an expired link gets 410, a tampered one 403. The bytes are checked against
    their sha256 while streaming (``Repr-Digest`` carries it); a corrupted blob aborts the download.
    The parameters are checked by the version service, so an incomplete link is refused like a tampered one."""
    return await request.app.state.gateway.upstreams["version"].forward_stream(
        request, None, f"/internal/artifacts/{sha256}", query=request.url.query)
