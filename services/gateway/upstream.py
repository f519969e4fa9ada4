"""Forwarding to the internal APIs. One pooled HTTP client per upstream; the principal travels as
headers the services trust only alongside the internal token.

``forward`` (every JSON call, the hot path) sends over ``KeepAlivePool``, a small HTTP/1.1 keep-alive
pool on asyncio streams: httpx's pool looks at every idle connection's socket on every request, which
cost the gateway over half of its CPU per forwarded call. The request head is built here too (``Outgoing``):
httpx's request building (URL parsing and normalisation) was another ~9 % of the gateway's CPU per create.
Artifact transfers (``forward_stream``) stream through the same pool both ways."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator
from urllib.parse import quote, urlsplit

import httpx
from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from libs.events.envelope import child_traceparent
from libs.kit.errors import BadRequest, UpstreamUnavailable
from services.gateway.keys import Principal

log = logging.getLogger(__name__)
_PASSED_REQUEST_HEADERS = ("content-type", "if-match", "accept")
_PASSED_RESPONSE_HEADERS = ("content-type", "etag", "location", "content-disposition", "cache-control",
                            "repr-digest", "content-length", "x-cairn-served-from",
                            # an HTML report keeps its own policy (its inline style), not the dashboard's
                            "content-security-policy")


#: What stays as is in a forwarded path and query; everything else is percent-encoded. Paths are built
#: from decoded route parameters, so a '%' in them is data ("%25"); a query is passed on as the client
#: encoded it, so its '%' escapes stay.
_PATH_SAFE = "/!$&'()*+,;=:@-._~"
_QUERY_SAFE = _PATH_SAFE + "?%"


class Outgoing:
    """A request to an upstream: method, request target (path and query, encoded) and header lines."""
    __slots__ = ("method", "target", "headers", "content")

    def __init__(self, method: str, target: bytes, headers: list[tuple[bytes, bytes]], content: bytes = b"") -> None:
        self.method, self.target, self.headers, self.content = method, target, headers, content


def outgoing(method: str, host: str, path: str, query: str | None, headers: dict[str, str],
             content: bytes | None = None) -> Outgoing:
    """The request for ``path`` (decoded) and ``query`` (as the client sent it). A body goes with its
    Content-Length; so does an empty POST, PUT or PATCH."""
    target = quote(path, safe=_PATH_SAFE)
    if query:
        raw = query.encode("latin-1") if query.isascii() or max(map(ord, query)) < 256 else query.encode()
        target += "?" + quote(raw, safe=_QUERY_SAFE)
    lines = [(b"host", host.encode())]
    lines += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    if content is not None or method in ("POST", "PUT", "PATCH"):
        lines.append((b"content-length", b"%d" % len(content or b"")))
    return Outgoing(method, target.encode(), lines, content or b"")


class UpstreamResponse:
    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: list[tuple[str, str]], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content


class _Connection:
    __slots__ = ("reader", "writer", "idle_since")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.idle_since = 0.0

    def usable(self, now: float, max_idle_s: float) -> bool:
        # closed by the server while idle (uvicorn drops keep-alive connections after 5 s)
        return not (self.reader.at_eof() or self.writer.is_closing() or now - self.idle_since > max_idle_s)

    def close(self) -> None:
        self.writer.close()


class KeepAlivePool:
    """HTTP/1.1 with keep-alive to one upstream of ours (uvicorn): request bodies by Content-Length,
    response bodies by Content-Length or chunked. A connection goes back to the pool only after a whole
    response was read; one interrupted in any way (timeout, cancellation, bad reply) is closed."""

    def __init__(self, base_url: str, *, max_idle: int = 64, max_idle_s: float = 4.0) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._idle: list[_Connection] = []
        self._max_idle, self._max_idle_s = max_idle, max_idle_s

    async def _take(self, connect_timeout: float) -> _Connection:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.usable(now, self._max_idle_s):
                return conn
            conn.close()
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, limit=_STREAM_LIMIT), connect_timeout)
        return _Connection(reader, writer)

    def _give_back(self, conn: _Connection) -> None:
        if len(self._idle) >= self._max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)

    async def send(self, request: Outgoing, *, timeout_s: float, connect_timeout_s: float) -> UpstreamResponse:
        head = _head(request)
        async with asyncio.timeout(timeout_s):
            conn = await self._take(connect_timeout_s)
            reusable = False
            try:
                conn.writer.write(head + request.content)
                response, reusable = await _read_response(conn.reader, request.method)
            finally:
                if reusable:
                    self._give_back(conn)
                else:
                    conn.close()
        return response

    async def stream(
        self, request: Outgoing, *, head_timeout_s: float, connect_timeout_s: float
    ) -> tuple[int, list[tuple[str, str]], AsyncIterator[bytes]]:
        """A bodiless request whose response body streams: status and headers now, the body as it comes
        (up to 1 MiB a piece). A body that ends short raises ``ConnectionError`` from the iterator."""
        head = _head(request)
        async with asyncio.timeout(head_timeout_s):
            conn = await self._take(connect_timeout_s)
            try:
                conn.writer.write(head)
                status, headers, length, chunked, keep_alive = await _read_head(conn.reader)
            except BaseException:
                conn.close()
                raise
        no_body = request.method == "HEAD" or status in (204, 304) or 100 <= status < 200

        async def body() -> AsyncIterator[bytes]:
            done = False
            try:
                if no_body:
                    pass
                elif chunked:
                    while size := int((await conn.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                        async for piece in _exactly(conn.reader, size):
                            yield piece
                        await conn.reader.readexactly(2)
                    while (await conn.reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                        pass
                elif length is not None:
                    async for piece in _exactly(conn.reader, length):
                        yield piece
                else:
                    while piece := await conn.reader.read(_STREAM_PIECE):
                        yield piece
                done = keep_alive and (length is not None or chunked or no_body)
            finally:
                if done:
                    self._give_back(conn)
                else:
                    conn.close()

        return status, headers, body()

    async def send_streamed(
        self, request: Outgoing, body: AsyncIterable[bytes], *, length: int | None,
        head_timeout_s: float, connect_timeout_s: float,
    ) -> UpstreamResponse:
        """A request whose body streams in from ``body`` (by Content-Length when ``length`` is known,
        chunked otherwise), written as it arrives with back-pressure; the (small) response read whole.
        If the client's body ends short or fails, the connection is closed, so the upstream sees the
        request cut and keeps nothing. An upstream that answers before the body ends (a refusal) is
        heard: its answer is returned and the connection is not reused."""
        head = _head(request, length=length)
        chunked = length is None
        conn = await asyncio.wait_for(self._take(connect_timeout_s), connect_timeout_s)
        reusable = False
        try:
            writer = conn.writer
            writer.write(head)
            try:
                async for chunk in body:
                    if not chunk:
                        continue
                    writer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                    if writer.transport.get_write_buffer_size() > _STREAM_PIECE:
                        await writer.drain()
                if chunked:
                    writer.write(b"0\r\n\r\n")
                body_sent = True
            except (ConnectionError, OSError):
                body_sent = False  # the upstream stopped reading: it may have answered already
            async with asyncio.timeout(head_timeout_s):
                response, reusable = await _read_response(conn.reader, request.method)
            reusable = reusable and body_sent
        finally:
            if reusable:
                self._give_back(conn)
            else:
                conn.close()
        return response

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


_STREAM_LIMIT = 1 << 20  # a connection's read buffer; streamed bodies move in pieces of up to this
_STREAM_PIECE = 1 << 20


_BODY_FRAMING = (b"content-length", b"transfer-encoding")


class IllegalHeader(ValueError):
    """A header value that would split or end the request head."""


def _head(request: Outgoing, *, length: int | None | bool = False) -> bytes:
    """The request line and headers. ``length``: False keeps the request's own framing (a body in hand);
    an int frames a streamed body by Content-Length, None as chunked."""
    head = [request.method.encode(), b" ", request.target, b" HTTP/1.1\r\n"]
    for name, value in request.headers:
        if b"\r" in value or b"\n" in value or b"\0" in value:
            raise IllegalHeader("illegal header value")
        if length is not False and name.lower() in _BODY_FRAMING:
            continue
        head += [name, b": ", value, b"\r\n"]
    if length is None:
        head.append(b"transfer-encoding: chunked\r\n")
    elif length is not False:
        head.append(b"content-length: %d\r\n" % length)
    head.append(b"\r\n")
    return b"".join(head)


async def _exactly(reader: asyncio.StreamReader, count: int) -> AsyncIterator[bytes]:
    while count > 0:
        piece = await reader.read(min(count, _STREAM_PIECE))
        if not piece:
            raise ConnectionError(f"the upstream closed the body {count} bytes short")
        count -= len(piece)
        yield piece


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, list[tuple[str, str]], int | None, bool, bool]:
    """Status, headers, Content-Length, whether chunked, whether the connection may be kept."""
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: list[tuple[str, str]] = []
    length: int | None = None
    chunked, keep_alive = False, True
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        headers.append((name, value))
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif name == "connection":
            keep_alive = "close" not in value.lower()
    return status, headers, length, chunked, keep_alive


async def _read_response(reader: asyncio.StreamReader, method: str) -> tuple[UpstreamResponse, bool]:
    """One response; and whether the connection may carry another request."""
    status, headers, length, chunked, keep_alive = await _read_head(reader)
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                break
            parts.append((await reader.readexactly(size + 2))[:-2])
        body = b"".join(parts)
    elif length is not None:
        body = await reader.readexactly(length)
    else:  # delimited by the end of the connection
        body, keep_alive = await reader.read(), False
    return UpstreamResponse(status, headers, body), keep_alive


def _content_length(value: str | None) -> int | None:
    """The client's declared length (uvicorn has already refused a malformed one)."""
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        length = -1
    if length < 0:
        raise BadRequest(f"content-length is not a length: {value!r}")
    return length


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
        self._timeout_s = timeout_s
        self.pool = KeepAlivePool(self.base_url)
        self._host = urlsplit(self.base_url).netloc

    def headers_for(self, request: Request | None, principal: Principal | None) -> dict[str, str]:
        headers = {"x-cairn-internal-token": self._token}
        if principal is not None:
            headers["x-cairn-actor"] = principal.name
            headers["x-cairn-role"] = principal.role
        if request is not None:
            headers["traceparent"] = child_traceparent(request.headers.get("traceparent"))
            headers["x-cairn-public-path"] = quote(request.url.path, safe=_PATH_SAFE)  # a URI reference
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
        sent = outgoing(method or request.method, self._host, path, query, self.headers_for(request, principal), body)
        try:
            upstream = await self.pool.send(sent, timeout_s=self._timeout_s, connect_timeout_s=5.0)
        except (httpx.TransportError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                TimeoutError, ValueError, IndexError) as exc:
            log.warning("upstream unreachable", extra={"upstream": self.name, "error": type(exc).__name__})
            raise UpstreamUnavailable(f"the {self.name} service is not reachable; try again shortly") from None
        headers = {k: v for k, v in upstream.headers if k in _PASSED_RESPONSE_HEADERS and k != "content-length"}
        return Response(upstream.content, status_code=upstream.status_code, headers=headers)

    async def forward_stream(self, request: Request, principal: Principal | None, path: str, *, query: str | None = None) -> Response:
        """Like ``forward`` but the request body and the response body stream through, never held whole.
        If the upstream aborts mid-body (an artifact failed its hash check), the client's response is
        aborted too, so a corrupted download never ends cleanly."""
        headers = self.headers_for(request, principal)
        if "content-length" in request.headers:
            headers["content-length"] = request.headers["content-length"]
        for name in ("x-content-sha256", "range"):
            if name in request.headers:
                headers[name] = request.headers[name]
        has_body = request.method in ("PUT", "POST")
        if not has_body:  # downloads: the keep-alive pool moves bodies in pieces of up to 1 MiB
            try:
                status, upstream_headers, chunks = await self.pool.stream(
                    outgoing(request.method, self._host, path, query, headers), head_timeout_s=self._timeout_s, connect_timeout_s=5.0)
            except (httpx.TransportError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    TimeoutError, ValueError, IndexError):
                raise UpstreamUnavailable(f"the {self.name} service is not reachable; try again shortly") from None
            return StreamingResponse(chunks, status_code=status,
                                     headers={k: v for k, v in upstream_headers if k in _PASSED_RESPONSE_HEADERS})
        # uploads: the body goes on as it arrives, over the same keep-alive pool
        length = _content_length(headers.pop("content-length", None))
        try:
            upstream = await self.pool.send_streamed(
                outgoing(request.method, self._host, path, query, headers), request.stream(), length=length, head_timeout_s=self._timeout_s, connect_timeout_s=5.0)
        except ClientDisconnect:  # the upstream saw its request cut short and kept nothing
            raise BadRequest("the client disconnected before the end of the body") from None
        except (httpx.TransportError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                TimeoutError, ValueError, IndexError):
            raise UpstreamUnavailable(f"the {self.name} service is not reachable; try again shortly") from None
        passed = {k: v for k, v in upstream.headers if k in _PASSED_RESPONSE_HEADERS and k != "content-length"}
        return Response(upstream.content, status_code=upstream.status_code, headers=passed)

    async def ready(self) -> str:
        try:
            response = await self.client.get("/readyz", timeout=2.0)
            return "ok" if response.status_code == 200 else f"error: {response.status_code}"
        except httpx.HTTPError as exc:
            return f"error: {type(exc).__name__}"

    async def close(self) -> None:
        self.pool.close()
        await self.client.aclose()
