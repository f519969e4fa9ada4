"""Per-model permissions through the gateway: grants add rights on one model, teams inherit, levels imply
each other, delegation stays within the delegator's own grant, owner-only delete, protected aliases,
expiry, revocation, and every change and refusal in the audit log."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from services.gateway import handlers as gateway_handlers
from tests.support.kafka import eventually

pytestmark = pytest.mark.asyncio


def _uid() -> str:
    return uuid.uuid4().hex[:10]


def _soon(minutes: int) -> str:
    return (datetime.now(timezone.utc) + timedelta(minutes=minutes)).isoformat()


async def _key(system, role: str, *, team: str | None = None, name: str | None = None) -> tuple[str, str]:
    """A fresh key; returns (name, token)."""
    name = name or f"{role}-{_uid()}"
    new = await gateway_handlers.create_key(system.pool, name=name, role=role, created_by="tests", team=team)
    return name, new.token


async def _model(api: httpx.AsyncClient, owner: str | None = None) -> dict:
    body = {"name": f"perm-{_uid()}", "type": "classification", "metadata": {"input_dim": 4, "num_classes": 3}}
    if owner:
        body["owner"] = owner
    response = await api.post("/api/v1/models", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def _grant(api, model_ref: str, principal: str, permission: str, **extra) -> httpx.Response:
    return await api.post(f"/api/v1/models/{model_ref}/permissions",
                          json={"principal": principal, "permission": permission, **extra})


def _refused(response: httpx.Response, status: int = 403) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()


async def test_a_grant_adds_rights_on_that_model_only(system):
    alice, token = await _key(system, "viewer")
    async with system.admin as admin, system.client(token) as api:
        x, y = await _model(admin), await _model(admin)
        problem = _refused(await api.patch(f"/api/v1/models/{x['name']}", json={"description": "mine"}))
        assert problem["permission"] == "models:write" and problem["required"] == "write"
        assert problem["model"] == x["name"]

        granted = await _grant(admin, x["name"], alice, "write")
        assert granted.status_code == 201, granted.text
        assert granted.json()["model_id"] == x["model_id"] and granted.json()["active"] is True

        assert (await api.patch(f"/api/v1/models/{x['model_id']}", json={"description": "mine"})).status_code == 200
        assert (await api.patch(f"/api/v1/models/{x['name']}", json={"description": "by name"})).status_code == 200
        assert "holds no write grant" in _refused(await api.patch(f"/api/v1/models/{y['name']}",
                                                                  json={"description": "not mine"}))["detail"]
        # write is not publish, and does not make alice the owner
        _refused(await api.post(f"/api/v1/models/{x['name']}/versions/1.0.0/publish", json={}))
        _refused(await api.delete(f"/api/v1/models/{x['name']}"))
        # role rights elsewhere are unchanged
        assert (await api.get(f"/api/v1/models/{y['name']}")).status_code == 200
        _refused(await api.post("/api/v1/models", json={"name": f"perm-{_uid()}", "type": "regression"}))


async def test_team_grants_cover_members_and_higher_levels_imply_lower(system):
    team = f"vision-{_uid()}"
    member, token = await _key(system, "guest", team=team)
    _, outsider = await _key(system, "guest", team=f"other-{_uid()}")
    async with system.admin as admin, system.client(token) as api, system.client(outsider) as other:
        x, y = await _model(admin), await _model(admin)
        # guests hold nothing globally
        _refused(await api.get(f"/api/v1/models/{x['name']}"))
        assert (await api.get("/api/v1/models")).json()["total"] == 0  # a listing is filtered, not refused
        assert (await _grant(admin, x["name"], f"team:{team}", "publish")).status_code == 201
        assert [m["model_id"] for m in (await api.get("/api/v1/models")).json()["models"]] == [x["model_id"]]

        assert (await api.get(f"/api/v1/models/{x['name']}")).status_code == 200  # read ⊂ publish
        assert (await api.patch(f"/api/v1/models/{x['name']}", json={"description": "team"})).status_code == 200
        # publish passes authorisation; the lifecycle service is not running in this system, hence 502
        assert (await api.post(f"/api/v1/models/{x['name']}/versions/1.0.0/publish", json={})).status_code == 502
        _refused(await api.post(f"/api/v1/models/{x['name']}/permissions",
                                json={"principal": member, "permission": "admin"}))  # admin ⊄ publish
        _refused(await api.get(f"/api/v1/models/{y['name']}"))
        _refused(await other.get(f"/api/v1/models/{x['name']}"))

        check = (await api.get(f"/api/v1/models/{x['name']}/permissions/check", params={"permission": "write"})).json()
        assert check["allowed"] is True and check["via"] == "team grant"
        mine = (await api.get("/api/v1/permissions")).json()
        assert [(g["model_name"], g["principal"], g["permission"]) for g in mine] == [(x["name"], f"team:{team}", "publish")]


async def test_owner_holds_admin_and_only_owner_or_admin_deletes(system):
    owner, owner_token = await _key(system, "editor")
    _, other_editor = await _key(system, "editor")
    async with system.client(owner_token) as api, system.client(other_editor) as other, system.admin as admin:
        mine = await _model(api)
        assert mine["owner"] == owner
        problem = _refused(await other.delete(f"/api/v1/models/{mine['name']}"))
        assert problem["required"] == "owner" and owner in problem["detail"]
        # an editor may not hand the model to itself either
        _refused(await other.patch(f"/api/v1/models/{mine['name']}", json={"owner": "someone-else"}))
        assert (await other.patch(f"/api/v1/models/{mine['name']}", json={"description": "edit"})).status_code == 200
        # the owner manages its grants without any global admin right
        assert (await _grant(api, mine["name"], "reader-x", "read")).status_code == 201
        assert (await api.delete(f"/api/v1/models/{mine['name']}")).status_code == 204
        theirs = await _model(api)
        assert (await admin.delete(f"/api/v1/models/{theirs['model_id']}")).status_code == 204

        async def grants_revoked():
            listed = (await admin.get("/api/v1/permissions", params={"principal": "reader-x"})).json()
            return not [g for g in listed if g["model_id"] == mine["model_id"]]

        await eventually(grants_revoked)  # ModelDeleted → the projection revokes the model's grants


async def test_delegation_never_exceeds_the_delegators_own_grant(system):
    carol, carol_token = await _key(system, "guest")
    dave, dave_token = await _key(system, "guest")
    async with system.admin as admin, system.client(carol_token) as api, system.client(dave_token) as dave_api:
        model, elsewhere = await _model(admin), await _model(admin)
        assert (await _grant(admin, model["name"], carol, "admin", expires_at=_soon(60))).status_code == 201

        problem = _refused(await _grant(api, model["name"], dave, "write"))
        assert "cannot outlive" in problem["detail"]
        _refused(await _grant(api, model["name"], dave, "write", expires_at=_soon(120)))
        delegated = await _grant(api, model["name"], dave, "write", expires_at=_soon(30))
        assert delegated.status_code == 201 and delegated.json()["granted_by"] == carol
        _refused(await _grant(api, elsewhere["name"], dave, "read", expires_at=_soon(30)))
        # write does not manage grants
        _refused(await _grant(dave_api, model["name"], carol, "read", expires_at=_soon(10)))
        _refused(await dave_api.get(f"/api/v1/models/{model['name']}/permissions"))
        listed = (await api.get(f"/api/v1/models/{model['name']}/permissions")).json()
        assert {(g["principal"], g["permission"]) for g in listed} == {(carol, "admin"), (dave, "write")}
        # a renewal answers 200 and keeps one active grant
        renewed = await _grant(api, model["name"], dave, "write", expires_at=_soon(40))
        assert renewed.status_code == 200 and renewed.json()["grant_id"] == delegated.json()["grant_id"]


async def test_protected_aliases_need_publish(system):
    erin, token = await _key(system, "viewer")
    async with system.admin as admin, system.client(token) as api:
        model = await _model(admin)
        await _grant(admin, model["name"], erin, "write")
        # authorised (the version service is absent here, hence 502), versus refused by the gateway
        assert (await api.put(f"/api/v1/models/{model['name']}/aliases/candidate", json={"version": "1.0.0"})).status_code == 502
        problem = _refused(await api.put(f"/api/v1/models/{model['name']}/aliases/production", json={"version": "1.0.0"}))
        assert problem["required"] == "publish" and "protected" in problem["detail"]
        _refused(await api.delete(f"/api/v1/models/{model['name']}/aliases/stable"))
        await _grant(admin, model["name"], erin, "publish")
        assert (await api.put(f"/api/v1/models/{model['name']}/aliases/production", json={"version": "1.0.0"})).status_code == 502


async def test_revocation_and_expiry_take_effect(system):
    frank, token = await _key(system, "guest")
    async with system.admin as admin, system.client(token) as api:
        model = await _model(admin)
        granted = (await _grant(admin, model["name"], frank, "read")).json()
        assert (await api.get(f"/api/v1/models/{model['name']}")).status_code == 200
        assert (await admin.delete(f"/api/v1/models/{model['name']}/permissions/{granted['grant_id']}")).status_code == 204
        _refused(await api.get(f"/api/v1/models/{model['name']}"))
        assert (await admin.delete(f"/api/v1/models/{model['name']}/permissions/{granted['grant_id']}")).status_code == 404

        await _grant(admin, model["name"], frank, "read")
        assert (await api.get(f"/api/v1/models/{model['name']}")).status_code == 200
        assert (await admin.delete(f"/api/v1/models/{model['name']}/permissions/{frank}/read")).status_code == 204
        _refused(await api.get(f"/api/v1/models/{model['name']}"))

        bad = await _grant(admin, model["name"], frank, "read", expires_at="2020-01-01T00:00:00+00:00")
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "expires_at"
        assert (await _grant(admin, model["name"], "bad name!", "read")).status_code == 422
        assert (await _grant(admin, model["name"], frank, "owner")).status_code == 422

        # a grant whose time is up stops counting (moved into the past in the database, as time would)
        expiring = (await _grant(admin, model["name"], frank, "read", expires_at=_soon(5))).json()
        await system.pool.execute("UPDATE gateway.model_grants SET expires_at = now() - interval '1 second'"
                                  " WHERE grant_id = $1", uuid.UUID(expiring["grant_id"]))
        await _grant(admin, model["name"], f"cache-buster-{_uid()}", "read")  # any grant change clears the cache
        _refused(await api.get(f"/api/v1/models/{model['name']}"))
        history = (await admin.get(f"/api/v1/models/{model['name']}/permissions",
                                   params={"principal": frank, "include_inactive": "true"})).json()
        assert len(history) == 3 and not any(g["active"] for g in history)


async def test_check_and_listing_of_others_need_admin(system):
    grace, token = await _key(system, "viewer")
    async with system.admin as admin, system.client(token) as api:
        model = await _model(admin)
        await _grant(admin, model["name"], grace, "write")
        assert (await api.get(f"/api/v1/models/{model['name']}/permissions/check",
                              params={"permission": "read"})).json()["via"] == "role"
        check = (await admin.get(f"/api/v1/models/{model['name']}/permissions/check",
                                 params={"permission": "write", "principal": grace})).json()
        assert check["allowed"] and check["via"] == "grant" and check["grant_id"]
        denied = (await admin.get(f"/api/v1/models/{model['name']}/permissions/check",
                                  params={"permission": "publish", "principal": grace})).json()
        assert denied["allowed"] is False and "no publish grant" in denied["reason"]
        _refused(await api.get(f"/api/v1/models/{model['name']}/permissions/check",
                               params={"permission": "read", "principal": "test-admin"}))
        _refused(await api.get("/api/v1/permissions", params={"principal": "test-admin"}))
        assert [g["principal"] for g in (await admin.get("/api/v1/permissions", params={"principal": grace})).json()] == [grace]


async def test_grants_and_refusals_are_in_the_audit_log(system):
    henry, token = await _key(system, "viewer")
    # from an address of its own: refusals are recorded up to 30 per client address per minute, and the
    # other tests' refusals from 127.0.0.1 may have used that up
    own_address = httpx.AsyncHTTPTransport(local_address="127.0.0.3")
    async with system.admin as admin, httpx.AsyncClient(base_url=system.gateway.url, transport=own_address,
                                                        headers={"authorization": f"Bearer {token}"}) as api:
        model = await _model(admin)
        _refused(await api.patch(f"/api/v1/models/{model['name']}", json={"description": "x"}))
        granted = (await _grant(admin, model["name"], henry, "write")).json()
        await admin.delete(f"/api/v1/models/{model['name']}/permissions/{granted['grant_id']}", params={"reason": "done"})

        async def recorded():
            entries = (await admin.get("/api/v1/audit", params={"model_id": model["model_id"], "order": "asc"})).json()["entries"]
            kinds = [e["event_type"] for e in entries]
            return entries if {"AccessDenied", "PermissionGranted", "PermissionRevoked"} <= set(kinds) else None

        entries = {e["event_type"]: e for e in await eventually(recorded)}
    denied = entries["AccessDenied"]["payload"]
    assert denied["model"] == model["name"] and denied["permission"] == "models:write" and denied["required"] == "write"
    assert entries["AccessDenied"]["actor"] == henry
    assert entries["PermissionGranted"]["payload"]["principal"] == henry and entries["PermissionGranted"]["actor"] == "test-admin"
    assert entries["PermissionRevoked"]["payload"]["reason"] == "done"
