"""The SDK's own behaviour against a fake transport (``httpx.MockTransport``), no servers: retries and
Idempotency-Keys, integrity of downloads, error shapes, and how new API key secrets are kept out of
reprs, logs and JSON. The SDK against the real gateway: tests/integration/test_sdk_cli.py and
test_sdk_permissions.py."""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import pickle
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from libs.sdk import AsyncCairn, Cairn, CairnAPIError, CairnIntegrityError, Secret

KEY_ID = "0123456789ab"
OWN_TOKEN = f"cairn_{KEY_ID}_" + "A" * 43
NEW_TOKEN = f"cairn_{KEY_ID}_" + "Z" * 43
NEW_SECRET = "Z" * 43


def test_the_sdk_checks_downloaded_bytes_itself(tmp_path):
    """Defence in depth against a link that serves other bytes than the registry recorded (a stale
    cache, a wrong presigned object): the SDK hashes what arrives and refuses to save it."""
    recorded = b"the weights the registry recorded"
    served = b"something else of the same size!!"
    assert len(served) == len(recorded)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/models/m/download":
            return httpx.Response(200, json={
                "model_id": str(uuid.uuid4()), "version": "1.0.0", "download_url": "https://objects.test/blob",
                "expires_at": "2030-01-01T00:00:00Z", "sha256": hashlib.sha256(recorded).hexdigest(),
                "size": len(recorded), "filename": "m-1.0.0.bin"})
        assert "authorization" not in request.headers, "the API key must not travel to the link's host"
        return httpx.Response(200, content=served)

    with Cairn("http://gateway.test", "cairn_k_secret", transport=httpx.MockTransport(handler)) as cairn:
        with pytest.raises(CairnIntegrityError, match="does not match"):
            cairn.artifacts.download("m", dest=str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_safe_requests_are_retried_and_creates_carry_one_idempotency_key():
    """A create gets an Idempotency-Key of its own, so retrying it after a lost answer cannot create twice;
    the same key is sent on every attempt. A rate-limited request waits as long as the server asks."""
    seen: list[tuple[str, str | None]] = []
    answers = iter([
        httpx.ConnectError("gateway restarting"),
        httpx.Response(503, json={"type": "https://cairn.dev/problems/upstream_unavailable", "title": "Unavailable",
                                  "status": 503, "detail": "the registry service is not reachable"}),
        httpx.Response(201, json={"model_id": str(uuid.uuid4()), "name": "m"}),
        httpx.Response(429, headers={"retry-after": "0"}, json={"title": "Too many requests", "status": 429}),
        httpx.Response(200, json={"total": 0, "page": 1, "page_size": 20, "models": []}),
    ])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.headers.get("idempotency-key")))
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    with Cairn("http://gateway.test", "cairn_k_secret", transport=httpx.MockTransport(handler)) as cairn:
        assert cairn.models.register("m", "classification")["name"] == "m"
        assert cairn.models.list()["total"] == 0
    keys = {key for method, key in seen[:3]}
    assert [m for m, _ in seen] == ["POST", "POST", "POST", "GET", "GET"]
    assert len(keys) == 1 and None not in keys


def test_a_post_without_an_idempotency_key_is_not_repeated():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(503, json={"title": "Service unavailable", "status": 503, "detail": "try again"})

    with Cairn("http://gateway.test", "cairn_k_secret", transport=httpx.MockTransport(handler)) as cairn:
        with pytest.raises(CairnAPIError) as refused:
            cairn.lifecycle.transition("m", "1.0.0", "staging")
    assert refused.value.status == 503 and len(calls) == 1


def test_search_on_a_gateway_without_it_and_errors_that_are_not_problems():
    """An older gateway takes ``search`` for a model name; the SDK says what is really missing. A proxy's
    HTML error page still becomes a CairnAPIError with its status."""
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/models/search":
            return httpx.Response(404, headers={"content-type": "application/problem+json"}, json={
                "type": "https://cairn.dev/problems/not_found", "title": "Not found", "status": 404,
                "code": "not_found", "detail": "model 'search' not found", "instance": "/api/v1/models/search"})
        return httpx.Response(502, headers={"content-type": "text/html"}, text="<html>Bad gateway</html>")

    with Cairn("http://gateway.test", "cairn_k_secret", retries=0, transport=httpx.MockTransport(handler)) as cairn:
        with pytest.raises(CairnAPIError, match="Search not available") as missing:
            cairn.search("bert")
        with pytest.raises(CairnAPIError) as proxied:
            cairn.models.get("m")
    assert missing.value.status == 404 and "GET /api/v1/models/search" in missing.value.detail
    assert proxied.value.status == 502 and "Bad gateway" in proxied.value.detail
    assert "secret" not in repr(cairn) and repr(cairn).endswith("api_key=set)")


# -- keys: the new secret stays out of sight --------------------------------------------------------


class FakeGateway:
    """Answers the key and permission routes like the gateway does, and records what was asked."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path, method = request.url.path, request.method
        key = {"key_id": KEY_ID, "name": "ci-bot", "role": "editor", "team": "ml", "expires_at": None,
               "token": NEW_TOKEN}
        if method == "POST" and path == "/api/v1/keys":
            return httpx.Response(201, json={**key, **json.loads(request.content)})
        if method == "POST" and path.endswith("/rotate"):
            key_id = path.split("/")[-2]
            return httpx.Response(200, json={**key, "key_id": key_id, "token": f"cairn_{key_id}_{NEW_SECRET}",
                                             "previous_valid_until": None})
        if method == "GET" and path.endswith("/permissions/check"):
            return httpx.Response(200, json={"model_id": str(uuid.uuid4()), "model_name": "x", "allowed": True,
                                             "via": "grant", "principal": request.url.params.get("principal", "me"),
                                             "permission": request.url.params["permission"], "reason": ""})
        if method == "DELETE":
            return httpx.Response(204)
        if method == "GET":
            return httpx.Response(200, json=[])
        if method == "POST" and path.endswith("/permissions"):
            return httpx.Response(201, json={"grant_id": str(uuid.uuid4()), **json.loads(request.content)})
        return httpx.Response(404, json={"status": 404, "title": "Not found"})

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


def test_a_created_key_secret_never_shows_in_repr_str_json_pickle_or_logs(caplog):
    fake = FakeGateway()
    caplog.set_level(logging.DEBUG)  # httpx and httpcore log every request and answer at DEBUG
    with Cairn("http://gateway.test", OWN_TOKEN, transport=httpx.MockTransport(fake)) as cairn:
        created = cairn.keys.create("ci-bot", "editor", team="ml")
        logging.getLogger("app").info("created %s / %r / %s", created, created, created["token"])
    token = created["token"]
    assert isinstance(token, Secret) and token.reveal() == NEW_TOKEN and token.key_id == KEY_ID
    for shown in (repr(created), str(created), f"{token}", f"{token:>20}", "%s" % token, caplog.text):
        assert NEW_SECRET not in shown
    assert "**********" in repr(created)
    with pytest.raises(TypeError):
        json.dumps(created)
    with pytest.raises(TypeError):
        pickle.dumps(created)
    assert copy.deepcopy(created)["token"] == token  # copies stay secrets, equal by value
    # the request asked for what was given, without an Idempotency-Key (the route has none: no replays)
    assert json.loads(fake.last.content) == {"name": "ci-bot", "role": "editor", "team": "ml"}
    assert "idempotency-key" not in fake.last.headers


def test_key_creates_and_rotations_are_never_retried():
    """A second try would issue a second key, or rotate again and lose the first new secret."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(503, json={"title": "Service unavailable", "status": 503})

    with Cairn("http://gateway.test", OWN_TOKEN, transport=httpx.MockTransport(handler)) as cairn:
        for call in (lambda: cairn.keys.create("x", "viewer"), lambda: cairn.keys.rotate("fedcba987654")):
            with pytest.raises(CairnAPIError):
                call()
    assert calls == ["/api/v1/keys", "/api/v1/keys/fedcba987654/rotate"]


def test_rotating_its_own_key_switches_the_client_to_the_new_secret():
    fake = FakeGateway()
    with Cairn("http://gateway.test", OWN_TOKEN, transport=httpx.MockTransport(fake)) as cairn:
        other = cairn.keys.rotate("fedcba987654", grace_s=60)  # someone else's key: nothing changes here
        cairn.keys.list()
        assert json.loads(fake.requests[0].content) == {"grace_s": 60}
        assert fake.last.headers["authorization"] == f"Bearer {OWN_TOKEN}"
        assert other["token"].key_id == "fedcba987654"

        mine = cairn.keys.rotate()  # no id: the client's own key
        cairn.keys.list()
    assert fake.requests[2].url.path == f"/api/v1/keys/{KEY_ID}/rotate"
    assert json.loads(fake.requests[2].content) == {"grace_s": 0}
    assert fake.last.headers["authorization"] == f"Bearer {mine['token'].reveal()}"
    assert cairn.key_id == KEY_ID and repr(cairn).endswith("api_key=set)")
    with Cairn("http://gateway.test", "not-a-cairn-token", transport=httpx.MockTransport(fake)) as odd:
        with pytest.raises(ValueError, match="key_id"):
            odd.keys.rotate()


def test_a_secret_is_accepted_as_the_api_key():
    fake = FakeGateway()
    with Cairn("http://gateway.test", Secret(OWN_TOKEN), transport=httpx.MockTransport(fake)) as cairn:
        cairn.keys.list()
    assert fake.last.headers["authorization"] == f"Bearer {OWN_TOKEN}"


# -- permissions: paths, parameters, expiries ------------------------------------------------------


def test_permission_requests_name_the_model_principal_and_level_in_escaped_paths():
    fake = FakeGateway()
    with Cairn("http://gateway.test", OWN_TOKEN, transport=httpx.MockTransport(fake)) as cairn:
        cairn.permissions.revoke("digits cnn", "6f1c0d5e-0000-4000-8000-000000000001", reason="left the team")
        by_id = fake.last
        cairn.permissions.revoke("m", principal="team:ml", permission="write")
        by_subject = fake.last
        cairn.permissions.list("m")
        listed = fake.last
        cairn.permissions.list("m", "alice@example.com", include_inactive=True)
        listed_all = fake.last
        check = cairn.permissions.check("m", "publish", "bob")
        cairn.permissions.mine()
        mine = fake.last
        for wrong in ({}, {"principal": "a"}, {"grant_id": "g", "principal": "a", "permission": "read"}):
            with pytest.raises(ValueError, match="grant_id"):
                cairn.permissions.revoke("m", **wrong)
    grant_path = b"/api/v1/models/digits%20cnn/permissions/6f1c0d5e-0000-4000-8000-000000000001"
    assert by_id.url.raw_path == grant_path + b"?reason=left+the+team"
    assert by_subject.url.raw_path == b"/api/v1/models/m/permissions/team%3Aml/write"
    assert dict(listed.url.params) == {}
    assert dict(listed_all.url.params) == {"principal": "alice@example.com", "include_inactive": "true"}
    assert check["allowed"] is True and check["principal"] == "bob" and check["permission"] == "publish"
    assert mine.url.path == "/api/v1/permissions" and dict(mine.url.params) == {}


def test_grant_expiries_are_aware_times_or_delays_from_now():
    fake = FakeGateway()
    with Cairn("http://gateway.test", OWN_TOKEN, transport=httpx.MockTransport(fake)) as cairn:
        before = datetime.now(timezone.utc)
        cairn.permissions.grant("m", "alice", "write", expires_at=timedelta(hours=2))
        sent = datetime.fromisoformat(json.loads(fake.last.content)["expires_at"])
        assert sent.tzinfo is not None and timedelta(hours=2) <= sent - before < timedelta(hours=2, minutes=1)
        cairn.permissions.grant("m", "alice", "read")
        assert json.loads(fake.last.content) == {"principal": "alice", "permission": "read"}
        cairn.permissions.grant("m", "alice", "read", expires_at="2030-01-01T00:00:00Z")
        assert json.loads(fake.last.content)["expires_at"] == "2030-01-01T00:00:00Z"
        calls = len(fake.requests)
        with pytest.raises(ValueError, match="timezone-aware"):
            cairn.permissions.grant("m", "alice", "read", expires_at=datetime(2030, 1, 1))
        with pytest.raises(ValueError, match="timezone-aware"):
            cairn.keys.create("k", "viewer", expires_at=datetime(2030, 1, 1))
    assert len(fake.requests) == calls  # refused before anything was sent


async def test_async_client_keys_and_permissions():
    fake = FakeGateway()
    async with AsyncCairn("http://gateway.test", OWN_TOKEN, transport=httpx.MockTransport(fake)) as cairn:
        created = await cairn.keys.create("ci-bot", "viewer", expires_at=timedelta(days=1))
        assert isinstance(created["token"], Secret) and NEW_SECRET not in repr(created)
        check = await cairn.permissions.check("m", "write")
        assert check["via"] == "grant" and "principal" not in dict(fake.last.url.params)
        await cairn.permissions.revoke("m", principal="team:ml", permission="read")
        assert fake.last.url.raw_path == b"/api/v1/models/m/permissions/team%3Aml/read"
        rotated = await cairn.keys.rotate(grace_s=30)
        await cairn.permissions.mine()
    assert fake.last.headers["authorization"] == f"Bearer {rotated['token'].reveal()}" != f"Bearer {OWN_TOKEN}"
