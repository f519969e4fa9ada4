"""The gateway's keep-alive pool against a real uvicorn server: every way a response can be delimited,
connections reused only after a whole response, never after an interrupted one, and a server that went
away answers as unreachable."""
from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

from services.gateway.upstream import IllegalHeader, KeepAlivePool, Outgoing, outgoing
from tests.support.servers import serve

pytestmark = pytest.mark.asyncio


def _app() -> FastAPI:
    app = FastAPI()
    app.state.peers = []

    @app.api_route("/echo/{name}", methods=["GET", "POST", "HEAD"])
    async def echo(name: str, request: Request) -> Response:
        app.state.peers.append(request.client.port)
        body = await request.body()
        return Response(f"{name}|{request.url.query}|{request.headers.get('x-test')}|".encode() + body,
                        headers={"etag": '"1"'})

    @app.get("/chunked")
    async def chunked() -> StreamingResponse:
        async def parts():
            for i in range(5):
                yield f"part{i};".encode() * 1000
        return StreamingResponse(parts(), media_type="text/plain")

    @app.delete("/empty")
    async def empty() -> Response:
        return Response(status_code=204)

    @app.get("/slow")
    async def slow() -> Response:
        await asyncio.sleep(5)
        return Response(b"late")

    return app


def _request(method: str, url: str, *, content: bytes | None = None, headers: dict[str, str] | None = None) -> Outgoing:
    parts = urlsplit(url)
    return outgoing(method, parts.netloc, parts.path, parts.query, headers or {}, content)


async def test_responses_of_every_framing_and_connection_reuse():
    server = await serve(_app())
    pool = KeepAlivePool(server.url)
    try:
        send = lambda req: pool.send(req, timeout_s=10, connect_timeout_s=5)  # noqa: E731
        got = await send(_request("POST", f"{server.url}/echo/a b?x=1", content=b"body", headers={"x-test": "t"}))
        assert got.status_code == 200 and got.content == b"a b|x=1|t|body" and ("etag", '"1"') in got.headers
        for i in range(3):
            again = await send(_request("GET", f"{server.url}/echo/n{i}"))
            assert again.content == f"n{i}||None|".encode()
        assert len(set(server.app.state.peers)) == 1  # one connection carried all four
        head = await send(_request("HEAD", f"{server.url}/echo/h"))
        assert head.status_code == 200 and head.content == b""
        chunked = await send(_request("GET", f"{server.url}/chunked"))
        assert chunked.content == b"".join(f"part{i};".encode() * 1000 for i in range(5))
        assert (await send(_request("DELETE", f"{server.url}/empty"))).status_code == 204
        # the connection survived every framing: the next request still uses it
        await send(_request("GET", f"{server.url}/echo/last"))
        assert len(set(server.app.state.peers)) == 1
        # an illegal header value is refused before anything is sent
        with pytest.raises(IllegalHeader):
            await send(_request("GET", f"{server.url}/echo/x", headers={"x-test": "a\r\nx-evil: 1"}))
        # a timed-out request's connection is not reused: the next one opens a new connection
        with pytest.raises(TimeoutError):
            await pool.send(_request("GET", f"{server.url}/slow"), timeout_s=0.2, connect_timeout_s=5)
        await send(_request("GET", f"{server.url}/echo/after"))
        assert len(set(server.app.state.peers)) == 2
    finally:
        pool.close()
        await server.stop()
    with pytest.raises(OSError):
        await KeepAlivePool(server.url).send(_request("GET", f"{server.url}/echo/gone"), timeout_s=5, connect_timeout_s=5)


async def test_streamed_bodies_arrive_whole_and_a_short_one_fails():
    app = _app()

    @app.get("/big")
    async def big() -> Response:
        return Response(bytes(range(256)) * 20_000)  # ~5 MiB, Content-Length

    @app.get("/short")
    async def short() -> StreamingResponse:
        async def parts():
            yield b"x" * 1000
            raise RuntimeError("the hash did not match")  # uvicorn drops the connection mid-body
        return StreamingResponse(parts(), headers={"content-length": "5000"})

    server = await serve(app)
    pool = KeepAlivePool(server.url)
    try:
        async def fetch(path: str) -> tuple[int, bytes]:
            status, _, chunks = await pool.stream(_request("GET", f"{server.url}{path}"), head_timeout_s=10,
                                                  connect_timeout_s=5)
            return status, b"".join([piece async for piece in chunks])

        assert await fetch("/big") == (200, bytes(range(256)) * 20_000)
        assert await fetch("/chunked") == (200, b"".join(f"part{i};".encode() * 1000 for i in range(5)))
        assert (await fetch("/echo/s"))[1] == b"s||None|"
        assert len(set(server.app.state.peers)) == 1
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await fetch("/short")
        assert (await fetch("/echo/t"))[1] == b"t||None|"  # a fresh connection after the broken one
    finally:
        pool.close()
        await server.stop()


async def test_streamed_request_bodies_by_length_and_chunked_and_an_early_refusal_is_heard():
    app = _app()

    @app.put("/sink")
    async def sink(request: Request) -> Response:
        app.state.peers.append(request.client.port)
        digest, size = __import__("hashlib").sha256(), 0
        async for piece in request.stream():
            digest.update(piece)
            size += len(piece)
        return Response(f"{size}:{digest.hexdigest()}:{request.headers.get('transfer-encoding')}".encode())

    @app.put("/refuse")
    async def refuse() -> Response:
        return Response(b"too big", status_code=413)  # answers without reading the body

    server = await serve(app)
    pool = KeepAlivePool(server.url)
    blocks = [bytes([i]) * 300_000 for i in range(20)]  # 6 MB in pieces, as a client's upload arrives
    expected = __import__("hashlib").sha256(b"".join(blocks)).hexdigest()

    async def body():
        for block in blocks:
            yield block

    try:
        put = lambda path, length: pool.send_streamed(  # noqa: E731
            _request("PUT", f"{server.url}{path}", headers={"content-length": "1"}), body(), length=length,
            head_timeout_s=10, connect_timeout_s=5)
        by_length = await put("/sink", 6_000_000)
        assert (by_length.status_code, by_length.content) == (200, f"6000000:{expected}:None".encode())
        chunked = await put("/sink", None)
        assert (chunked.status_code, chunked.content) == (200, f"6000000:{expected}:chunked".encode())
        assert len(set(server.app.state.peers)) == 1  # both on one kept-alive connection

        refused = await put("/refuse", 6_000_000)
        assert (refused.status_code, refused.content) == (413, b"too big")
        assert (await put("/sink", 6_000_000)).status_code == 200  # not on the refused connection's leftovers
    finally:
        pool.close()
        await server.stop()


async def test_a_client_body_that_fails_midway_cuts_the_upstream_request():
    app = _app()
    seen: list[str] = []

    @app.put("/sink")
    async def sink(request: Request) -> Response:
        try:
            async for _ in request.stream():
                pass
        except Exception as exc:  # starlette's ClientDisconnect: the request was cut
            seen.append(type(exc).__name__)
            raise
        seen.append("whole")
        return Response(b"kept")

    server = await serve(app)
    pool = KeepAlivePool(server.url)

    async def failing():
        yield b"x" * 100_000
        raise RuntimeError("the client went away")

    try:
        with pytest.raises(RuntimeError):
            await pool.send_streamed(_request("PUT", f"{server.url}/sink"), failing(), length=1_000_000,
                                     head_timeout_s=10, connect_timeout_s=5)
        for _ in range(50):
            if seen:
                break
            await asyncio.sleep(0.05)
        assert seen == ["ClientDisconnect"]
    finally:
        pool.close()
        await server.stop()


async def test_the_request_target_encodes_decoded_paths_and_keeps_the_clients_query():
    sent = outgoing("GET", "127.0.0.1:9", "/internal/models/a b%/versions", "tag=x%20y&q=ü", {})
    assert sent.target == b"/internal/models/a%20b%25/versions?tag=x%20y&q=%FC"
    assert (b"host", b"127.0.0.1:9") in sent.headers and all(n != b"content-length" for n, _ in sent.headers)
    posted = outgoing("POST", "h", "/p", None, {"content-type": "application/json"})
    assert posted.target == b"/p" and (b"content-length", b"0") in posted.headers
