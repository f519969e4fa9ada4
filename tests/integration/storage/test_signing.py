"""HMAC link signing: what a genuine link passes, and every way a forged or stale one fails."""
from __future__ import annotations

import pytest

from libs.storage.signing import LinkExpired, LinkInvalid, sign_link, verify_link

SECRET = b"0123456789abcdef0123456789abcdef"
PATH = "/v1/blobs/" + "ab" * 32
EXPIRES = 1_700_000_600
NOW = 1_700_000_000


def test_a_genuine_link_verifies_until_it_expires() -> None:
    token = sign_link(PATH, EXPIRES, SECRET, extra={"filename": "model.pt"})
    verify_link(PATH, EXPIRES, token, SECRET, NOW, extra={"filename": "model.pt"})
    verify_link(PATH, EXPIRES, token, SECRET, EXPIRES - 1, extra={"filename": "model.pt"})


def test_the_token_is_url_safe_and_deterministic() -> None:
    token = sign_link(PATH, EXPIRES, SECRET)
    assert token == sign_link(PATH, EXPIRES, SECRET)
    assert len(token) == 43 and all(c.isalnum() or c in "-_" for c in token)


def test_an_expired_link_is_refused() -> None:
    token = sign_link(PATH, EXPIRES, SECRET)
    with pytest.raises(LinkExpired):
        verify_link(PATH, EXPIRES, token, SECRET, EXPIRES)
    with pytest.raises(LinkExpired):
        verify_link(PATH, EXPIRES, token, SECRET, EXPIRES + 3600)


@pytest.mark.parametrize(
    ("path", "expires_at", "extra"),
    [
        ("/v1/blobs/" + "cd" * 32, EXPIRES, {"filename": "model.pt"}),  # another blob
        (PATH + "/", EXPIRES, {"filename": "model.pt"}),
        (PATH, EXPIRES + 86_400, {"filename": "model.pt"}),  # a longer life
        (PATH, EXPIRES - 1, {"filename": "model.pt"}),
        (PATH, EXPIRES, {"filename": "evil.exe"}),  # another download name
        (PATH, EXPIRES, {}),  # a dropped parameter
        (PATH, EXPIRES, {"filename": "model.pt", "size": "1"}),  # an added one
    ],
    ids=["path", "path-suffix", "later-expiry", "earlier-expiry", "extra-value", "extra-dropped", "extra-added"],
)
def test_tampering_with_any_signed_field_is_detected(path: str, expires_at: int, extra: dict[str, str]) -> None:
    token = sign_link(PATH, EXPIRES, SECRET, extra={"filename": "model.pt"})
    with pytest.raises(LinkInvalid):
        verify_link(path, expires_at, token, SECRET, NOW, extra=extra)


def test_fields_cannot_bleed_into_each_other() -> None:
    token = sign_link("/a", EXPIRES, SECRET, extra={"b": "c"})
    with pytest.raises(LinkInvalid):
        verify_link("/a", EXPIRES, token, SECRET, NOW, extra={"b=c": ""})
    with pytest.raises(LinkInvalid):
        verify_link("/a", EXPIRES, token, SECRET, NOW, extra={"": "b=c"})


def test_a_token_from_another_secret_is_refused() -> None:
    token = sign_link(PATH, EXPIRES, b"another secret of 32 bytes......")
    with pytest.raises(LinkInvalid):
        verify_link(PATH, EXPIRES, token, SECRET, NOW)


def test_a_forged_token_is_refused_even_when_expired() -> None:
    # The signature is checked first: a forger learns nothing from the expiry.
    with pytest.raises(LinkInvalid):
        verify_link(PATH, EXPIRES, sign_link(PATH, EXPIRES, SECRET)[:-1] + "A", SECRET, EXPIRES + 1)


@pytest.mark.parametrize("token", ["", "not base64!", "A" * 44, "====", "\u00e9" * 43])
def test_malformed_tokens_are_invalid_not_errors(token: str) -> None:
    with pytest.raises(LinkInvalid):
        verify_link(PATH, EXPIRES, token, SECRET, NOW)


def test_a_token_with_padding_or_stray_characters_is_refused() -> None:
    token = sign_link(PATH, EXPIRES, SECRET)
    for variant in (token + "=", token[:20] + "\n" + token[20:], token[:20] + "*" + token[20:]):
        with pytest.raises(LinkInvalid):
            verify_link(PATH, EXPIRES, variant, SECRET, NOW)


def test_weak_secrets_and_bad_times_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        sign_link(PATH, EXPIRES, b"short")
    with pytest.raises(ValueError):
        sign_link(PATH, EXPIRES, b"")
    with pytest.raises(TypeError):
        sign_link(PATH, float(EXPIRES), SECRET)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sign_link(PATH, True, SECRET)  # type: ignore[arg-type]
