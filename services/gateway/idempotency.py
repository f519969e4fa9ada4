"""Idempotency-Key for POST, kept in Redis. A retried POST with the same key (and the same body)
gets the first response back; the same key with a different body is refused; a retry while the first
is still running gets 409. Keys are scoped to the API key that sent them."""
from __future__ import annotations

import base64
import hashlib
from typing import Awaitable, Callable

import orjson
from fastapi import Request, Response

from libs.kit.errors import Conflict, FieldError, ValidationFailed

_PENDING_TTL_S = 60
_KEPT_HEADERS = ("content-type", "location", "etag")


def _fingerprint(request: Request, body: bytes) -> str:
    return hashlib.sha256(request.method.encode() + b" " + request.url.path.encode() + b"\n" + body).hexdigest()


async def idempotent(
    request: Request, principal_key: str, body: bytes, call: Callable[[], Awaitable[Response]], *, redis, ttl_s: int
) -> Response:
    key = request.headers.get("idempotency-key")
    if key is None:
        return await call()
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise ValidationFailed("Idempotency-Key: 1-255 printable characters",
                               errors=[FieldError("header.Idempotency-Key", "1-255 printable characters")])
    name = f"idem:{principal_key}:{hashlib.sha256(key.encode()).hexdigest()}"
    fingerprint = _fingerprint(request, body)
    claimed = await redis.set(name, orjson.dumps({"state": "pending", "fp": fingerprint}), nx=True, ex=_PENDING_TTL_S)
    if not claimed:
        stored = await redis.get(name)
        if stored is None:  # expired between our two calls; treat as a fresh request
            return await idempotent(request, principal_key, body, call, redis=redis, ttl_s=ttl_s)
        record = orjson.loads(stored)
        if record["fp"] != fingerprint:
            raise ValidationFailed(
                "Idempotency-Key was already used for a different request",
                errors=[FieldError("header.Idempotency-Key", "reused with a different request")],
            )
        if record["state"] == "pending":
            raise Conflict("a request with this Idempotency-Key is still being processed; retry later")
        headers = dict(record["headers"])
        headers["idempotent-replayed"] = "true"
        return Response(base64.b64decode(record["body"]), status_code=record["status"], headers=headers)
    try:
        response = await call()
    except BaseException:
        await redis.delete(name)
        raise
    if response.status_code >= 500:
        await redis.delete(name)  # not a result worth replaying; let the client retry
        return response
    record = {
        "state": "done",
        "fp": fingerprint,
        "status": response.status_code,
        "headers": {k: v for k, v in response.headers.items() if k in _KEPT_HEADERS},
        "body": base64.b64encode(response.body).decode(),
    }
    await redis.set(name, orjson.dumps(record), ex=ttl_s)
    return response
