"""API key format and role permissions, pure."""
from __future__ import annotations

from services.gateway import keys


def test_generated_tokens_parse_and_match_only_their_hash():
    new = keys.generate_key()
    key_id, secret = keys.parse_token(new.token)
    assert key_id == new.key_id
    assert keys.secret_matches(secret, new.secret_hash)
    assert not keys.secret_matches(secret + "x", new.secret_hash)
    assert new.token not in new.secret_hash


def test_malformed_tokens_do_not_parse():
    for token in ("", "cairn_", "cairn_zzzzzzzzzzzz_" + "a" * 43, "other_0123456789ab_" + "a" * 43,
                  "cairn_0123456789ab_short"):
        assert keys.parse_token(token) is None


def test_deny_unless_allowed():
    viewer = keys.Principal("k", "v", "viewer")
    admin = keys.Principal("k", "a", "admin")
    stranger = keys.Principal("k", "s", "not-a-role")
    assert viewer.can("models:read") and not viewer.can("models:write") and not viewer.can("audit:read")
    assert admin.can("keys:admin") and admin.can("audit:read")
    assert not stranger.can("models:read")
    assert not admin.can("made:up")


# ---- expiry and rotation -------------------------------------------------------------------------------

from datetime import datetime, timedelta, timezone  # noqa: E402
from uuid import uuid4  # noqa: E402

from services.gateway import permissions  # noqa: E402
from services.gateway.permissions import Grant, ModelAccess, Need  # noqa: E402

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=timezone.utc)


def test_guest_holds_only_itself_and_only_admins_hold_the_admin_rights():
    guest = keys.Principal("k", "g", "guest")
    assert guest.can("account:read") and guest.can("account:write") and not guest.can("models:read")
    for role in ("viewer", "editor", "auditor"):
        held = keys.ROLE_PERMISSIONS[role]
        assert not held & {"keys:admin", "permissions:admin", "models:delete", "metrics:read"}, role


def test_a_rotated_key_accepts_the_old_secret_only_during_its_grace_period():
    old, new = keys.generate_key(), keys.new_secret("0123456789ab")
    old_secret, new_secret = keys.parse_token(old.token)[1], keys.parse_token(new.token)[1]
    principal = keys.Principal("0123456789ab", "bot", "viewer")
    graced = keys.StoredKey(principal, new.secret_hash, old.secret_hash, NOW + timedelta(minutes=5))
    assert graced.accepts(new_secret, NOW) and graced.accepts(old_secret, NOW)
    assert not graced.accepts(old_secret, NOW + timedelta(minutes=5))
    cut = keys.StoredKey(principal, new.secret_hash)
    assert cut.accepts(new_secret, NOW) and not cut.accepts(old_secret, NOW)
    assert new.token.startswith("cairn_0123456789ab_") and keys.parse_token(new.token)


def test_expiry_is_exclusive_of_the_instant():
    stored = keys.StoredKey(keys.Principal("k", "n", "viewer", expires_at=NOW), "h")
    assert not stored.expired(NOW - timedelta(microseconds=1)) and stored.expired(NOW)
    assert not keys.StoredKey(keys.Principal("k", "n", "viewer"), "h").expired(NOW)


# ---- per-model permissions ---------------------------------------------------------------------------


def _need(permission: str, method: str = "GET", path: str = "/api/v1/models/{model_ref}/versions", **params) -> Need:
    return permissions.need_for(permission, method=method, route_path=path,
                                path_params={"model_ref": "m", **params}, protected_aliases={"production"})


def test_what_each_kind_of_route_needs_on_its_model():
    assert _need("versions:read").level == "read"
    assert _need("versions:write", "POST").level == "write"
    assert _need("lifecycle:write", "POST", "/api/v1/models/{model_ref}/versions/{version}/publish").level == "publish"
    assert _need("permissions:admin", "POST", "/api/v1/models/{model_ref}/permissions").level == "admin"
    delete = _need("models:write", "DELETE", "/api/v1/models/{model_ref}")
    assert delete.level == "owner" and delete.global_permissions == {"models:write", "models:delete"}
    alias = permissions.ALIAS_PATH
    assert _need("versions:write", "PUT", alias, alias="candidate").level == "write"
    protected = _need("versions:write", "PUT", alias, alias="production")
    assert protected.level == "publish" and "lifecycle:write" in protected.global_permissions
    transfer = permissions.need_for("models:write", method="PATCH", route_path=permissions.MODEL_PATH,
                                    path_params={"model_ref": "m"}, owner_change=True)
    assert transfer.level == "admin" and "permissions:admin" in transfer.global_permissions
    # not about one model: only the role counts
    assert permissions.need_for("models:read", method="GET", route_path="/api/v1/models", path_params={}).level is None
    assert _need("audit:read").level is None


def _model(*grants: Grant, owner: str = "alice") -> ModelAccess:
    return ModelAccess(model_id=uuid4(), name="bert", owner=owner, grants=grants)


def test_grants_add_rights_levels_imply_lower_and_teams_inherit():
    bob = keys.Principal("k", "bob", "guest", team="nlp")
    write = _need("versions:write", "POST")
    publish = _need("lifecycle:write", "POST", "/api/v1/models/{model_ref}/versions/{version}/publish")
    assert not permissions.decide(bob, write, _model(), NOW).allowed
    team_publish = _model(Grant(uuid4(), "team:nlp", "publish", None))
    decision = permissions.decide(bob, write, team_publish, NOW)
    assert decision.allowed and decision.via == "team grant"
    assert permissions.decide(bob, publish, team_publish, NOW).allowed
    admin_need = _need("permissions:admin", "POST", "/api/v1/models/{model_ref}/permissions")
    assert not permissions.decide(bob, admin_need, team_publish, NOW).allowed
    other_team = _model(Grant(uuid4(), "team:vision", "admin", None))
    assert not permissions.decide(bob, write, other_team, NOW).allowed
    expired = _model(Grant(uuid4(), "bob", "admin", NOW))
    assert not permissions.decide(bob, write, expired, NOW).allowed
    assert not permissions.decide(bob, write, None, NOW).allowed  # unknown model: denied


def test_roles_are_the_baseline_and_delete_is_for_owners():
    editor = keys.Principal("k", "eve", "editor")
    admin = keys.Principal("k", "root", "admin")
    delete = _need("models:write", "DELETE", "/api/v1/models/{model_ref}")
    assert permissions.decide(editor, _need("versions:write", "POST"), None, NOW).via == "role"
    refused = permissions.decide(editor, delete, _model(Grant(uuid4(), "eve", "admin", None)), NOW)
    assert not refused.allowed and "owner" in refused.reason and "alice" in refused.reason
    assert permissions.decide(keys.Principal("k", "alice", "guest"), delete, _model(), NOW).via == "owner"
    assert permissions.decide(keys.Principal("k", "x", "guest", team="core"), delete, _model(owner="team:core"), NOW).allowed
    assert permissions.decide(admin, delete, None, NOW).allowed


def test_delegation_is_bounded_by_the_delegators_own_admin_grant():
    carol = keys.Principal("k", "carol", "guest")
    ends = NOW + timedelta(hours=1)
    assert permissions.delegation_limit(carol, _model(), NOW) == (False, None)
    assert permissions.delegation_limit(carol, _model(Grant(uuid4(), "carol", "publish", None)), NOW) == (False, None)
    assert permissions.delegation_limit(carol, _model(Grant(uuid4(), "carol", "admin", ends)), NOW) == (True, ends)
    forever = _model(Grant(uuid4(), "carol", "admin", ends), Grant(uuid4(), "carol", "admin", None))
    assert permissions.delegation_limit(carol, forever, NOW) == (True, None)
    assert permissions.delegation_limit(keys.Principal("k", "alice", "guest"), _model(), NOW) == (True, None)
    assert permissions.delegation_limit(keys.Principal("k", "root", "admin"), _model(), NOW) == (True, None)
