"""HTTP plumbing shared by every service: RFC 9457 problem+json for every error, a body-size limit,
and the internal-caller check (the gateway authenticates users; services trust only the gateway)."""
from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Annotated, Awaitable, Callable
from uuid import UUID

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.kit.errors import BadRequest, CairnError, FieldError, PayloadTooLarge, Unauthenticated, ValidationFailed

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"

#: Seed 001 lets clients name a weights file by ``model_path``. A path from a request never reaches the
#: server's file system, so the field is refused with the way that works instead.
MODEL_PATH_REFUSED = (
    "server-side paths are never read; create the version, then upload the weights with "
    "PUT /api/v1/models/{model}/versions/{version}/artifact (or the presigned upload)"
)


def _refuse_model_path(value: str | None) -> None:
    if value is not None:
        raise ValueError(MODEL_PATH_REFUSED)
    return None


#: The type of a body's ``model_path``: documented (deprecated) so clients see why, refused when given.
RefusedModelPath = Annotated[
    str | None,
    AfterValidator(_refuse_model_path),
    Field(description="Refused (seed 001 shape): " + MODEL_PATH_REFUSED, json_schema_extra={"deprecated": True}),
]

class ModelScope(BaseModel):
    """Body of the internal ``POST .../scoped`` listings (registry, search): the gateway restricts a listing
    to the models a caller may read (a caller whose role cannot read every model). Never built from user
    input."""

    model_config = ConfigDict(extra="forbid")
    model_ids: list[UUID] = Field(description="Only these models; empty: none")


async def read_model_scope(request: Request) -> list[UUID]:
    """The ``ModelScope`` the gateway sent, read whatever content type the forwarded request named (the
    gateway passes the client's, which has nothing to do with this body)."""
    try:
        return ModelScope.model_validate_json(await request.body() or b"{}").model_ids
    except ValidationError as exc:
        raise validation_error_from(exc.errors()) from None


_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "field required",
}


def problem_response(error: CairnError, instance: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error.problem(instance), status_code=error.status, media_type=PROBLEM, headers=headers)


def _field_path(loc: tuple) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_error_from(errors: list[dict]) -> CairnError:
    """Turn pydantic/FastAPI error dicts into one problem naming every bad field."""
    for err in errors:
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            return BadRequest(f"malformed JSON body: {ctx.get('error', err.get('msg'))}")
    fields = [FieldError(_field_path(tuple(e.get("loc", ()))),
                         _MESSAGES.get(e.get("type"), str(e.get("msg", "invalid")).removeprefix("Value error, ")))
              for e in errors]
    first = fields[0] if fields else FieldError("body", "invalid")
    more = f" (and {len(fields) - 1} more)" if len(fields) > 1 else ""
    return ValidationFailed(f"{first.field}: {first.message}{more}", errors=fields)


def public_path(request: Request) -> str:
    """The path the client asked for: internal services answer for the gateway, which names it."""
    return request.headers.get("x-cairn-public-path") or request.url.path


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(CairnError)
    async def _cairn(request: Request, exc: CairnError):
        return problem_response(exc, public_path(request))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return problem_response(validation_error_from(list(exc.errors())), public_path(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        body = {"type": f"https://cairn.dev/problems/{code}", "title": str(exc.detail), "status": exc.status_code,
                "code": code, "detail": str(exc.detail), "instance": public_path(request)}
        return JSONResponse(body, status_code=exc.status_code, media_type=PROBLEM, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error", extra={"path": request.url.path})
        return problem_response(CairnError("an unexpected error occurred; it has been logged"), public_path(request))


class BodyLimitMiddleware:
    """Refuses bodies over the limit with 413 before they are read whole. ``limit_for(path)`` may return
    None for routes that stream large bodies and enforce their own limit (artifact uploads)."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int | None]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        if limit is None:
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(scope, send, limit)
                    return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(f"request body exceeds {limit} bytes")
            return message

        await self.app(scope, counting_receive, send)

    async def _refuse(self, scope: Scope, send: Send, limit: int) -> None:
        response = problem_response(PayloadTooLarge(f"request body exceeds {limit} bytes"), scope["path"])
        await response(scope, lambda: None, send)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Caller:
    """Who asked, as vouched for by the gateway."""

    actor: str
    role: str
    traceparent: str | None


def internal_caller_dependency(token: str) -> Callable[[Request], Awaitable[Caller]]:
    """A FastAPI dependency: internal APIs answer only requests carrying the shared internal token."""
    expected = token.encode()

    async def caller(request: Request) -> Caller:  # no blocking I/O: keep it off the thread pool
        presented = request.headers.get("x-cairn-internal-token", "").encode()
        if not hmac.compare_digest(presented, expected):
            raise Unauthenticated("internal API: missing or wrong internal token")
        return Caller(
            actor=request.headers.get("x-cairn-actor", "system"),
            role=request.headers.get("x-cairn-role", "viewer"),
            traceparent=request.headers.get("traceparent"),
        )

    return caller


class Problem(BaseModel):
    """RFC 9457 problem details, as every error is returned."""

    type: str
    title: str
    status: int
    code: str
    detail: str
    instance: str | None = None
    errors: list[dict[str, str]] | None = None


def problems(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI ``responses`` entries for the given error statuses."""
    return {s: {"model": Problem, "content": {PROBLEM: {}}, "description": "Problem details"} for s in statuses}
