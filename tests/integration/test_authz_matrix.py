"""The authorisation matrix: every gateway route × every kind of caller, through the real gateway app on
real Postgres, Kafka and Redis.

Callers: each role; the model's owner; guests holding each level of grant on the model (one of them
through its team); and no key, a malformed key, a revoked key, an expired key and a rotated-out secret.
For each, the expected answer follows from the documented tables written out below (not from the code
under test): refused (401 without a valid key, 403 without the right) or let through; the model listings
(GET /models, GET /models/search) let every valid key through, filtered to what it may read. This gateway's
upstream services all point at a closed port, so a request that passes authorisation ends as 502 (or as
the gateway's own 404/422): nothing downstream changes, and any 401/403 can only be the gateway's."""
from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from services.gateway import handlers as gateway_handlers
from services.gateway.app import create_app as create_gateway
from services.gateway.keys import ROLE_PERMISSIONS
from services.gateway.settings import GatewaySettings
from tests.contracts.test_gateway_routes import OPEN_ROUTES, gateway_routes, route_permission
from tests.support.kafka import eventually
from tests.support.servers import free_port, serve

pytestmark = pytest.mark.asyncio
#: The matrix calls from an address of its own: the gateway records at most 30 refusals per client address
#: per minute, and the matrix's hundreds must not use up the budget other tests' audited refusals need.
MATRIX_ADDRESS = "127.0.0.2"


def matrix_client(gateway, token: str | None) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=30,
                             transport=httpx.AsyncHTTPTransport(local_address=MATRIX_ADDRESS))

# ---- the documented tables (docs/architecture.md, Gateway) ------------------------------------------

_SELF = {"account:read", "account:write"}
_READ = {"models:read", "versions:read", "lifecycle:read", "training:read", "evaluation:read", "search:read"}
_WRITE = {"models:write", "versions:write", "lifecycle:write", "training:write", "evaluation:write"}
ROLE_TABLE = {
    "guest": _SELF,
    "viewer": _SELF | _READ,
    "editor": _SELF | _READ | _WRITE,
    "auditor": _SELF | _READ | {"audit:read"},
    "admin": _SELF | _READ | _WRITE | {"audit:read", "keys:admin", "permissions:admin", "models:delete", "metrics:read"},
}
LEVELS = ("read", "write", "publish", "admin")
#: Listings never refuse a valid key: a role without the permission lists only the models it owns or
#: holds a live grant on, which may be none (an empty page). Without a valid key they are still 401.
FILTERED_LISTINGS = {("GET", "/api/v1/models"), ("GET", "/api/v1/models/search")}
MODEL_AREAS = {"models", "versions", "lifecycle", "training", "evaluation", "permissions"}
#: Routes about one resource of one model that their path does not name (the model is in the resource, or
#: in the body for a compare), with the level they need on it. A role holding the permission passes; any
#: other key needs that level on the resource's model, which only the owning service can tell. A key that
#: owns no model and holds no live grant is refused at once; any other goes on to find the resource's model,
#: which here ends as 502 (the services are unreachable) or as the gateway's own 422 (a compare body it
#: cannot read). The decisions on the resource's model: tests/integration/test_resource_grants.py.
RESOURCE_ROUTES = {
    ("GET", "/api/v1/training-jobs/{job_id}"): "read",
    ("POST", "/api/v1/training-jobs/{job_id}/cancel"): "write",
    ("GET", "/api/v1/training-jobs/{job_id}/events"): "read",
    ("GET", "/api/v1/evaluations/{evaluation_id}"): "read",
    ("GET", "/api/v1/comparisons/{comparison_id}"): "read",
    ("POST", "/api/v1/models/compare"): "read",
    ("GET", "/api/v1/commands/{command_id}"): "read",
}


def needed_on_model(method: str, path: str, permission: str) -> str | None:
    """What a route needs on its model (None: not about one model, only the role counts)."""
    area, _, action = permission.partition(":")
    if "{model_ref}" not in path or area not in MODEL_AREAS:
        return None
    if method == "DELETE" and path == "/api/v1/models/{model_ref}":
        return "owner"
    if action == "read":
        return "read"
    return {"permissions": "admin", "lifecycle": "publish"}.get(area, "write")


@dataclass(frozen=True)
class Caller:
    label: str
    token: str | None
    role: str | None = None  # None: no valid key at all
    model_level: str | None = None  # held on the matrix model through ownership or a grant
    owner: bool = False

    def expected_allowed(self, method: str, path: str, permission: str) -> bool:
        if self.role is None:
            return False
        held = ROLE_TABLE[self.role]
        if path == "/api/v1/keys/{key_id}/rotate":  # another key's: only an admin (the matrix rotates no own key)
            return "keys:admin" in held
        if (method, path) in FILTERED_LISTINGS:
            return True
        if (method, path) in RESOURCE_ROUTES:
            return permission in held or self.model_level is not None
        need = needed_on_model(method, path, permission)
        if permission in held and (need != "owner" or "models:delete" in held):
            return True
        if need is None or self.model_level is None:
            return False
        if need == "owner":
            return self.owner
        return LEVELS.index(self.model_level) >= LEVELS.index(need)


PATH_VALUES = {"version": "1.0.0", "alias": "candidate", "key_id": "000000000000", "sha256": "0" * 64,
               "principal_name": "nobody", "permission": "read"}


def concrete(path: str, model_name: str) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        return model_name if name == "model_ref" else PATH_VALUES.get(name, str(uuid.uuid4()))

    return re.sub(r"{(\w+)}", value, path)


# ---- the system under test ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
async def matrix(system, service_env):
    dead = f"http://127.0.0.1:{free_port()}"
    upstreams = {name: dead for name in GatewaySettings.model_fields if name.endswith("_url")
                 and name not in ("database_url", "redis_url")}
    app = create_gateway(GatewaySettings(**{**service_env, **upstreams, "rate_limit_per_minute": 1_000_000}))
    gateway = await serve(app)
    pool, uid = system.pool, uuid.uuid4().hex[:8]

    async def key(role: str, *, name: str | None = None, team: str | None = None, expires_at=None):
        new = await gateway_handlers.create_key(pool, name=name or f"matrix-{role}-{uid}", role=role,
                                                created_by="tests", team=team, expires_at=expires_at)
        return new

    owner_name, team = f"matrix-owner-{uid}", f"matrix-team-{uid}"
    async with system.admin as admin:
        created = await admin.post("/api/v1/models", json={"name": f"matrix-{uid}", "type": "regression",
                                                           "owner": owner_name})
        assert created.status_code == 201, created.text
        model = created.json()
        callers = [Caller(role, (await key(role)).token, role) for role in ROLE_TABLE]
        callers.append(Caller("owner (viewer)", (await key("viewer", name=owner_name)).token, "viewer", "admin", owner=True))
        for level in LEVELS:
            name = f"matrix-grant-{level}-{uid}"
            token = (await key("guest", name=name)).token
            granted = await admin.post(f"/api/v1/models/{model['model_id']}/permissions",
                                       json={"principal": name, "permission": level})
            assert granted.status_code == 201, granted.text
            callers.append(Caller(f"guest + {level} grant", token, "guest", level))
        member = (await key("guest", name=f"matrix-member-{uid}", team=team)).token
        assert (await admin.post(f"/api/v1/models/{model['model_id']}/permissions",
                                 json={"principal": f"team:{team}", "permission": "write"})).status_code == 201
        callers.append(Caller("guest in a team with write", member, "guest", "write"))

    revoked = await key("editor", name=f"matrix-revoked-{uid}")
    await gateway_handlers.revoke_key(pool, revoked.key_id, actor="tests")
    expired = await key("admin", name=f"matrix-expired-{uid}", expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    rotated = await key("admin", name=f"matrix-rotated-{uid}")
    await gateway_handlers.rotate_key(pool, rotated.key_id, grace_s=0, actor="tests")
    callers += [Caller("no key", None), Caller("malformed key", "cairn_not_a_key"),
                Caller("revoked key", revoked.token), Caller("expired key", expired.token),
                Caller("rotated-out secret", rotated.token)]

    # this gateway cannot ask the (unreachable) registry, so it must know the model from its projection
    await eventually(lambda: pool.fetchval("SELECT 1 FROM gateway.models WHERE model_id = $1",
                                           uuid.UUID(model["model_id"])))
    yield gateway, model, callers
    await gateway.stop()


async def test_the_documented_role_table_is_the_code_s():
    assert {role: set(perms) for role, perms in ROLE_PERMISSIONS.items()} == ROLE_TABLE


async def test_every_route_for_every_caller(matrix):
    gateway, model, callers = matrix
    routes = [(method, path, route_permission(route)) for path, methods, route in gateway_routes()
              for method in sorted(methods) if path not in OPEN_ROUTES]
    assert len(routes) > 60
    routes.append(("GET", "/metrics", "metrics:read"))
    limit = asyncio.Semaphore(8)
    mismatches: list[str] = []
    counted = {"allowed": 0, "refused": 0, "listings": 0}

    async def probe(client: httpx.AsyncClient, caller: Caller, method: str, path: str, permission: str) -> None:
        url = concrete(path, model["name"])
        body = {"authz_matrix_probe": True} if method in ("POST", "PUT", "PATCH") else None
        async with limit:
            response = await client.request(method, url, json=body)
        refused = response.status_code in (401, 403)
        if permission == "public:signed-link":
            expected = False  # the signature is the authorisation; the gateway never asks for a key
        else:
            expected = not caller.expected_allowed(method, path, permission)
        counted["refused" if refused else "allowed"] += 1
        if (method, path) in FILTERED_LISTINGS and caller.role is not None:
            counted["listings"] += 1
            # a guest without any grant is answered by the gateway itself; with grants (or a role that
            # reads everything) the request goes on to the (unreachable) service
            without_grants = caller.role == "guest" and caller.model_level is None
            if response.status_code != (200 if without_grants else 502):
                mismatches.append(f"{caller.label}: {method} {path} → {response.status_code}, expected "
                                  f"{200 if without_grants else 502}: {response.text[:200]}")
            elif without_grants and response.json()["total"] != 0:
                mismatches.append(f"{caller.label}: {method} {path} listed {response.text[:200]}")
        if refused != expected:
            mismatches.append(f"{caller.label}: {method} {path} ({permission}) → {response.status_code}, expected "
                              f"{'refusal' if expected else 'to pass'}: {response.text[:200]}")
        elif refused:
            problem = response.json()
            kind = "unauthenticated" if caller.role is None else "forbidden"
            if problem["code"] != kind or response.status_code != (401 if caller.role is None else 403):
                mismatches.append(f"{caller.label}: {method} {path} → {response.status_code} {problem['code']}, expected {kind}")

    async def run(caller: Caller) -> None:
        async with matrix_client(gateway, caller.token) as client:
            await asyncio.gather(*(probe(client, caller, *route) for route in routes))

    await asyncio.gather(*(run(caller) for caller in callers))
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(sorted(mismatches))
    assert counted["listings"] == len(FILTERED_LISTINGS) * sum(c.role is not None for c in callers)
    # both outcomes occur in bulk, so neither side of the table is vacuous
    assert counted["allowed"] > 300 and counted["refused"] > 300, counted


async def test_resource_routes_are_the_documented_ones(matrix):
    """Every route the gateway lets decide on a resource's model is in RESOURCE_ROUTES, and the reverse."""
    from services.gateway.permissions import need_for

    flagged: dict[tuple[str, str], str | None] = {}
    for path, methods, route in gateway_routes():
        if any(getattr(d.call, "model_from_resource", False) for d in route.dependant.dependencies):
            for method in methods:
                # what the route's permission asks on a model once the resource names it
                flagged[(method, path)] = need_for(route_permission(route), method=method, route_path=path,
                                                   path_params={"model_ref": "x"}).level
    assert flagged == RESOURCE_ROUTES


async def test_resource_routes_without_any_model_right(matrix):
    """The rows the table cannot show: a key with some model right passes the gateway's first check on a
    resource route; one without is refused before any service is asked (here: unreachable)."""
    gateway, model, callers = matrix
    by_label = {c.label: c for c in callers}
    job = f"/api/v1/training-jobs/{uuid.uuid4()}"
    for label, expected in (("guest", 403), ("viewer", 502), ("guest + read grant", 502)):
        async with matrix_client(gateway, by_label[label].token) as api:
            assert (await api.get(job)).status_code == expected, label
    for label, expected in (("viewer", 403), ("guest + read grant", 502), ("editor", 502)):
        async with matrix_client(gateway, by_label[label].token) as api:
            assert (await api.post(f"{job}/cancel", json={})).status_code == expected, label


async def test_protected_alias_and_owner_transfer_rows(matrix):
    """The rows the route table cannot show: what the path's alias or the body's owner changes."""
    gateway, model, callers = matrix
    by_label = {c.label: c for c in callers}
    cases = [
        ("guest + write grant", "PUT", f"/api/v1/models/{model['name']}/aliases/production", {"version": "1.0.0"}, True),
        ("guest + publish grant", "PUT", f"/api/v1/models/{model['name']}/aliases/production", {"version": "1.0.0"}, False),
        ("editor", "DELETE", f"/api/v1/models/{model['name']}/aliases/stable", None, False),
        ("guest + publish grant", "PATCH", f"/api/v1/models/{model['name']}", {"owner": "me"}, True),
        ("editor", "PATCH", f"/api/v1/models/{model['name']}", {"owner": "me"}, True),
        ("guest + admin grant", "PATCH", f"/api/v1/models/{model['name']}", {"owner": "me"}, False),
        ("owner (viewer)", "PUT", f"/api/v1/models/{model['name']}", {"owner": "me"}, False),
        ("admin", "PATCH", f"/api/v1/models/{model['name']}", {"owner": "me"}, False),
    ]
    for label, method, url, body, refused in cases:
        async with matrix_client(gateway, by_label[label].token) as api:
            response = await api.request(method, url, json=body)
        assert (response.status_code == 403) is refused, (label, method, url, response.status_code, response.text)
        if not refused:
            assert response.status_code == 502  # through to the (unreachable) owning service
