"""First-start helper: make sure an admin key exists and is written to a file only its owner can read.

    python -m services.gateway.bootstrap /path/to/.cairn/admin-key
"""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from libs.kit.db import connect, create_pool
from libs.kit.migrate import migrate
from services.gateway import handlers, keys, store
from services.gateway.settings import GatewaySettings


async def _valid(pool, token: str) -> bool:
    parsed = keys.parse_token(token)
    if parsed is None:
        return False
    row = await store.get_active_key(pool, parsed[0])
    return row is not None and row["role"] == "admin" and keys.secret_matches(parsed[1], row["secret_hash"])


async def ensure_admin_key(settings: GatewaySettings, path: Path) -> bool:
    """Returns True when a new key was written, False when the existing file still holds a valid key."""
    dsn = settings.database_url.get_secret_value()
    conn = await connect(dsn)
    try:
        await migrate(conn, store.SCHEMA, Path(__file__).parent / "migrations", kit=("outbox",))
    finally:
        await conn.close()
    pool = await create_pool(dsn, max_size=2)
    try:
        if path.exists() and await _valid(pool, path.read_text().strip()):
            return False
        new = await handlers.create_key(pool, name="bootstrap-admin", role="admin", created_by="bootstrap")
    finally:
        await pool.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(new.token + "\n")
    os.replace(tmp, path)
    os.chmod(path, 0o600)
    return True


if __name__ == "__main__":
    target = Path(sys.argv[1])
    created = asyncio.run(ensure_admin_key(GatewaySettings(), target))
    print("created" if created else "kept")
