"""Who may do what: ``cairn.permissions`` (per-model grants) and ``cairn.keys`` (API keys).

    cairn.permissions.grant("digits-cnn", "alice", "write", expires_at=timedelta(days=30))
    cairn.permissions.check("digits-cnn", "publish")            # {"allowed": ..., "via": ...}
    new = cairn.keys.create("ci-bot", "editor", team="ml")
    store(new["token"].reveal())                               # shown once; repr(new) hides it

Keys and grants are POSTs without an Idempotency-Key (the gateway answers them itself), so the client
never repeats them on its own: a repeated create would issue a second key, a repeated rotate would throw
the first new secret away."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from libs.sdk.resources import _Area, _body, _seg
from libs.sdk.secret import Secret
from libs.sdk.types import AccessCheck, ApiKey, Grant, KeyCreated


def when(value: datetime | timedelta | str | None) -> str | None:
    """An expiry for the server: an aware datetime, a delay from now, or an RFC 3339 string as is."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, timedelta):
        value = datetime.now(timezone.utc) + value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware, e.g. datetime.now(timezone.utc) + timedelta(days=7)")
        return value.isoformat()
    raise TypeError(f"expires_at must be a datetime, a timedelta or an RFC 3339 string, not {type(value).__name__}")


def with_secret(answer: dict[str, Any]) -> KeyCreated:
    """Wrap the one-time token so that printing or logging the answer does not show it."""
    answer = dict(answer)
    if isinstance(answer.get("token"), str):
        answer["token"] = Secret(answer["token"])
    return answer  # type: ignore[return-value]


class PermissionsAPI(_Area):
    """Grants of ``read`` < ``write`` < ``publish`` < ``admin`` on one model, to a key name or ``team:<team>``.
    Managing a model's grants needs admin on it (a global admin, the owner, or an admin grant)."""

    def grant(self, model: str, principal: str, permission: str, *,
              expires_at: datetime | timedelta | str | None = None) -> Grant:
        """Grant (or renew, with a new expiry) ``permission``; emits PermissionGranted."""
        body = _body(principal=principal, permission=permission, expires_at=when(expires_at))
        return self._c.json("POST", f"/models/{_seg(model)}/permissions", json=body)

    def revoke(self, model: str, grant_id: str | None = None, *, principal: str | None = None,
               permission: str | None = None, reason: str | None = None) -> None:
        """Revoke one grant, by its id or by ``principal`` and ``permission``; emits PermissionRevoked."""
        base = f"/models/{_seg(model)}/permissions"
        if grant_id is not None:
            if principal is not None or permission is not None:
                raise ValueError("revoke takes a grant_id, or a principal and a permission, not both")
            path = f"{base}/{_seg(str(grant_id))}"
        elif principal is not None and permission is not None:
            path = f"{base}/{_seg(principal)}/{_seg(permission)}"
        else:
            raise ValueError("revoke needs a grant_id, or both a principal and a permission")
        return self._c.json("DELETE", path, params={"reason": reason})

    def list(self, model: str, principal: str | None = None, *, include_inactive: bool = False) -> list[Grant]:
        """The model's active grants (with ``include_inactive``, revoked and expired ones too)."""
        return self._c.json("GET", f"/models/{_seg(model)}/permissions",
                            params={"principal": principal, "include_inactive": include_inactive or None})

    def check(self, model: str, permission: str, principal: str | None = None) -> AccessCheck:
        """Would the caller (or ``principal``: needs admin on the model) hold ``permission``? ``allowed`` and
        ``via`` (role, owner, grant, team grant), with the grant and its expiry."""
        return self._c.json("GET", f"/models/{_seg(model)}/permissions/check",
                            params={"permission": permission, "principal": principal})

    def mine(self, principal: str | None = None, *, include_inactive: bool = False) -> list[Grant]:
        """Grants across models: the caller's own and its team's (another principal's: global admins only)."""
        return self._c.json("GET", "/permissions",
                            params={"principal": principal, "include_inactive": include_inactive or None})


class KeysAPI(_Area):
    """API keys (``keys:admin``, except rotating one's own key). New secrets come back as ``Secret``."""

    def create(self, name: str, role: str, *, team: str | None = None,
               expires_at: datetime | timedelta | str | None = None) -> KeyCreated:
        """Issue a key; ``token`` is shown once (``token.reveal()``). Emits ApiKeyCreated (no secret)."""
        return with_secret(self._c.json("POST", "/keys", json=self._create_body(name, role, team, expires_at)))

    def list(self) -> list[ApiKey]:
        """Every key with its ``status`` (active, expired, revoked); never a secret."""
        return self._c.json("GET", "/keys")

    def revoke(self, key_id: str) -> None:
        return self._c.json("DELETE", f"/keys/{_seg(key_id)}")

    def rotate(self, key_id: str | None = None, *, grace_s: int = 0) -> KeyCreated:
        """A new secret for the key (default: the one this client uses); the old one keeps working for
        ``grace_s`` seconds. When the rotated key is this client's, the client switches to the new secret."""
        key_id = self._own(key_id)
        answer = self._c.json("POST", f"/keys/{_seg(key_id)}/rotate", json={"grace_s": grace_s})
        return self._rotated(key_id, answer)

    # shared with the async variant

    @staticmethod
    def _create_body(name: str, role: str, team: str | None, expires_at: Any) -> dict[str, Any]:
        return _body(name=name, role=role, team=team, expires_at=when(expires_at))

    def _own(self, key_id: str | None) -> str:
        key_id = key_id or self._c.key_id
        if not key_id:
            raise ValueError("give the key_id to rotate (this client's API key is not a cairn_<key id>_... token)")
        return key_id

    def _rotated(self, key_id: str, answer: dict[str, Any]) -> KeyCreated:
        rotated = with_secret(answer)
        if key_id == self._c.key_id and isinstance(rotated.get("token"), Secret):
            self._c.use_api_key(rotated["token"])
        return rotated


class AsyncKeysAPI(KeysAPI):
    """``KeysAPI`` over ``AsyncCairn``: the methods that wrap the new secret are coroutines of their own."""

    async def create(self, name: str, role: str, *, team: str | None = None,  # type: ignore[override]
                     expires_at: datetime | timedelta | str | None = None) -> KeyCreated:
        return with_secret(await self._c.json("POST", "/keys", json=self._create_body(name, role, team, expires_at)))

    async def rotate(self, key_id: str | None = None, *, grace_s: int = 0) -> KeyCreated:  # type: ignore[override]
        key_id = self._own(key_id)
        answer = await self._c.json("POST", f"/keys/{_seg(key_id)}/rotate", json={"grace_s": grace_s})
        return self._rotated(key_id, answer)


__all__ = ["AsyncKeysAPI", "KeysAPI", "PermissionsAPI", "when", "with_secret"]
