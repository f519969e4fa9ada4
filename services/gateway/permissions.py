"""Per-model permissions, pure: what a request needs on a model, and whether a principal has it.

Semantics (docs/architecture.md, Gateway):

- Roles are the global baseline (``keys.ROLE_PERMISSIONS``); a role that holds what a route needs passes
  on every model, and a global admin can do everything.
- A model grant *adds* rights on that one model: ``read`` < ``write`` < ``publish`` < ``admin``, each
  implying the ones before it. A grant to ``team:<team>`` covers every key of that team. The model's
  owner (its ``owner`` is the key's name, or ``team:<team>`` of the key) holds ``admin`` on it.
- What a route needs on its model follows from its permission: ``*:read`` → read, ``*:write`` → write,
  ``lifecycle:write`` → publish (every stage change, rollback, rollout step or promotion policy decides
  what runs in production), ``permissions:admin`` → admin. Stricter cases: moving or removing a protected
  alias needs publish, changing a model's owner needs admin, deleting a model is for its owner (or a
  global admin) only.
- Anything not granted is denied. Routes outside ``MODEL_AREAS`` or without ``{model_ref}`` only look
  at the role.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from services.gateway.keys import Principal, team_grantee

Level = Literal["read", "write", "publish", "admin"]
LEVELS: tuple[Level, ...] = ("read", "write", "publish", "admin")
OWNER = "owner"  # a need that only the model's owner meets (besides a global admin)

MODEL_AREAS = frozenset({"models", "versions", "lifecycle", "training", "evaluation", "permissions"})
MODEL_PATH = "/api/v1/models/{model_ref}"
ALIAS_PATH = "/api/v1/models/{model_ref}/aliases/{alias}"

#: The global permission that stands for each level on every model: a role holding it has that level
#: everywhere (used by the check endpoint to explain a role's share).
ROLE_BASELINE: dict[str, str] = {
    "read": "models:read", "write": "versions:write", "publish": "lifecycle:write", "admin": "permissions:admin",
}


def rank(level: str) -> int:
    return LEVELS.index(level)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Need:
    """What one request needs. A role holding every ``global_permissions`` passes; otherwise the principal
    needs ``level`` on the model (None: the route is not about one model, so only the role counts)."""

    permission: str
    global_permissions: frozenset[str]
    level: str | None
    why: str = ""


def need_for(
    permission: str, *, method: str, route_path: str, path_params: dict[str, str],
    protected_aliases: frozenset[str] | set[str] = frozenset(), owner_change: bool = False,
) -> Need:
    area, _, action = permission.partition(":")
    if "model_ref" not in path_params or area not in MODEL_AREAS:
        return Need(permission, frozenset({permission}), None)
    if method == "DELETE" and route_path == MODEL_PATH:
        return Need(permission, frozenset({permission, "models:delete"}), OWNER,
                    "only the model's owner or an admin may delete it")
    if owner_change:
        return Need(permission, frozenset({permission, "permissions:admin"}), "admin",
                    "changing a model's owner needs admin on it")
    if action == "read":
        return Need(permission, frozenset({permission}), "read")
    if area == "permissions":
        return Need(permission, frozenset({permission}), "admin")
    if area == "lifecycle":
        return Need(permission, frozenset({permission}), "publish")
    alias = path_params.get("alias")
    if route_path == ALIAS_PATH and alias in protected_aliases:
        return Need(permission, frozenset({permission, "lifecycle:write"}), "publish",
                    f"alias {alias!r} is protected")
    return Need(permission, frozenset({permission}), "write")


@dataclass(frozen=True)
class Grant:
    grant_id: UUID
    principal: str
    permission: str
    expires_at: datetime | None

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


@dataclass(frozen=True)
class ModelAccess:
    """A model as authorisation sees it, with the grants that cover one principal."""

    model_id: UUID
    name: str
    owner: str
    grants: tuple[Grant, ...] = ()


@dataclass(frozen=True)
class Decision:
    allowed: bool
    via: str | None = None  # role, owner, grant, team grant
    grant: Grant | None = None
    reason: str = ""


def is_owner(principal: Principal, model: ModelAccess) -> bool:
    return model.owner == principal.name or (principal.team is not None and model.owner == team_grantee(principal.team))


def effective(principal: Principal, model: ModelAccess, now: datetime) -> tuple[int, str | None, Grant | None]:
    """The highest level the principal holds on the model through ownership or grants (-1: none)."""
    if is_owner(principal, model):
        return rank("admin"), "owner", None
    best: tuple[int, str | None, Grant | None] = (-1, None, None)
    for grant in model.grants:
        if grant.principal not in principal.grantees or not grant.active(now):
            continue
        level = rank(grant.permission)
        longer = best[2] is not None and (grant.expires_at is None or (
            best[2].expires_at is not None and grant.expires_at > best[2].expires_at))
        if level > best[0] or (level == best[0] and longer):
            via = "team grant" if grant.principal != principal.name else "grant"
            best = (level, via, grant)
    return best


def decide(principal: Principal, need: Need, model: ModelAccess | None, now: datetime) -> Decision:
    if principal.can_all(need.global_permissions):
        return Decision(True, "role")
    missing = sorted(need.global_permissions - {p for p in need.global_permissions if principal.can(p)})
    lacks = f"role {principal.role} lacks permission {', '.join(missing)}"
    if need.level is None:
        return Decision(False, reason=lacks)
    if model is None:
        return Decision(False, reason=f"{lacks}, and no grant covers this model")
    if need.level == OWNER:
        if is_owner(principal, model):
            return Decision(True, "owner")
        return Decision(False, reason=f"{lacks}; {need.why} ({model.name!r} belongs to {model.owner})")
    level, via, grant = effective(principal, model, now)
    if level >= rank(need.level):
        return Decision(True, via, grant)
    because = f" ({need.why})" if need.why else ""
    return Decision(False, reason=f"{lacks}, and {principal.name} holds no {need.level} grant on model "
                                  f"{model.name!r}{because}")


def delegation_limit(principal: Principal, model: ModelAccess, now: datetime) -> tuple[bool, datetime | None]:
    """Whether the principal may manage the model's grants, and the latest expiry it may give (None: any).
    Delegation never gives more than the delegator holds: a key whose admin comes from an expiring grant
    may only grant until that grant ends."""
    if principal.can("permissions:admin") or is_owner(principal, model):
        return True, None
    admin = [g for g in model.grants
             if g.principal in principal.grantees and g.permission == "admin" and g.active(now)]
    if not admin:
        return False, None
    if any(g.expires_at is None for g in admin):
        return True, None
    return True, max(g.expires_at for g in admin)  # type: ignore[type-var]
