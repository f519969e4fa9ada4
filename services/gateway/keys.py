"""API keys and roles, pure. A key reads ``cairn_<key id>_<secret>``; only sha256(secret) is stored.
A plain hash (not bcrypt) is enough because secrets are 256 random bits, and it keeps the
authentication of every request cheap."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Role = Literal["guest", "viewer", "editor", "auditor", "admin"]
ROLES: tuple[Role, ...] = ("guest", "viewer", "editor", "auditor", "admin")

#: What every key may do about itself: see who it is and its grants, check its access, rotate its secret.
_SELF = {"account:read", "account:write"}
_READ = {"models:read", "versions:read", "lifecycle:read", "training:read", "evaluation:read", "search:read"}
_WRITE = {"models:write", "versions:write", "lifecycle:write", "training:write", "evaluation:write"}
#: Global-admin-only: manage keys, grants on any model, delete any model, scrape the gateway's metrics.
_ADMIN = {"audit:read", "keys:admin", "permissions:admin", "models:delete", "metrics:read"}

#: Deny unless allowed: a permission not listed for a role is refused. ``guest`` holds nothing beyond
#: itself globally; it works only with what model grants give it (``services/gateway/permissions.py``).
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "guest": frozenset(_SELF),
    "viewer": frozenset(_SELF | _READ),
    "editor": frozenset(_SELF | _READ | _WRITE),
    "auditor": frozenset(_SELF | _READ | {"audit:read"}),
    "admin": frozenset(_SELF | _READ | _WRITE | _ADMIN),
}

_TOKEN = re.compile(r"^cairn_(?P<key_id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")
KEY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"
TEAM_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
TEAM_PREFIX = "team:"


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    role: str
    team: str | None = None
    expires_at: datetime | None = None

    def can(self, permission: str) -> bool:
        return permission in ROLE_PERMISSIONS.get(self.role, frozenset())

    def can_all(self, permissions: frozenset[str]) -> bool:
        held = ROLE_PERMISSIONS.get(self.role, frozenset())
        return permissions <= held

    @property
    def grantees(self) -> tuple[str, ...]:
        """The grant subjects that cover this key: its name, and its team (grants to a team apply to members)."""
        return (self.name, team_grantee(self.team)) if self.team else (self.name,)


def team_grantee(team: str) -> str:
    return f"{TEAM_PREFIX}{team}"


@dataclass(frozen=True)
class NewKey:
    key_id: str
    token: str
    secret_hash: str


@dataclass(frozen=True)
class StoredKey:
    """What authentication needs of a key row: the principal, the current secret's hash, and the previous
    secret's hash while a rotation's grace period lasts."""

    principal: Principal
    secret_hash: str
    previous_hash: str | None = None
    previous_valid_until: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.principal.expires_at is not None and self.principal.expires_at <= now

    def accepts(self, secret: str, now: datetime) -> bool:
        if secret_matches(secret, self.secret_hash):
            return True
        in_grace = self.previous_hash is not None and self.previous_valid_until is not None and now < self.previous_valid_until
        return in_grace and secret_matches(secret, self.previous_hash)  # type: ignore[arg-type]


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(key_id: str) -> NewKey:
    """A fresh secret for ``key_id`` (a new key, or a rotation of an existing one)."""
    secret = secrets.token_urlsafe(32)
    return NewKey(key_id=key_id, token=f"cairn_{key_id}_{secret}", secret_hash=hash_secret(secret))


def generate_key() -> NewKey:
    return new_secret(secrets.token_hex(6))


def parse_token(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed token, else None."""
    match = _TOKEN.match(token)
    return (match["key_id"], match["secret"]) if match else None


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
