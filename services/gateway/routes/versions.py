"""/api/v1/models/{model}/versions, aliases, retention, downloads: forwarded to the version service."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from libs.kit.http import problems
from services.gateway.auth import require
from services.gateway.bodies import json_body, raw_body
from services.gateway.idempotency import idempotent
from services.gateway.keys import Principal
from services.version.schemas import (
    AliasSetBody,
    MetricsRecord,
    Retention,
    TagsChange,
    UploadComplete,
    UploadCreate,
    VersionCreate,
)

router = APIRouter(prefix="/api/v1/models/{model_ref}", tags=["versions"])
Read = Annotated[Principal, Depends(require("versions:read"))]
Write = Annotated[Principal, Depends(require("versions:write"))]


def _version(request: Request):
    return request.app.state.gateway.upstreams["version"]


async def _json_body(request: Request) -> bytes:
    return await request.body()


@router.post("/versions", status_code=201, responses=problems(400, 401, 403, 404, 409, 422),
             openapi_extra=json_body(VersionCreate))
async def create_version(
    model_ref: str, request: Request, principal: Write,
    idempotency_key: str | None = Header(None, description="Retries with the same key return the first response"),
) -> Response:
    """Create a version: an explicit semver, or a bump (major/minor/patch) with an optional pre-release
    (alpha/beta/rc). Body: version, bump, prerelease, change_log, metrics, training_data, dependencies,
    tags, lineage, metadata. Emits VersionCreated."""
    gw = request.app.state.gateway
    raw = await request.body()
    return await idempotent(
        request, principal.key_id, raw,
        lambda: _version(request).forward(request, principal, f"/internal/models/{model_ref}/versions", body=raw),
        redis=gw.redis, ttl_s=gw.settings.idempotency_ttl_s,
    )


@router.get("/versions", responses=problems(401, 403, 404, 422))
async def list_versions(model_ref: str, request: Request, principal: Read) -> Response:
    """Version history, newest (by semver precedence) first; filter by tag; paged."""
    return await _version(request).forward(request, principal, f"/internal/models/{model_ref}/versions",
                                           query=request.url.query)


@router.get("/versions/{version}", responses=problems(401, 403, 404))
async def get_version(model_ref: str, version: str, request: Request, principal: Read) -> Response:
    """One version, by semver, by alias, or ``latest``."""
    return await _version(request).forward(request, principal, f"/internal/models/{model_ref}/versions/{version}")


@router.delete("/versions/{version}", status_code=204, responses=problems(401, 403, 404, 409))
async def delete_version(model_ref: str, version: str, request: Request, principal: Write) -> Response:
    """Delete a version; refused while it is live in an environment or named by an alias. Emits VersionDeleted
    with ``?reason=``."""
    return await _version(request).forward(request, principal, f"/internal/models/{model_ref}/versions/{version}",
                                           query=request.url.query)


@router.put("/versions/{version}/artifact", status_code=201, responses=problems(401, 403, 404, 409, 413, 422),
            openapi_extra=raw_body(description="The weights file, streamed"))
async def upload_artifact(
    model_ref: str, version: str, request: Request, principal: Write,
    x_content_sha256: str | None = Header(None, description="Expected sha256; the upload is refused if it differs"),
) -> Response:
    """Upload the weights as the raw request body (application/octet-stream). The body streams through to
    storage; sha256 and size are computed on the way. Emits ArtifactStored."""
    return await _version(request).forward_stream(request, principal, f"/internal/models/{model_ref}/versions/{version}/artifact")


@router.post("/versions/{version}/artifact/uploads", status_code=201, responses=problems(401, 403, 404, 409, 422),
             openapi_extra=json_body(UploadCreate, required=False))
async def begin_upload(model_ref: str, version: str, request: Request, principal: Write) -> Response:
    """For large files on S3: a presigned PUT URL to upload to directly; then call ``complete``."""
    return await _version(request).forward(
        request, principal, f"/internal/models/{model_ref}/versions/{version}/artifact/uploads", body=await request.body())


@router.post("/versions/{version}/artifact/uploads/{upload_id}/complete", status_code=201,
             responses=problems(401, 403, 404, 409, 422), openapi_extra=json_body(UploadComplete))
async def complete_upload(model_ref: str, version: str, upload_id: str, request: Request, principal: Write) -> Response:
    """Verify the uploaded object's sha256 and size server-side and attach it to the version."""
    return await _version(request).forward(
        request, principal, f"/internal/models/{model_ref}/versions/{version}/artifact/uploads/{upload_id}/complete",
        body=await request.body())


@router.post("/versions/{version}/verify", responses=problems(401, 403, 404))
async def verify_artifact(model_ref: str, version: str, request: Request, principal: Read) -> Response:
    """Re-hash the stored artifact and compare it with the recorded sha256."""
    return await _version(request).forward(request, principal, f"/internal/models/{model_ref}/versions/{version}/verify")


@router.post("/versions/{version}/tags", responses=problems(401, 403, 404, 422), openapi_extra=json_body(TagsChange))
async def tag_version(model_ref: str, version: str, request: Request, principal: Write) -> Response:
    """Add and remove tags (stable, production, experimental, deprecated, backup, or free ones). Emits VersionTagged."""
    return await _version(request).forward(
        request, principal, f"/internal/models/{model_ref}/versions/{version}/tags", body=await request.body())


@router.post("/versions/{version}/metrics", responses=problems(401, 403, 404, 422),
             openapi_extra=json_body(MetricsRecord))
async def record_metrics(model_ref: str, version: str, request: Request, principal: Write) -> Response:
    """Merge measured metrics into a version. Emits VersionMetricsRecorded."""
    return await _version(request).forward(
        request, principal, f"/internal/models/{model_ref}/versions/{version}/metrics", body=await request.body())


@router.get("/aliases", responses=problems(401, 403, 404))
async def list_aliases(model_ref: str, request: Request, principal: Read) -> Response:
    return await _version(request).forward(request, principal, f"/internal/models/{model_ref}/aliases")


@router.put("/aliases/{alias}", responses=problems(401, 403, 404, 422), openapi_extra=json_body(AliasSetBody))
async def set_alias(model_ref: str, alias: str, request: Request, principal: Write) -> Response:
    """Point an alias (e.g. ``champion``) at a version; it moves atomically. Emits AliasSet."""
    return await _version(request).forward(
        request, principal, f"/internal/models/{model_ref}/aliases/{alias}", body=await request.body())


@router.delete("/aliases/{alias}", status_code=204, responses=problems(401, 403, 404))
async def remove_alias(model_ref: str, alias: str, request: Request, principal: Write) -> Response:
    return await _version(request).forward(request, principal, f"/internal/models/{model_ref}/aliases/{alias}")


@router.get("/retention", responses=problems(401, 403, 404))
async def get_retention(model_ref: str, request: Request, principal: Read) -> Response:
    return await _version(request).forward(request, principal, f"/internal/models/{model_ref}/retention")


@router.put("/retention", responses=problems(401, 403, 404, 422), openapi_extra=json_body(Retention))
async def set_retention(model_ref: str, request: Request, principal: Write) -> Response:
    """Opt in to keeping only the last N non-production versions (``{"keep_last": N}``; null turns it off)."""
    return await _version(request).forward(
        request, principal, f"/internal/models/{model_ref}/retention", body=await request.body())


@router.get("/download", responses=problems(401, 403, 404, 422))
async def download_link(
    model_ref: str, request: Request, principal: Read,
    version: str | None = Query(None, description="Default: the highest version with an artifact"),
    expires_in: int = Query(3600, ge=1, description="Seconds the link stays valid"),
) -> Response:
    """An expiring download link for a version's weights (seed 001 §5.1): an S3 presigned URL, or a
    gateway URL signed with HMAC when artifacts live in the folder store."""
    return await _version(request).forward(request, principal, f"/internal/models/{model_ref}/download",
                                           query=request.url.query)
