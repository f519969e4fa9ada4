"""A small HTTP/1.1 keep-alive client for load generation. The benchmark client shares the two cores
with the system it measures, so it must cost little per request: httpx spends ~1 ms of CPU per request,
this ~0.1 ms. One connection per worker, no pipelining; bodies by Content-Length or chunked. Only
for loopback benchmarks of servers we start ourselves; the scenarios still use httpx for set-up."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class Connection:
    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._fixed = f"Host: {self.host}:{self.port}\r\n{extra}".encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> "Connection":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None

    async def request(self, method: str, path: str, body: bytes | None = None,
                      content_type: str = "application/json", headers: dict[str, str] | None = None) -> Reply:
        for attempt in (1, 2):
            try:
                return await self._exchange(method, path, body, content_type, headers)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                await self.close()
                # a kept-alive connection the server closed before reading our request: once more, fresh
                if attempt == 2 or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, method: str, path: str, body: bytes | None, content_type: str,
                        headers: dict[str, str] | None) -> Reply:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self._fixed
        if headers:
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
        if body is not None:
            head += f"content-type: {content_type}\r\ncontent-length: {len(body)}\r\n".encode()
        self._writer.write(head + b"\r\n" + (body or b""))
        return await self._read_reply()

    async def _read_reply(self) -> Reply:
        assert self._reader is not None
        raw = await self._reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self._reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self._reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            body = b"".join(parts)
        else:
            body = b""
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Reply(status, headers, body)


async def _open(url: str, limit: int = 1 << 20) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str, str]:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port or 80, limit=limit)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return reader, writer, target, f"{parts.hostname}:{parts.port or 80}"


async def _head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ", 2)[1]), headers


async def upload(url: str, method: str, headers: dict[str, str], body, length: int) -> Reply:
    """Stream ``body`` (an async iterator of bytes, ``length`` in all) as one request on a fresh
    connection, writing each piece as it comes with back-pressure; the (small) reply read whole. The
    artifact scenarios use it for both systems: httpx's streamed upload cost the shared cores ~1 s of
    client CPU per 256 MiB."""
    reader, writer, target, host = await _open(url)
    try:
        head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\ncontent-length: {length}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(head.encode() + b"\r\n")
        async for piece in body:
            writer.write(piece)
            await writer.drain()
        status, reply_headers = await _head(reader)
        data = await reader.readexactly(int(reply_headers.get("content-length", "0")))
        return Reply(status, reply_headers, data)
    finally:
        writer.close()


async def download(url: str, headers: dict[str, str], sink) -> tuple[int, int]:
    """GET ``url`` on a fresh connection, handing every piece of the body (up to 1 MiB) to ``sink``;
    returns (status, bytes received). Content-Length or chunked bodies."""
    reader, writer, target, host = await _open(url)
    try:
        head = f"GET {target} HTTP/1.1\r\nHost: {host}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(head.encode() + b"\r\n")
        status, reply_headers = await _head(reader)
        received = 0
        if "content-length" in reply_headers:
            left = int(reply_headers["content-length"])
            while left:
                piece = await reader.read(min(left, 1 << 20))
                if not piece:
                    raise ConnectionError(f"the body ended {left} bytes short")
                sink(piece)
                received += len(piece)
                left -= len(piece)
        elif reply_headers.get("transfer-encoding", "").lower() == "chunked":
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                left = size
                while left:
                    piece = await reader.read(min(left, 1 << 20))
                    if not piece:
                        raise ConnectionError("the chunked body ended short")
                    sink(piece)
                    received += len(piece)
                    left -= len(piece)
                await reader.readexactly(2)
        else:
            while piece := await reader.read(1 << 20):
                sink(piece)
                received += len(piece)
        return status, received
    finally:
        writer.close()
