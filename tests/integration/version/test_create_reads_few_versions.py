"""A create reads only the versions that decide it (the highest release and above, plus an explicit
version's and the parent's), not the whole history. For every kind of create, on histories with
releases, pre-releases above and below them, and build metadata, the domain reaches the same answer
from that subset as from every version of the model."""
from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timezone

import pytest

from services.version import domain, store

pytestmark = pytest.mark.asyncio

HISTORIES = [
    [],
    ["1.0.0-rc.1"],
    ["1.0.0-alpha.1", "1.0.0-beta.1", "1.0.0-beta.2"],
    ["1.0.0", "1.0.1", "1.1.0-beta.1", "1.1.0-beta.2", "0.9.0"],
    ["1.0.0", "2.0.0-rc.1", "1.5.0", "1.6.0-alpha.1", "1.5.1+build.3"],
    ["1.0.0", "1.1.0", "1.2.0", "3.0.0", "2.5.0-beta.4", "3.0.1-rc.2", "3.1.0-alpha.1"],
    [f"1.{i}.0" for i in range(30)] + ["1.30.0-rc.1", "1.29.1-beta.1"],
]
COMMANDS = [
    dict(),
    *({"bump": b} for b in ("major", "minor", "patch")),
    *({"prerelease": p} for p in ("alpha", "beta", "rc")),
    *({"bump": b, "prerelease": p} for b, p in itertools.product(("major", "minor", "patch"), ("beta", "rc"))),
    {"version": "1.0.0"}, {"version": "1.1.0-beta.2+x"}, {"version": "0.9.0"}, {"version": "7.0.0"},
    {"version": "1.5.1"},
]
PARENTS = [None, "1.0.0", "0.9.0", "1.5.1+build.3", "9.9.9"]


def outcome(existing: list[domain.SemVer], cmd: dict, parent: str | None) -> str:
    try:
        domain.check_parent_version(parent, existing)
        return str(domain.next_version(existing, **cmd))
    except Exception as exc:  # the refusal is part of the outcome
        return f"{type(exc).__name__}: {getattr(exc, 'detail', exc)}"


async def test_the_subset_decides_every_create_like_the_whole_history(versions):
    pool = versions.pool(versions.folder)
    async with pool.acquire() as conn:
        for history in HISTORIES:
            model_id = uuid.uuid4()
            await conn.execute("INSERT INTO version.models (id, name, revision, registered_at) VALUES ($1, $2, 1, $3)",
                               model_id, f"subset-{model_id.hex[:8]}", datetime.now(timezone.utc))
            for text in history:
                v = domain.SemVer.parse(text)
                await conn.execute(
                    "INSERT INTO version.versions (id, model_id, version, sort_key, version_type, created_by, created_at)"
                    " VALUES ($1, $2, $3, $4, 'release', 'tests', now())", uuid.uuid4(), model_id, text, v.sort_key())
            every = [domain.SemVer.parse(t) for t in history]
            for cmd, parent in itertools.product(COMMANDS, PARENTS):
                explicit = domain.SemVer.parse(cmd["version"]) if "version" in cmd else None
                subset = await store.versions_deciding_create(
                    conn, model_id, explicit=explicit, parent=domain.SemVer.parse(parent) if parent else None)
                assert outcome(subset, cmd, parent) == outcome(every, cmd, parent), (history, cmd, parent)
            if len(history) > 10:  # a long history of releases: only the top of it is read
                assert len(await store.versions_deciding_create(conn, model_id, explicit=None, parent=None)) <= 3
