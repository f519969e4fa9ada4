"""Forwarding to the internal APIs. One pooled HTTP client per upstream; the principal travels as
headers the services trust only alongside the internal token."""
from __future__ import annotations

import logging

import httpx
from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from libs.events.envelope import child_traceparent
from libs.kit.errors import UpstreamUnavailable
from services.gateway.keys import Principal

log = logging.getLogger(__name__)
_PASSED_REQUEST_HEADERS = ("content-type", "if-match", "accept")
_PASSED_RESPONSE_HEADERS = ("content-type", "etag", "location", "content-disposition", "cache-control",
                            "repr-digest", "content-length", "x-cairn-served-from")


class Upstream:
    def __init__(self, name: str, base_url: str, internal_token: str, timeout_s: float) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._token = internal_token
        self.client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=5.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    def headers_for(self, request: Request | None, principal: Principal | None) -> dict[str, str]:
        headers = {"x-cairn-internal-token": self._token}
        if principal is not None:
            headers["x-cairn-actor"] = principal.name
            headers["x-cairn-role"] = principal.role
        if request is not None:
            headers["traceparent"] = child_traceparent(request.headers.get("traceparent"))
            headers["x-cairn-public-path"] = request.url.path
            for name in _PASSED_REQUEST_HEADERS:
                if name in request.headers:
                    headers[name] = request.headers[name]
        return headers

    async def forward(
        self,
        request: Request,
        principal: Principal,
        path: str,
        *,
        body: bytes | None = None,
        method: str | None = None,
        query: str | None = None,
    ) -> Response:
        """Send the request on and hand back the upstream's answer (status, body, chosen headers)."""
        url = path + (f"?{query}" if query else "")
        try:
            upstream = await self.client.request(
                method or request.method, url, content=body, headers=self.headers_for(request, principal)
            )
        except httpx.TransportError as exc:
            log.warning("upstream unreachable", extra={"upstream": self.name, "error": type(exc).__name__})
            raise UpstreamUnavailable(f"the {self.name} service is not reachable; try again shortly") from None
        headers = {k: v for k, v in upstream.headers.items() if k in _PASSED_RESPONSE_HEADERS and k != "content-length"}
        return Response(upstream.content, status_code=upstream.status_code, headers=headers)

    async def forward_stream(self, request: Request, principal: Principal | None, path: str, *, query: str | None = None) -> Response:
        """Like ``forward`` but the request body and the response body stream through, never held whole.
        If the upstream aborts mid-body (an artifact failed its hash check), the client's response is
        aborted too, so a corrupted download never ends cleanly."""
        url = path + (f"?{query}" if query else "")
        headers = self.headers_for(request, principal)
        if "content-length" in request.headers:
            headers["content-length"] = request.headers["content-length"]
        for name in ("x-content-sha256", "range"):
            if name in request.headers:
                headers[name] = request.headers[name]
        has_body = request.method in ("PUT", "POST")
        upstream_request = self.client.build_request(
            request.method, url, headers=headers, content=request.stream() if has_body else None,
            timeout=httpx.Timeout(None, connect=5.0),
        )
        try:
            upstream = await self.client.send(upstream_request, stream=True)
        except httpx.TransportError:
            raise UpstreamUnavailable(f"the {self.name} service is not reachable; try again shortly") from None
        passed = {k: v for k, v in upstream.headers.items() if k in _PASSED_RESPONSE_HEADERS}

        async def body():
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()

        return StreamingResponse(body(), status_code=upstream.status_code, headers=passed)

    async def ready(self) -> str:
        try:
            response = await self.client.get("/readyz", timeout=2.0)
            return "ok" if response.status_code == 200 else f"error: {response.status_code}"
        except httpx.HTTPError as exc:
            return f"error: {type(exc).__name__}"

    async def close(self) -> None:
        await self.client.aclose()
