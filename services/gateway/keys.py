"""API keys and roles, pure. A key reads ``cairn_<key id>_<secret>``; only sha256(secret) is stored.
A plain hash (not bcrypt) is enough because secrets are 256 random bits, and it keeps the
authentication of every request cheap."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Literal

Role = Literal["viewer", "editor", "auditor", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "editor", "auditor", "admin")

_READ = {"models:read", "versions:read", "lifecycle:read", "training:read", "evaluation:read", "search:read"}
_WRITE = {"models:write", "versions:write", "lifecycle:write", "training:write", "evaluation:write"}

#: Deny unless allowed: a permission not listed for a role is refused.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset(_READ),
    "editor": frozenset(_READ | _WRITE),
    "auditor": frozenset(_READ | {"audit:read"}),
    "admin": frozenset(_READ | _WRITE | {"audit:read", "keys:admin"}),
}

_TOKEN = re.compile(r"^cairn_(?P<key_id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    role: str

    def can(self, permission: str) -> bool:
        return permission in ROLE_PERMISSIONS.get(self.role, frozenset())


@dataclass(frozen=True)
class NewKey:
    key_id: str
    token: str
    secret_hash: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_key() -> NewKey:
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return NewKey(key_id=key_id, token=f"cairn_{key_id}_{secret}", secret_hash=hash_secret(secret))


def parse_token(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed token, else None."""
    match = _TOKEN.match(token)
    return (match["key_id"], match["secret"]) if match else None


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
