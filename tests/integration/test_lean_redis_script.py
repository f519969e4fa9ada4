"""The gateway's lean Redis client (libs/kit/resp.py) against the session's real Redis: the replies a script
gives, loading on NOSCRIPT, many concurrent calls on one connection answered in order, the database of
the URL, and a connection that Redis closes is opened again."""
from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from libs.kit.resp import LeanScript, RespError

pytestmark = pytest.mark.asyncio

ECHO = """
if ARGV[1] == 'nil' then return false end
if ARGV[1] == 'int' then return tonumber(ARGV[2]) end
if ARGV[1] == 'err' then return redis.error_reply('no such thing') end
if ARGV[1] == 'get' then return redis.call('GET', KEYS[1]) end
if ARGV[1] == 'array' then return {1, 2} end
return ARGV[2]
"""


def _db(url: str, db: int) -> str:
    """The same Redis, database ``db`` (a redis:// URL names it in the path, a unix:// one in the query)."""
    if url.startswith("unix://"):
        return f"{url.split('?')[0]}?db={db}"
    base, _, _ = url.rpartition("/")
    return f"{base}/{db}"


async def test_replies_noscript_and_order(infra):
    script = LeanScript.for_url(ECHO + f"-- {uuid.uuid4()}", infra.redis_url)  # a script Redis has not seen
    assert script is not None
    try:
        assert await script(args=["echo", "héllo"]) == "héllo".encode()
        assert await script(args=["nil", ""]) is None
        assert await script(args=["int", 42]) == 42
        with pytest.raises(RespError, match="no such thing"):
            await script(args=["err", ""])
        big = b"x" * 300_000  # a reply that arrives in many pieces
        key = f"lean:{uuid.uuid4()}"
        plain = aioredis.from_url(infra.redis_url)
        await plain.set(key, big)
        assert await script(keys=[key], args=["get", ""]) == big
        answers = await asyncio.gather(*(script(args=["echo", str(i)]) for i in range(500)))
        assert answers == [str(i).encode() for i in range(500)]
        # Redis drops the connection (only ours: other tests' clients share this Redis): the next call
        # opens a new one
        host, port = script._protocol.transport.get_extra_info("sockname")[:2]
        assert await plain.execute_command("CLIENT", "KILL", "ADDR", f"{host}:{port}")
        await asyncio.sleep(0.05)
        assert await script(args=["echo", "again"]) == b"again"
        # a reply it does not read (an array) fails that call and drops the connection; the next call works
        with pytest.raises(RespError, match="unexpected reply"):
            await script(args=["array", ""])
        assert await script(args=["echo", "after"]) == b"after"
        await plain.aclose()
    finally:
        script.close()


async def test_the_database_in_the_url_is_selected(infra):
    key = f"lean-db:{uuid.uuid4()}"
    other = aioredis.from_url(_db(infra.redis_url, 3))
    await other.set(key, b"in three")
    script = LeanScript.for_url(ECHO, _db(infra.redis_url, 3))
    try:
        assert await script(keys=[key], args=["get", ""]) == b"in three"
    finally:
        script.close()
        await other.delete(key)
        await other.aclose()


async def test_an_unreachable_redis_is_an_error_not_a_hang():
    script = LeanScript(ECHO, host="127.0.0.1", port=1, timeout_s=1)
    with pytest.raises(RespError):
        await script(args=["echo", "x"])
    assert LeanScript.for_url(ECHO, "rediss://example.test:6380/0") is None
