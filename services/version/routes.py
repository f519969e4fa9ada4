"""The version service's internal HTTP API, answered only for the gateway (internal token), except the
signed artifact links, whose HMAC signature is the authorisation."""

import re
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from libs.kit.errors import BadRequest
from libs.kit.http import Caller
from libs.storage.disposition import content_disposition
from services.version import domain
from services.version.handlers import StoredArtifact, VersionHandlers
from services.version.schemas import (
    AliasOut,
    AliasSetBody,
    AliasSetOut,
    ArtifactOut,
    DownloadOut,
    MetricsRecord,
    Retention,
    RetentionOut,
    TagsChange,
    UploadComplete,
    UploadCreate,
    UploadOut,
    VerifyOut,
    VersionCreate,
    VersionOut,
    VersionPage,
)
from services.version.store import VersionView

_UPLOAD_PATH = re.compile(r"^/internal/models/[^/]+/versions/[^/]+/artifact$")
ARTIFACTS_PREFIX = "/internal/artifacts/"


def is_streaming_path(path: str) -> bool:
    """Routes exempt from the JSON body limit: the artifact upload (it enforces max_artifact_bytes
    itself) and the artifact download."""
    return bool(_UPLOAD_PATH.match(path)) or path.startswith(ARTIFACTS_PREFIX)


def version_out(view: VersionView) -> VersionOut:
    return VersionOut(**view.version.state(), aliases=view.aliases, live_environments=view.live_environments,
                      stages=view.stages, status=view.stages.get("production", "draft"))


def artifact_out(stored: StoredArtifact) -> ArtifactOut:
    return ArtifactOut(**stored.artifact.model_dump(), deduplicated=stored.deduplicated)


def _content_length(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"content-length is not a number: {value!r}") from None


async def _body_chunks(request: Request):
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise BadRequest("the client disconnected before the end of the body") from None


def build_router(handlers: VersionHandlers, caller_dep) -> APIRouter:
    router = APIRouter(prefix="/internal/models/{model_ref}", tags=["versions"])
    CallerDep = Annotated[Caller, Depends(caller_dep)]

    # ---- versions -----------------------------------------------------------------------------------

    @router.post("/versions", status_code=201, response_model=VersionOut)
    async def create_version(model_ref: str, body: VersionCreate, caller: CallerDep, response: Response) -> VersionOut:
        view, created = await handlers.create(model_ref, domain.Creation(**{k: v for k, v in body if k != "model_path"}), caller)
        if not created:
            response.status_code = 200  # a retried training job: the version its first attempt made
        response.headers["Location"] = f"/api/v1/models/{view.version.model_id}/versions/{view.version.version}"
        return version_out(view)

    @router.get("/versions", response_model=VersionPage)
    async def list_versions(
        model_ref: str,
        caller: CallerDep,
        tag: Annotated[list[str] | None, Query(description="Only versions with this tag; repeat to require several")] = None,
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,
        page_size: Annotated[int, Query(ge=1, le=100)] = 20,
        order: Literal["asc", "desc"] = "desc",
    ) -> VersionPage:
        total, views = await handlers.list_versions(model_ref, tags=tag or [], order=order, page=page, page_size=page_size)
        return VersionPage(total=total, page=page, page_size=page_size, versions=[version_out(v) for v in views])

    @router.get("/versions/{version}", response_model=VersionOut)
    async def get_version(model_ref: str, version: str, caller: CallerDep) -> VersionOut:
        return version_out(await handlers.get(model_ref, version))

    @router.delete("/versions/{version}", status_code=204)
    async def delete_version(
        model_ref: str, version: str, caller: CallerDep,
        reason: Annotated[str, Query(max_length=500)] = "",
    ) -> Response:
        await handlers.delete(model_ref, version, caller, reason=reason)
        return Response(status_code=204)

    @router.post("/versions/{version}/tags", response_model=VersionOut)
    async def tag_version(model_ref: str, version: str, body: TagsChange, caller: CallerDep) -> VersionOut:
        return version_out(await handlers.tag(model_ref, version, body.add, body.remove, caller))

    @router.post("/versions/{version}/metrics", response_model=VersionOut)
    async def record_metrics(model_ref: str, version: str, body: MetricsRecord, caller: CallerDep) -> VersionOut:
        return version_out(await handlers.record_metrics(model_ref, version, body.metrics, body.source, caller))

    # ---- artifacts ----------------------------------------------------------------------------------

    @router.put("/versions/{version}/artifact", status_code=201, response_model=ArtifactOut)
    async def upload_artifact(
        model_ref: str, version: str, request: Request, caller: CallerDep,
        x_content_sha256: Annotated[str | None, Header()] = None,
        content_length: Annotated[str | None, Header()] = None,
    ) -> ArtifactOut:
        """The raw body is the artifact; it streams into storage and is hashed on the way."""
        stored = await handlers.store_artifact(
            model_ref, version, _body_chunks(request), caller,
            content_length=_content_length(content_length), expected_sha256=x_content_sha256,
        )
        return artifact_out(stored)

    @router.post("/versions/{version}/artifact/uploads", status_code=201, response_model=UploadOut)
    async def begin_upload(
        model_ref: str, version: str, caller: CallerDep, body: UploadCreate | None = None
    ) -> UploadOut:
        pending = await handlers.begin_upload(model_ref, version, (body or UploadCreate()).expires_in)
        detail = None
        if pending.url is None:
            detail = (f"this object store cannot presign uploads; stream the bytes to "
                      f"PUT /api/v1/models/{model_ref}/versions/{version}/artifact instead")
        return UploadOut(upload_id=pending.upload_id, upload_url=pending.url, expires_at=pending.expires_at, detail=detail)

    @router.post("/versions/{version}/artifact/uploads/{upload_id}/complete", status_code=201, response_model=ArtifactOut)
    async def complete_upload(
        model_ref: str, version: str, upload_id: str, body: UploadComplete, caller: CallerDep
    ) -> ArtifactOut:
        stored = await handlers.complete_upload(model_ref, version, upload_id, body.sha256, body.size, caller)
        return artifact_out(stored)

    @router.post("/versions/{version}/verify", response_model=VerifyOut)
    async def verify_artifact(model_ref: str, version: str, caller: CallerDep) -> VerifyOut:
        ok, artifact = await handlers.verify(model_ref, version)
        return VerifyOut(ok=ok, sha256=artifact.sha256, size=artifact.size)

    @router.get("/download", response_model=DownloadOut)
    async def download_link(
        model_ref: str, caller: CallerDep,
        version: Annotated[str | None, Query(max_length=128)] = None,
        expires_in: int = 3600,
    ) -> DownloadOut:
        return DownloadOut(**await handlers.download_link(model_ref, version, expires_in))

    # ---- aliases ------------------------------------------------------------------------------------

    @router.get("/aliases", response_model=list[AliasOut])
    async def list_aliases(model_ref: str, caller: CallerDep) -> list[AliasOut]:
        return [AliasOut(**dict(row)) for row in await handlers.aliases(model_ref)]

    @router.put("/aliases/{alias}", response_model=AliasSetOut)
    async def set_alias(model_ref: str, alias: str, body: AliasSetBody, caller: CallerDep) -> AliasSetOut:
        target, previous = await handlers.set_alias(model_ref, alias, body.version, caller)
        return AliasSetOut(alias=alias, version=target.version.version, version_id=target.version.id,
                           previous_version=previous)

    @router.delete("/aliases/{alias}", status_code=204)
    async def remove_alias(model_ref: str, alias: str, caller: CallerDep) -> Response:
        await handlers.remove_alias(model_ref, alias, caller)
        return Response(status_code=204)

    # ---- retention ----------------------------------------------------------------------------------

    @router.get("/retention", response_model=RetentionOut)
    async def get_retention(model_ref: str, caller: CallerDep) -> RetentionOut:
        model = await handlers.get_retention(model_ref)
        return RetentionOut(model_id=model.id, keep_last=model.keep_last)

    @router.put("/retention", response_model=RetentionOut)
    async def set_retention(model_ref: str, body: Retention, caller: CallerDep) -> RetentionOut:
        await handlers.set_retention(model_ref, body.keep_last, caller)
        model = await handlers.get_retention(model_ref)
        return RetentionOut(model_id=model.id, keep_last=model.keep_last)

    return router


def build_artifacts_router(handlers: VersionHandlers) -> APIRouter:
    """No internal token: the gateway forwards public requests here, and the signed link authorises them."""
    router = APIRouter(prefix="/internal/artifacts", tags=["artifacts"])

    @router.get("/{sha256}")
    async def download_artifact(
        sha256: str,
        expires: str | None = None,
        name: str | None = None,
        sig: str | None = None,
    ) -> StreamingResponse:
        stream = await handlers.open_artifact(sha256, expires, name, sig)
        return StreamingResponse(
            stream.chunks,
            media_type="application/octet-stream",
            headers={
                "content-length": str(stream.size),
                "content-disposition": content_disposition(stream.filename),
                "etag": f'"{stream.sha256}"',
                "repr-digest": stream.repr_digest,
                "cache-control": "private, max-age=0",
            },
        )

    return router
