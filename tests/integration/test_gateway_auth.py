"""Authentication, roles, refusals in the audit log, rate limits and Idempotency-Key, through the gateway."""
from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.support.kafka import eventually

pytestmark = pytest.mark.asyncio


def from_own_address(system, token: str, address: str) -> "httpx.AsyncClient":
    """A client calling from an address of its own: refusals are recorded up to 30 per client address per
    minute, and other tests' refusals from 127.0.0.1 may have used that budget up."""
    import httpx

    return httpx.AsyncClient(base_url=system.gateway.url, headers={"authorization": f"Bearer {token}"},
                             transport=httpx.AsyncHTTPTransport(local_address=address))


def body(name: str | None = None) -> dict:
    return {"name": name or f"auth-{uuid.uuid4().hex[:10]}", "type": "classification",
            "metadata": {"input_dim": 4, "num_classes": 3}}


@pytest.mark.parametrize("authorization", [None, "Bearer", "Basic abc", "Bearer cairn_nothex_x",
                                           "Bearer cairn_0123456789ab_" + "A" * 43])
async def test_requests_without_a_valid_key_get_401(system, authorization):
    headers = {"authorization": authorization} if authorization else {}
    async with system.client() as api:
        response = await api.get("/api/v1/models", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unauthenticated"


async def test_a_right_key_id_with_a_wrong_secret_is_refused(system):
    token = await system.token_for("viewer")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    async with system.client(forged) as api:
        assert (await api.get("/api/v1/models")).status_code == 401


async def test_viewer_may_read_but_not_write_and_the_refusal_is_audited(system):
    viewer = await system.token_for("viewer")
    async with from_own_address(system, viewer, "127.0.0.4") as api:
        assert (await api.get("/api/v1/models")).status_code == 200
        refused = await api.post("/api/v1/models", json=body())
        assert refused.status_code == 403
        assert refused.json()["permission"] == "models:write"
        assert (await api.get("/api/v1/audit")).status_code == 403

    async def denial_recorded():
        async with system.admin as admin:
            page = (await admin.get("/api/v1/audit", params={"event_type": "AccessDenied", "actor": "test-viewer"})).json()
        return [e for e in page["entries"] if e["payload"]["permission"] == "models:write"]

    entries = await eventually(denial_recorded)
    assert entries[0]["payload"]["status"] == 403 and entries[0]["payload"]["method"] == "POST"


async def test_editor_writes_and_is_the_actor_of_its_events(system):
    editor = await system.token_for("editor")
    async with system.client(editor) as api:
        created = await api.post("/api/v1/models", json=body())
        assert created.status_code == 201
        assert created.json()["owner"] == "test-editor"
        assert (await api.get("/api/v1/audit")).status_code == 403  # editors do not read the audit log
    model_id = created.json()["model_id"]

    async def recorded():
        async with system.admin as admin:
            return (await admin.get("/api/v1/audit", params={"model_id": model_id})).json()["entries"]

    entries = await eventually(recorded)
    assert entries[0]["actor"] == "test-editor"


async def test_admin_issues_and_revokes_keys(system):
    async with system.admin as admin:
        issued = await admin.post("/api/v1/keys", json={"name": "ci-bot", "role": "editor"})
        assert issued.status_code == 201
        token, key_id = issued.json()["token"], issued.json()["key_id"]
        async with system.client(token) as bot:
            me = (await bot.get("/api/v1/me")).json()
            assert me["role"] == "editor" and "models:write" in me["permissions"]
            assert (await admin.delete(f"/api/v1/keys/{key_id}")).status_code == 204
            assert (await bot.get("/api/v1/models")).status_code == 401
        listed = {k["key_id"]: k for k in (await admin.get("/api/v1/keys")).json()}
        assert listed[key_id]["revoked_at"] is not None
        assert "token" not in listed[key_id] and "secret_hash" not in listed[key_id]
        bad_role = await admin.post("/api/v1/keys", json={"name": "x", "role": "root"})
        assert bad_role.status_code == 422 and bad_role.json()["errors"][0]["field"] == "role"


async def test_only_admins_manage_keys(system):
    editor = await system.token_for("editor")
    async with system.client(editor) as api:
        assert (await api.post("/api/v1/keys", json={"name": "x", "role": "admin"})).status_code == 403


async def test_retried_post_with_idempotency_key_registers_once(system):
    key = str(uuid.uuid4())
    payload = body()
    async with system.admin as api:
        first = await api.post("/api/v1/models", json=payload, headers={"idempotency-key": key})
        second = await api.post("/api/v1/models", json=payload, headers={"idempotency-key": key})
        assert first.status_code == second.status_code == 201
        assert first.json() == second.json()
        assert second.headers["idempotent-replayed"] == "true"
        listed = (await api.get("/api/v1/models", params={"q": payload["name"]})).json()
        assert listed["total"] == 1
        reused = await api.post("/api/v1/models", json=body(), headers={"idempotency-key": key})
        assert reused.status_code == 422


async def test_concurrent_retries_with_one_idempotency_key_register_once(system):
    key = str(uuid.uuid4())
    payload = body()
    async with system.admin as api:
        responses = await asyncio.gather(*[
            api.post("/api/v1/models", json=payload, headers={"idempotency-key": key}) for _ in range(5)
        ])
        codes = sorted(r.status_code for r in responses)
        assert codes.count(201) >= 1 and set(codes) <= {201, 409}
        listed = (await api.get("/api/v1/models", params={"q": payload["name"]})).json()
    assert listed["total"] == 1


async def test_internal_apis_refuse_callers_without_the_internal_token(system):
    import httpx

    async with httpx.AsyncClient(base_url=system.services["registry"].url) as direct:
        response = await direct.get("/internal/models")
    assert response.status_code == 401


async def test_health_and_readiness(system):
    """This system runs only the registry and audit behind the gateway: those and the infrastructure are
    ready, and each service that does not answer is named, which makes the gateway not ready (503). The
    end-to-end stack waits for a fully ready gateway (every service up) before any e2e test runs."""
    async with system.client() as api:
        assert (await api.get("/healthz")).json()["status"] == "ok"
        response = await api.get("/readyz")
    ready = response.json()
    checks = ready["checks"]
    assert all(checks[name] == "ok" for name in ("database", "broker", "redis", "registry", "audit")), checks
    absent = {"version", "lifecycle", "training_scheduler", "evaluation", "search_indexer"}
    assert all(checks[name].startswith("error") for name in absent), checks
    assert (response.status_code, ready["status"]) == (503, "degraded")


async def test_an_expired_key_gets_401_naming_its_expiry_and_is_audited(system):
    from datetime import datetime, timedelta, timezone

    from services.gateway import handlers as gateway_handlers

    past = datetime.now(timezone.utc) - timedelta(minutes=1)
    expired = await gateway_handlers.create_key(system.pool, name=f"expired-{uuid.uuid4().hex[:8]}", role="admin",
                                                created_by="tests", expires_at=past)
    async with from_own_address(system, expired.token, "127.0.0.5") as api:
        refused = await api.get("/api/v1/models")
    problem = refused.json()
    assert refused.status_code == 401 and problem["code"] == "unauthenticated"
    assert problem["reason"] == "key_expired" and "expired at" in problem["detail"]
    assert datetime.fromisoformat(problem["expired_at"]) == past

    async def audited():
        async with system.admin as admin:
            page = (await admin.get("/api/v1/audit", params={"event_type": "AccessDenied"})).json()
        return [e for e in page["entries"] if e["payload"]["key_id"] == expired.key_id]

    assert (await eventually(audited))[0]["payload"]["status"] == 401


async def test_keys_carry_a_team_and_a_future_expiry(system):
    from datetime import datetime, timedelta, timezone

    future = (datetime.now(timezone.utc) + timedelta(days=30)).isoformat()
    async with system.admin as admin:
        past = await admin.post("/api/v1/keys", json={"name": "x", "role": "viewer", "expires_at": "2020-01-01T00:00:00Z"})
        assert past.status_code == 422 and past.json()["errors"][0]["field"] == "expires_at"
        naive = await admin.post("/api/v1/keys", json={"name": "x", "role": "viewer", "expires_at": "2099-01-01T00:00:00"})
        assert naive.status_code == 422  # a time without a zone is ambiguous
        bad_team = await admin.post("/api/v1/keys", json={"name": "x", "role": "viewer", "team": "Has Spaces"})
        assert bad_team.status_code == 422 and bad_team.json()["errors"][0]["field"] == "team"
        issued = await admin.post("/api/v1/keys", json={"name": "ml-bot", "role": "guest", "team": "vision",
                                                        "expires_at": future})
        assert issued.status_code == 201 and issued.json()["team"] == "vision"
        async with system.client(issued.json()["token"]) as bot:
            me = (await bot.get("/api/v1/me")).json()
            assert (me["role"], me["team"]) == ("guest", "vision") and me["expires_at"]
            assert "models:read" not in me["permissions"]
            assert (await bot.get(f"/api/v1/models/{uuid.uuid4()}")).status_code == 403  # only its grants count
            listed = await bot.get("/api/v1/models")  # a listing shows what it may read: nothing yet
            assert listed.status_code == 200 and listed.json()["total"] == 0
        listed = {k["key_id"]: k for k in (await admin.get("/api/v1/keys")).json()}
        assert listed[issued.json()["key_id"]]["status"] == "active"


async def test_rotation_replaces_the_secret_with_an_optional_grace_period(system):
    async with system.admin as admin:
        issued = (await admin.post("/api/v1/keys", json={"name": "rotating-bot", "role": "viewer"})).json()
        old, key_id = issued["token"], issued["key_id"]
        async with system.client(old) as bot:
            rotated = await bot.post(f"/api/v1/keys/{key_id}/rotate")  # a key may rotate itself
        assert rotated.status_code == 200 and rotated.json()["previous_valid_until"] is None
        new = rotated.json()["token"]
        assert new != old and new.startswith(f"cairn_{key_id}_")
        async with system.client(old) as stale, system.client(new) as fresh:
            assert (await stale.get("/api/v1/me")).status_code == 401
            assert (await fresh.get("/api/v1/me")).json()["key_id"] == key_id

        graced = await admin.post(f"/api/v1/keys/{key_id}/rotate", json={"grace_s": 300})
        assert graced.status_code == 200 and graced.json()["previous_valid_until"]
        newest = graced.json()["token"]
        async with system.client(new) as previous, system.client(newest) as current:
            assert (await previous.get("/api/v1/me")).status_code == 200  # still within its grace period
            assert (await current.get("/api/v1/me")).status_code == 200
        too_long = await admin.post(f"/api/v1/keys/{key_id}/rotate", json={"grace_s": 10**9})
        assert too_long.status_code == 422 and too_long.json()["errors"][0]["field"] == "grace_s"
        assert (await admin.post("/api/v1/keys/000000000000/rotate")).status_code == 404

        async def audited():
            page = (await admin.get("/api/v1/audit", params={"event_type": "ApiKeyRotated"})).json()
            return [e for e in page["entries"] if e["payload"]["key_id"] == key_id]

        rotations = await eventually(audited)
    assert {e["actor"] for e in rotations} <= {"rotating-bot", "test-admin"}
    assert "token" not in rotations[0]["payload"] and "secret_hash" not in rotations[0]["payload"]


async def test_only_the_key_itself_or_an_admin_rotates_it(system):
    editor = await system.token_for("editor")
    async with system.admin as admin, system.client(editor) as api:
        other = (await admin.post("/api/v1/keys", json={"name": "someone", "role": "viewer"})).json()
        refused = await api.post(f"/api/v1/keys/{other['key_id']}/rotate")
        assert refused.status_code == 403 and refused.json()["permission"] == "keys:admin"
        async with system.client(other["token"]) as someone:
            assert (await someone.get("/api/v1/me")).status_code == 200  # untouched


async def test_gateway_metrics_need_the_internal_token_or_an_admin_key(system):
    viewer = await system.token_for("viewer")
    async with system.client() as anonymous, system.client(viewer) as api, system.admin as admin:
        assert (await anonymous.get("/metrics")).status_code == 401
        assert (await api.get("/metrics")).status_code == 403
        assert (await anonymous.get("/metrics", headers={"authorization": "Bearer wrong-token"})).status_code == 401
        scraped = await admin.get("/metrics")
        assert scraped.status_code == 200 and "cairn_http_requests_total" in scraped.text
        by_header = await anonymous.get("/metrics", headers={"x-cairn-internal-token": "test-internal-token"})
        by_bearer = await anonymous.get("/metrics", headers={"authorization": "Bearer test-internal-token"})
        assert by_header.status_code == by_bearer.status_code == 200
