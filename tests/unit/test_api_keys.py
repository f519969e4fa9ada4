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
