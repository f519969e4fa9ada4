"""A lean Redis client for one hot call: EVALSHA of a known script over one pipelined connection.

redis-py's asyncio client spends ~200 µs of CPU per call on this machine (connection pool, command
packing, its parser, retry wrappers); the deployers' production lookup makes one such call per request,
about a third of the gateway's CPU for it. This client keeps one connection, writes each call as it comes
and hands replies back in order (Redis answers a connection's commands in order), so concurrent requests
share the socket. It understands the replies a script returns (bulk string, nil, integer, simple string,
error); anything else, a lost connection or a timeout raises ``RespError`` and the connection is dropped,
to be opened again by the next call. Plain TCP or a unix socket, with AUTH and SELECT; no TLS (``for_url``
says None, and the caller keeps redis-py)."""
from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio.connection import parse_url


class RespError(Exception):
    """The call did not get a usable reply."""


class _ReplyError(RespError):
    """Redis answered with an error (``-ERR ...``, ``-NOSCRIPT ...``)."""


def _command(*parts: bytes | str | int) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future] = deque()
        self.buffer = bytearray()
        self.lost = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self._fail(RespError("the Redis connection closed"))

    def _fail(self, error: RespError) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.waiting:
            try:
                parsed = _parse(self.buffer)
            except (RespError, ValueError) as exc:  # a reply we do not read: this connection is done
                self._fail(RespError(str(exc)))
                return
            if parsed is None:
                return
            value, used = parsed
            del self.buffer[:used]
            future = self.waiting.popleft()
            if not future.done():
                if isinstance(value, _ReplyError):
                    future.set_exception(value)
                else:
                    future.set_result(value)


def _parse(buffer: bytearray) -> tuple[Any, int] | None:
    """One reply from the front of ``buffer`` and the bytes it took, or None while it is incomplete."""
    end = buffer.find(b"\r\n")
    if end < 0:
        return None
    kind, line = buffer[:1], bytes(buffer[1:end])
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, end + 2
        start, stop = end + 2, end + 2 + size
        if len(buffer) < stop + 2:
            return None
        return bytes(buffer[start:stop]), stop + 2
    if kind == b"+":
        return line, end + 2
    if kind == b":":
        return int(line), end + 2
    if kind == b"-":
        return _ReplyError(line.decode(errors="replace")), end + 2
    raise RespError(f"unexpected reply type {kind!r}")  # arrays etc.: not what our scripts return


class LeanScript:
    """``await script(keys, args)`` like redis-py's registered script: EVALSHA, loading it on NOSCRIPT."""

    def __init__(self, source: str, *, host: str | None = None, port: int = 6379, path: str | None = None,
                 password: str | None = None, username: str | None = None, db: int = 0,
                 timeout_s: float = 2.0) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._where = dict(host=host, port=port, path=path)
        self._login = [(b"AUTH", *([username] if username else []), password)] if password else []
        self._db = db
        self._timeout_s = timeout_s
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    @classmethod
    def for_url(cls, source: str, url: str) -> "LeanScript | None":
        """From a redis:// or unix:// URL, read as redis-py reads it; None for anything else (rediss://: TLS
        stays with redis-py)."""
        if urlsplit(url).scheme not in ("redis", "unix"):
            return None
        options = parse_url(url)
        return cls(source, host=options.get("host", "127.0.0.1"), port=options.get("port", 6379),
                   path=options.get("path"), password=options.get("password"), username=options.get("username"),
                   db=options.get("db", 0))

    async def __call__(self, keys: list = (), args: list = ()) -> Any:  # type: ignore[assignment]
        try:
            return await self._call(b"EVALSHA", self.sha, len(keys), *keys, *args)
        except _ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            return await self._call(b"EVAL", self.source, len(keys), *keys, *args)

    async def _call(self, *parts) -> Any:
        return await self._on(await self._connection(), parts)

    async def _on(self, protocol: _Protocol, parts) -> Any:
        future = asyncio.get_running_loop().create_future()
        protocol.waiting.append(future)
        protocol.transport.write(_command(*parts))
        try:
            return await asyncio.wait_for(future, self._timeout_s)
        except (TimeoutError, RespError) as exc:
            if not isinstance(exc, _ReplyError):
                self._drop(protocol)  # replies may now arrive out of step with the queue: start over
            raise exc if isinstance(exc, RespError) else RespError("Redis did not answer in time") from None

    async def _connection(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and not protocol.lost:
            return protocol
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._protocol is not None and not self._protocol.lost:
                return self._protocol
            loop = asyncio.get_running_loop()
            try:
                if self._where["path"]:
                    _, protocol = await asyncio.wait_for(
                        loop.create_unix_connection(_Protocol, self._where["path"]), self._timeout_s)
                else:
                    _, protocol = await asyncio.wait_for(
                        loop.create_connection(_Protocol, self._where["host"], self._where["port"]), self._timeout_s)
            except (OSError, TimeoutError) as exc:
                raise RespError(f"cannot reach Redis: {type(exc).__name__}") from None
            try:
                for command in [*self._login, *([(b"SELECT", self._db)] if self._db else [])]:
                    await self._on(protocol, command)  # before anyone else may use the connection
            except RespError:
                self._drop(protocol)
                raise
            self._protocol = protocol
            return protocol

    def _drop(self, protocol: _Protocol) -> None:
        if protocol.transport is not None:
            protocol.transport.close()
        protocol.lost = True
        if self._protocol is protocol:
            self._protocol = None

    def close(self) -> None:
        if self._protocol is not None:
            self._drop(self._protocol)
