"""The production view in Redis. The gateway reads these keys directly; keep them exactly:

- ``cairn:prod:{model_id}:{environment}`` → the ProductionView JSON (TTL 1 hour);
- ``cairn:model-name:{lower(name)}`` → the model id (set from the model projection).

A view is written only if its ``revision`` is higher than the stored one (or nothing is stored), in
one Lua script, so an older view never overwrites a newer one. A private floor key
``cairn:prod-floor:{model_id}:{environment}`` remembers the lowest revision still acceptable once a
change is committed, so a reader that read Postgres just before a change cannot write its stale view
back after the key was deleted (also when the slot became empty and there is no view at all)."""
from __future__ import annotations

import logging
from uuid import UUID

import redis.asyncio as aioredis

from services.lifecycle.schemas import ProductionView

log = logging.getLogger(__name__)

TTL_S = 3600

#: KEYS: view, floor. ARGV: view JSON, its revision, ttl. Returns 1 if written.
_PUT = """
local rev = tonumber(ARGV[2])
local floor = redis.call('GET', KEYS[2])
if floor and tonumber(floor) and tonumber(floor) > rev then return 0 end
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and type(decoded) == 'table' and tonumber(decoded['revision']) and tonumber(decoded['revision']) >= rev then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[3]))
return 1
"""

#: KEYS: view, floor. ARGV: committed revision, ttl. Raises the floor; deletes an older view.
_INVALIDATE = """
local rev = tonumber(ARGV[1])
local floor = redis.call('GET', KEYS[2])
if (not floor) or (not tonumber(floor)) or tonumber(floor) < rev then
  redis.call('SET', KEYS[2], rev, 'EX', tonumber(ARGV[2]))
end
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if (not ok) or type(decoded) ~= 'table' or (tonumber(decoded['revision']) or -1) < rev then
    redis.call('DEL', KEYS[1])
    return 1
  end
end
return 0
"""

#: KEYS: name key. ARGV: model id. Deletes the name only if it still points at that model.
_FORGET_NAME = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def prod_key(model_id: UUID | str, environment: str) -> str:
    return f"cairn:prod:{model_id}:{environment}"


def floor_key(model_id: UUID | str, environment: str) -> str:
    return f"cairn:prod-floor:{model_id}:{environment}"


def name_key(name: str) -> str:
    return f"cairn:model-name:{name.lower()}"


class ProductionCache:
    def __init__(self, url: str) -> None:
        self._url = url
        self.redis: aioredis.Redis = None  # type: ignore[assignment]  # opened on start

    async def open(self) -> None:
        self.redis = aioredis.from_url(self._url)
        self._put = self.redis.register_script(_PUT)
        self._invalidate = self.redis.register_script(_INVALIDATE)
        self._forget = self.redis.register_script(_FORGET_NAME)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    async def get(self, model_id: UUID, environment: str) -> bytes | None:
        return await self.redis.get(prod_key(model_id, environment))

    async def put(self, view: ProductionView) -> bool:
        """Store ``view`` unless a view of the same or a newer revision is there (or was committed since)."""
        keys = [prod_key(view.model_id, view.environment), floor_key(view.model_id, view.environment)]
        return bool(await self._put(keys=keys, args=[view.model_dump_json(), view.revision, TTL_S]))

    async def invalidate(self, model_id: UUID, environment: str, revision: int) -> None:
        """After revision ``revision`` of the slot is committed: drop any older view, refuse older writes."""
        keys = [prod_key(model_id, environment), floor_key(model_id, environment)]
        await self._invalidate(keys=keys, args=[revision, TTL_S])

    async def model_id_for(self, name: str) -> UUID | None:
        raw = await self.redis.get(name_key(name))
        try:
            return UUID(raw.decode()) if raw else None
        except ValueError:
            return None

    async def set_model_name(self, name: str, model_id: UUID) -> None:
        await self.redis.set(name_key(name), str(model_id))

    async def forget_model_name(self, name: str, model_id: UUID) -> None:
        await self._forget(keys=[name_key(name)], args=[str(model_id)])

    async def ping(self) -> bool:
        return bool(await self.redis.ping())
