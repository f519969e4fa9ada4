"""Per-model grants and API keys through the SDK (``cairn.permissions``, ``cairn.keys``) and the CLI
(``cairn grants``, ``cairn keys``), against the real gateway and services of test_sdk_cli.py's ``stack``
(its own instance for this module) on real Postgres, Kafka and Redis. Grants and rotations go through the
same gateway that authorises the next request, which forgets its cached decisions at once."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

from libs.sdk import AsyncCairn, Cairn, CairnAPIError, Secret
from tests.integration.test_sdk_cli import Stack, stack, unique  # noqa: F401  (stack: the module fixture)


def refused(call) -> CairnAPIError:
    try:
        call()
    except CairnAPIError as exc:
        return exc
    raise AssertionError("the gateway accepted what it should have refused")


async def test_a_viewer_granted_write_on_one_model_versions_it_and_no_other(stack: Stack):
    viewer_name, team = unique("sdk-viewer"), unique("t")

    def flow():
        out = {}
        with stack.sdk(stack.admin) as admin, stack.sdk() as editor:
            created = admin.keys.create(viewer_name, "viewer", team=team, expires_at=timedelta(days=1))
            out["created"] = created
            x = editor.models.register(unique("perm-x"), "classification")["name"]
            y = editor.models.register(unique("perm-y"), "classification")["name"]
            out["x"], out["y"] = x, y
            grant = admin.permissions.grant(x, viewer_name, "write")
            out["grant"] = grant
            with Cairn(stack.gateway.url, created["token"]) as viewer:
                out["me"] = viewer.me()
                out["version"] = viewer.versions.create(x, "1.0.0")
                out["denied_y"] = refused(lambda: viewer.versions.create(y, "1.0.0"))
                out["denied_publish"] = refused(lambda: viewer.lifecycle.promote(x, "1.0.0"))
                out["check_write"] = viewer.permissions.check(x, "write")
                out["check_read"] = viewer.permissions.check(x, "read")
                out["check_y"] = viewer.permissions.check(y, "write")
                out["mine"] = viewer.permissions.mine()
                out["viewer_lists"] = refused(lambda: viewer.permissions.list(x))  # needs admin on x
                out["listed"] = admin.permissions.list(x)
                out["admin_check"] = admin.permissions.check(x, "write", principal=viewer_name)

                admin.permissions.revoke(x, grant["grant_id"], reason="sdk test")
                out["after_revoke"] = refused(lambda: viewer.versions.create(x, "1.0.1"))
                out["check_revoked"] = viewer.permissions.check(x, "write")
                out["history"] = admin.permissions.list(x, include_inactive=True)
                out["active"] = admin.permissions.list(x)

                # a team grant covers the key too; revoked by principal and level
                out["team_grant"] = admin.permissions.grant(x, f"team:{team}", "write",
                                                            expires_at=datetime.now(timezone.utc) + timedelta(hours=1))
                out["via_team"] = viewer.permissions.check(x, "write")
                out["team_version"] = viewer.versions.create(x, "1.0.1")
                admin.permissions.revoke(x, principal=f"team:{team}", permission="write")
                out["after_team_revoke"] = refused(lambda: viewer.versions.create(x, "1.0.2"))
                out["missing_grant"] = refused(lambda: admin.permissions.revoke(x, principal=viewer_name,
                                                                                permission="admin"))
        return out

    out = await asyncio.to_thread(flow)
    x, grant = out["x"], out["grant"]
    assert isinstance(out["created"]["token"], Secret) and out["created"]["team"] == team
    assert out["me"]["name"] == viewer_name and out["me"]["role"] == "viewer"
    assert grant["principal"] == viewer_name and grant["permission"] == "write" and grant["active"]
    assert grant["model_name"] == x and grant["granted_by"] == "test-admin"
    assert out["version"]["version"] == "1.0.0"
    for denied in ("denied_y", "denied_publish", "viewer_lists", "after_revoke", "after_team_revoke"):
        assert out[denied].status == 403, (denied, out[denied])
    assert out["check_write"]["allowed"] and out["check_write"]["via"] == "grant"
    assert out["check_write"]["grant_id"] == grant["grant_id"] and out["check_write"]["expires_at"] is None
    assert out["check_read"]["allowed"] and out["check_read"]["via"] == "role"
    assert not out["check_y"]["allowed"] and out["check_y"]["via"] is None and out["check_y"]["reason"]
    assert [(g["model_name"], g["permission"]) for g in out["mine"]] == [(x, "write")]
    assert [g["grant_id"] for g in out["listed"]] == [grant["grant_id"]]
    assert out["admin_check"]["allowed"] and out["admin_check"]["principal"] == viewer_name
    assert not out["check_revoked"]["allowed"]
    assert out["active"] == []
    [old] = out["history"]
    assert old["grant_id"] == grant["grant_id"] and not old["active"] and old["revoked_by"] == "test-admin"
    assert out["via_team"]["allowed"] and out["via_team"]["via"] == "team grant"
    assert out["via_team"]["grant_id"] == out["team_grant"]["grant_id"] and out["via_team"]["expires_at"]
    assert out["team_version"]["version"] == "1.0.1"
    assert out["missing_grant"].status == 404

    async with AsyncCairn(stack.gateway.url, stack.admin) as admin:
        check = await admin.permissions.check(x, "write", principal=viewer_name)
        refusal = None
        try:
            await admin.permissions.grant(x, viewer_name, "write", expires_at="2001-01-01T00:00:00Z")
        except CairnAPIError as exc:
            refusal = exc
    assert not check["allowed"]
    assert refusal is not None and refusal.status == 422 and refusal.fields == ["expires_at"]


async def test_rotation_retires_the_old_secret_and_a_revoked_key_is_refused(stack: Stack):
    def flow():
        out = {}
        with stack.sdk(stack.admin) as admin:
            created = admin.keys.create(unique("sdk-rotate"), "viewer")
            key_id, first = created["key_id"], created["token"]
            rotated = admin.keys.rotate(key_id)  # grace 0: the old secret stops at once
            out["rotated"] = rotated
            with Cairn(stack.gateway.url, first) as old:
                out["old"] = refused(old.me)
            with Cairn(stack.gateway.url, rotated["token"]) as new:
                out["new_me"] = new.me()
                # the key rotates itself with a grace period: both secrets work until it ends
                second = rotated["token"]
                out["self"] = new.keys.rotate(grace_s=600)
                out["switched_me"] = new.me()  # the client now sends the newest secret
                with Cairn(stack.gateway.url, second) as previous:
                    out["in_grace"] = previous.me()
                out["other"] = refused(lambda: new.keys.rotate(created["key_id"][::-1]))  # not its own
                out["list_as_viewer"] = refused(new.keys.list)
                admin.keys.revoke(key_id)
                out["revoked"] = refused(new.me)
            out["listed"] = {k["key_id"]: k for k in admin.keys.list()}
            out["key_id"] = key_id
        return out

    out = await asyncio.to_thread(flow)
    key_id = out["key_id"]
    assert out["rotated"]["key_id"] == key_id and out["rotated"]["previous_valid_until"] is None
    assert out["old"].status == 401
    assert out["new_me"]["key_id"] == key_id
    assert out["self"]["previous_valid_until"] is not None
    assert out["switched_me"]["key_id"] == key_id and out["in_grace"]["key_id"] == key_id
    assert out["other"].status == 403 and out["list_as_viewer"].status == 403
    assert out["revoked"].status == 401
    listed = out["listed"][key_id]
    assert listed["status"] == "revoked" and listed["rotated_at"] and "token" not in listed


async def test_cli_grants_and_keys_with_json_print_a_new_token_once(stack: Stack):
    name = unique("cli-grantee")
    x = unique("cli-x")
    y = unique("cli-y")
    await asyncio.to_thread(lambda: [stack.sdk().models.register(m, "classification") for m in (x, y)])

    code, out, err = await stack.cli("--json", "keys", "create", name, "--role", "viewer", "--expires-in", "2d",
                                     token=stack.admin)
    assert code == 0, err
    created = json.loads(out)
    token = created["token"]
    assert token.startswith(f"cairn_{created['key_id']}_") and out.count(token) == 1
    assert "not shown again" in err and token not in err
    assert datetime.fromisoformat(created["expires_at"]) > datetime.now(timezone.utc) + timedelta(days=1)

    code, out, err = await stack.cli("keys", "create", unique("cli-human"), "--role", "guest", token=stack.admin)
    assert code == 0, err
    [token_line] = [line for line in out.splitlines() if line.startswith("token")]
    human_token = token_line.split()[-1]
    assert len(human_token) == len(token) and out.count(human_token) == 1  # whole, once

    code, out, err = await stack.cli("--json", "grants", "add", x, name, "write", "--expires-in", "1d",
                                     token=stack.admin)
    assert code == 0, err
    grant = json.loads(out)
    assert grant["principal"] == name and grant["permission"] == "write" and grant["expires_at"]

    code, out, err = await stack.cli("--json", "grants", "check", x, "write", token=token)
    assert code == 0, err
    assert json.loads(out)["allowed"] and json.loads(out)["via"] == "grant"
    code, out, err = await stack.cli("grants", "check", y, "write", token=token)
    assert code == 1 and out.startswith(f"denied: {name} on {y} does not hold write")
    code, out, err = await stack.cli("grants", "check", x, "write", "--principal", name, token=stack.admin)
    assert code == 0 and out.startswith(f"allowed: {name} on {x} holds write via grant until ")

    code, out, err = await stack.cli("--json", "versions", "create", x, "1.0.0", token=token)
    assert code == 0, err
    code, out, err = await stack.cli("--json", "versions", "create", y, "1.0.0", token=token)
    assert code == 1 and json.loads(out)["error"]["status"] == 403

    code, out, err = await stack.cli("--json", "grants", "list", x, token=stack.admin)
    assert code == 0 and [g["grant_id"] for g in json.loads(out)] == [grant["grant_id"]]
    code, out, err = await stack.cli("grants", "list", x, token=stack.admin)
    assert code == 0 and out.splitlines()[0].split()[:3] == ["GRANT_ID", "PRINCIPAL", "PERMISSION"]
    code, out, err = await stack.cli("--json", "grants", "mine", token=token)
    assert code == 0 and [g["model_name"] for g in json.loads(out)] == [x]

    code, out, err = await stack.cli("grants", "rm", x, name, "write", "--reason", "done", token=stack.admin)
    assert code == 0 and out.strip() == f"revoked write of {name} on {x}", err
    code, out, err = await stack.cli("--json", "grants", "check", x, "write", token=token)
    assert code == 1 and json.loads(out)["allowed"] is False
    code, out, err = await stack.cli("--json", "grants", "list", x, "--all", token=stack.admin)
    assert code == 0 and [g["active"] for g in json.loads(out)] == [False]
    code, out, err = await stack.cli("grants", "rm", x, grant["grant_id"], token=stack.admin)
    assert code == 1 and "404" in err  # already revoked

    # the key rotates itself: a new token once on stdout, the old one refused from now on
    code, out, err = await stack.cli("--json", "keys", "rotate", token=token)
    assert code == 0, err
    rotated = json.loads(out)
    assert rotated["key_id"] == created["key_id"] and rotated["token"] != token and "update CAIRN_API_KEY" in err
    code, out, err = await stack.cli("whoami", token=token)
    assert code == 1 and "401" in err
    code, out, err = await stack.cli("--json", "whoami", token=rotated["token"])
    assert code == 0 and json.loads(out)["name"] == name

    code, out, err = await stack.cli("--json", "keys", "revoke", created["key_id"], token=stack.admin)
    assert code == 0 and json.loads(out) == {"revoked": created["key_id"]}
    code, out, err = await stack.cli("--json", "keys", "list", "--status", "revoked", token=stack.admin)
    assert code == 0
    listed = json.loads(out)
    assert created["key_id"] in {k["key_id"] for k in listed} and {k["status"] for k in listed} == {"revoked"}
    assert rotated["token"].split("_", 2)[2] not in out
    code, out, err = await stack.cli("keys", "list", token=stack.admin)
    assert code == 0 and out.splitlines()[0].split()[:5] == ["KEY_ID", "NAME", "ROLE", "TEAM", "STATUS"]

    code, out, err = await stack.cli("grants", "add", x, name, "write", "--expires-at", "2030-01-01T00:00:00Z",
                                     "--expires-in", "1d", token=stack.admin)
    assert code == 2 and "not both" in err
    code, out, err = await stack.cli("grants", "add", x, name, "write", "--expires-in", "soon", token=stack.admin)
    assert code == 2


async def test_cli_key_and_grant_management_needs_an_admin(stack: Stack):
    model = unique("cli-own")
    await asyncio.to_thread(lambda: stack.sdk().models.register(model, "classification"))
    for argv in (("keys", "list"), ("keys", "create", unique("k"), "--role", "admin"),
                 ("grants", "list", model), ("grants", "add", model, "test-viewer", "write")):
        code, out, err = await stack.cli(*argv, token=stack.viewer)
        assert code == 1 and "403" in err, (argv, err)
