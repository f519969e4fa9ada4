"""The version service's internal API over real HTTP, on real Postgres and Kafka: creating versions
(explicit, bump, pre-release, concurrently), reading them, tags, metrics, aliases, live versions,
deletion, retention, and how models become known (events, or the registry fallback)."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import orjson
import pytest

from libs.events.lifecycle import VersionDemoted, VersionPromoted
from libs.kit.uow import UnitOfWork
from services.registry import domain as registry_domain
from services.registry import store as registry_store
from tests.support.kafka import eventually, header

pytestmark = pytest.mark.asyncio

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def body_of(record) -> dict:
    return orjson.loads(record.value)


def of_type(model_id: str, ce_type: str):
    return lambda r: r.key == model_id.encode() and header(r, "ce_type") == ce_type


async def create(api, model: str, expect: int = 201, **body) -> dict:
    response = await api.post(f"/internal/models/{model}/versions", json=body)
    assert response.status_code == expect, response.text
    return response.json()


async def publish_lifecycle(versions, event) -> None:
    """Publish a lifecycle event the way the lifecycle service would: through an outbox."""
    async with UnitOfWork(versions.pool(versions.folder), "version", source="lifecycle", actor="tests") as uow:
        await uow.emit(event)


# ---- creating ---------------------------------------------------------------------------------------

async def test_create_explicit_bump_prerelease_and_default(versions):
    model = await versions.register_model()
    mid = model["model_id"]
    async with versions.client(versions.folder) as api:
        first = await create(api, mid)
        assert first["version"] == "1.0.0" and first["version_type"] == "release"
        assert first["model_id"] == mid and first["created_by"] == "tester"
        assert first["artifact"] is None and first["aliases"] == [] and first["live_environments"] == []
        assert (await create(api, mid, bump="minor", prerelease="beta"))["version"] == "1.1.0-beta.1"
        beta2 = await create(api, mid, bump="minor", prerelease="beta")
        assert beta2["version"] == "1.1.0-beta.2" and beta2["version_type"] == "beta"
        assert (await create(api, mid, prerelease="rc"))["version"] == "1.1.0-rc.1"
        assert (await create(api, mid))["version"] == "1.1.0"  # finalises the rc
        assert (await create(api, mid, bump="major"))["version"] == "2.0.0"
        explicit = await create(api, model["name"], version="1.5.0-alpha.3", change_log="by hand",
                                metrics={"accuracy": 0.91}, training_data={"data_count": 1000},
                                tags=["experimental", "experimental"], lineage={"parent_version": "1.1.0",
                                                                                "dataset": "digits"},
                                metadata={"framework_version": "2.13"})
        assert explicit["version_type"] == "alpha" and explicit["tags"] == ["experimental"]
        assert explicit["lineage"]["dataset"] == "digits" and explicit["metrics"] == {"accuracy": 0.91}
        duplicate = await api.post(f"/internal/models/{mid}/versions", json={"version": "1.1.0"})
        assert duplicate.status_code == 409 and duplicate.headers["content-type"] == "application/problem+json"
        same_precedence = await api.post(f"/internal/models/{mid}/versions", json={"version": "2.0.0+build.7"})
        assert same_precedence.status_code == 409


async def test_create_sets_location_and_emits_version_created_with_cloudevents_headers(versions, versions_topic):
    model = await versions.register_model()
    mid = model["model_id"]
    watcher = versions_topic
    async with versions.client(versions.folder, actor="alice") as api:
        response = await api.post(f"/internal/models/{mid}/versions", json={"tags": ["stable"]},
                                  headers={"traceparent": TRACE})
        assert response.status_code == 201, response.text
        created = response.json()
        assert response.headers["location"] == f"/api/v1/models/{mid}/versions/1.0.0"
        record = await watcher.wait_for(of_type(mid, "VersionCreated"))
    assert header(record, "ce_specversion") == "1.0"
    assert header(record, "ce_source") == "version"
    assert header(record, "ce_subject") == mid
    assert header(record, "ce_actor") == "alice"
    assert header(record, "ce_dataschema") == "urn:cairn:event:VersionCreated:v1"
    assert header(record, "content-type") == "application/json"
    assert header(record, "traceparent").startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    uuid.UUID(header(record, "ce_id"))
    event = body_of(record)
    assert event["version_id"] == created["version_id"] and event["version"] == "1.0.0"
    assert event["tags"] == ["stable"] and event["created_by"] == "alice"


async def test_fifty_concurrent_creates_make_fifty_consecutive_versions(versions):
    model = await versions.register_model()
    mid = model["model_id"]
    async with versions.client(versions.folder) as api:
        responses = await asyncio.gather(*(api.post(f"/internal/models/{mid}/versions", json={}) for _ in range(50)))
        assert [r.status_code for r in responses] == [201] * 50, [r.text for r in responses if r.status_code != 201]
        made = sorted((r.json()["version"] for r in responses), key=lambda v: int(v.split(".")[2]))
        assert made == ["1.0.0"] + [f"1.0.{i}" for i in range(1, 50)]
        listed = (await api.get(f"/internal/models/{mid}/versions", params={"page_size": 100})).json()
    assert listed["total"] == 50 and len({v["version_id"] for v in listed["versions"]}) == 50


async def test_list_orders_by_precedence_filters_by_tag_and_pages(versions):
    model = await versions.register_model()
    mid = model["model_id"]
    async with versions.client(versions.folder) as api:
        for v, tags in (("2.0.0", ["stable"]), ("1.5.0", []), ("1.0.0-rc.1", ["stable", "backup"]),
                        ("10.0.0-beta.1", []), ("1.10.0", ["stable"])):
            await create(api, mid, version=v, tags=tags)
        url = f"/internal/models/{mid}/versions"
        listed = (await api.get(url)).json()
        assert [v["version"] for v in listed["versions"]] == ["10.0.0-beta.1", "2.0.0", "1.10.0", "1.5.0", "1.0.0-rc.1"]
        assert listed["total"] == 5 and listed["page"] == 1 and listed["page_size"] == 20
        ascending = (await api.get(url, params={"order": "asc", "page_size": 2, "page": 2})).json()
        assert [v["version"] for v in ascending["versions"]] == ["1.10.0", "2.0.0"] and ascending["total"] == 5
        past_the_end = (await api.get(url, params={"page": 9, "page_size": 2})).json()
        assert past_the_end["total"] == 5 and past_the_end["versions"] == []
        stable = (await api.get(url, params={"tag": "stable"})).json()
        assert [v["version"] for v in stable["versions"]] == ["2.0.0", "1.10.0", "1.0.0-rc.1"]
        both = (await api.get(url, params=[("tag", "stable"), ("tag", "backup")])).json()
        assert [v["version"] for v in both["versions"]] == ["1.0.0-rc.1"]
        assert (await api.get(f"/internal/models/{mid}/versions/latest")).json()["version"] == "10.0.0-beta.1"
        by_name = (await api.get(f"/internal/models/{model['name']}/versions/1.5.0")).json()
        assert by_name["version"] == "1.5.0" and by_name["model_id"] == mid
        bad = await api.get(url, params={"page_size": 1000})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.page_size"
        empty_model = await versions.register_model()
        nothing = await api.get(f"/internal/models/{empty_model['model_id']}/versions")
        assert nothing.status_code == 200 and nothing.json()["total"] == 0


@pytest.mark.parametrize("body, field", [
    ({"version": "1.2"}, "version"),
    ({"version": "v1.2.3"}, "version"),
    ({"bump": "huge"}, "bump"),
    ({"prerelease": "gamma"}, "prerelease"),
    ({"version": "1.0.0", "bump": "minor"}, "bump"),
    ({"version": "1.0.0", "version_type": "beta"}, "version_type"),
    ({"tags": ["ok", "not ok"]}, "tags.1"),
    ({"metrics": {"accuracy": "high"}}, "metrics.accuracy"),
    ({"change_log": "x" * 10_001}, "change_log"),
    ({"dependencies": [{"model_id": str(uuid.uuid4()), "version": "1.0.0"}]}, "dependencies.0"),
    ({"dependencies": [{"model_id": "not-a-uuid", "version": "1.0.0"}]}, "dependencies.0.model_id"),
    ({"lineage": {"parent_version": "1.0.0", "colour": "red"}}, "lineage.colour"),
    ({"model_path": "/etc/passwd"}, "model_path"),
    ({"lineage": {"parent_version": "7.0.0"}}, "lineage.parent_version"),
    ({"lineage": {"parent_version": "latest-and-greatest"}}, "lineage.parent_version"),
    ({"description": "seed text", "change_log": "another text"}, "body"),
])
async def test_invalid_creates_get_422_naming_the_field(versions, body, field):
    model = await versions.register_model()
    async with versions.client(versions.folder) as api:
        response = await api.post(f"/internal/models/{model['model_id']}/versions", json=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert field in [e["field"] for e in problem["errors"]], problem


async def test_model_path_is_refused_as_an_unknown_field(versions):
    model = await versions.register_model()
    async with versions.client(versions.folder) as api:
        response = await api.post(f"/internal/models/{model['model_id']}/versions",
                                  json={"version": "1.0.0", "model_path": "/srv/models/secret.pt"})
        assert response.status_code == 422
        [error] = response.json()["errors"]
        assert error["field"] == "model_path" and "/artifact" in error["message"]
        assert (await api.get(f"/internal/models/{model['model_id']}/versions")).json()["total"] == 0


async def test_seed_001_body_description_is_the_change_log_and_status_is_the_stage(versions):
    model = await versions.register_model()
    async with versions.client(versions.folder) as api:
        made = await create(api, model["model_id"], version="1.1.0",
                            description="Improved version with better performance")
        assert made["change_log"] == "Improved version with better performance"
        assert made["status"] == "draft"


async def test_status_follows_the_lifecycle_stage_in_production(versions):
    model = await versions.register_model()
    mid = model["model_id"]
    async with versions.client(versions.folder) as api:
        made = await create(api, mid)
        assert made["status"] == "draft" and made["stages"] == {}
        moves = [("staging", "draft", "staging"), ("production", "draft", "staging"),
                 ("production", "staging", "production")]
        for environment, from_stage, to_stage in moves:
            await publish_lifecycle(versions, VersionPromoted(
                model_id=uuid.UUID(mid), version_id=uuid.UUID(made["version_id"]), version="1.0.0",
                environment=environment, from_stage=from_stage, to_stage=to_stage))

        async def stands():
            body = (await api.get(f"/internal/models/{mid}/versions/1.0.0")).json()
            return body if body["status"] == "production" else None

        body = await eventually(stands)
        assert body["stages"] == {"staging": "staging", "production": "production"}
        await publish_lifecycle(versions, VersionDemoted(
            model_id=uuid.UUID(mid), version_id=uuid.UUID(made["version_id"]), version="1.0.0",
            environment="production", from_stage="production", to_stage="staging"))

        async def demoted():
            listed = (await api.get(f"/internal/models/{mid}/versions")).json()["versions"][0]
            return listed if listed["status"] == "staging" else None

        assert (await eventually(demoted))["live_environments"] == []


async def test_dependencies_must_name_stored_versions(versions):
    base = await versions.register_model()
    model = await versions.register_model()
    async with versions.client(versions.folder) as api:
        tokenizer = await create(api, base["model_id"])
        dep = {"model_id": base["model_id"], "version": tokenizer["version"]}
        ok = await create(api, model["model_id"], dependencies=[dep])
        assert ok["dependencies"] == [dep]
        missing = await api.post(f"/internal/models/{model['model_id']}/versions", json={
            "dependencies": [dep, {"model_id": base["model_id"], "version": "9.9.9"}]})
    assert missing.status_code == 422
    assert [e["field"] for e in missing.json()["errors"]] == ["dependencies.1"]


async def test_ready_checks_database_broker_and_object_store(versions):
    for server in (versions.folder, versions.s3):
        async with versions.client(server) as api:
            ready = await api.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "object_store": "ok"}


async def test_internal_token_is_required(versions):
    model = await versions.register_model()
    async with versions.client(versions.folder) as api:
        response = await api.get(f"/internal/models/{model['model_id']}/versions",
                                 headers={"x-cairn-internal-token": "wrong"})
    assert response.status_code == 401 and response.json()["code"] == "unauthenticated"


# ---- knowing models ---------------------------------------------------------------------------------

async def test_unknown_model_is_404(versions):
    async with versions.client(versions.folder) as api:
        for ref in (str(uuid.uuid4()), f"no-such-model-{uuid.uuid4().hex[:8]}"):
            for response in (
                await api.post(f"/internal/models/{ref}/versions", json={}),
                await api.get(f"/internal/models/{ref}/versions"),
                await api.get(f"/internal/models/{ref}/versions/1.0.0"),
                await api.get(f"/internal/models/{ref}/aliases"),
            ):
                assert response.status_code == 404, response.text
                assert response.json()["code"] == "not_found"


async def test_a_model_registered_a_moment_ago_can_be_versioned_at_once(versions):
    async with versions.client(versions.registry) as registry, versions.client(versions.folder) as api:
        for _ in range(5):
            registered = (await registry.post("/internal/models", json={
                "name": f"fresh-{uuid.uuid4().hex[:10]}", "type": "vision"})).json()
            created = await create(api, registered["model_id"])
            assert created["version"] == "1.0.0"
            by_name = await create(api, registered["name"])
            assert by_name["version"] == "1.0.1" and by_name["model_id"] == registered["model_id"]


async def test_fallback_to_the_registry_when_no_event_will_ever_come(versions):
    """A model that exists only in the registry's table (no ModelRegistered event was ever sent) is
    still found: the version service asks the registry's internal API and keeps what it learns."""
    now = datetime.now(timezone.utc)
    name = f"quiet-{uuid.uuid4().hex[:10]}"
    model, _ = registry_domain.register(
        registry_domain.Registration(name=name, type=registry_domain.ModelType.other, framework="pytorch"),
        model_id=uuid.uuid4(), actor="tests", now=now)
    async with versions.pool(versions.registry).acquire() as conn:
        await registry_store.insert(conn, model)  # no outbox row: nobody is told
    async with versions.client(versions.folder) as api:
        created = await create(api, name)
        assert created["model_id"] == str(model.id)
        assert (await api.get(f"/internal/models/{model.id}/versions/1.0.0")).status_code == 200
    row = await versions.pool(versions.folder).fetchrow("SELECT name, deleted FROM version.models WHERE id = $1", model.id)
    assert row["name"] == name and row["deleted"] is False


async def test_a_deleted_model_is_gone_for_versions_too(versions):
    model = await versions.register_model()
    mid = model["model_id"]
    async with versions.client(versions.folder) as api, versions.client(versions.registry) as registry:
        await create(api, mid)
        assert (await registry.delete(f"/internal/models/{mid}")).status_code == 204

        async def gone():
            return (await api.get(f"/internal/models/{mid}/versions/1.0.0")).status_code == 404

        await eventually(gone)
        assert (await api.post(f"/internal/models/{mid}/versions", json={})).status_code == 404


# ---- tags and metrics -------------------------------------------------------------------------------

async def test_tags_change_and_emit_only_when_something_changed(versions, versions_topic):
    model = await versions.register_model()
    mid = model["model_id"]
    watcher = versions_topic
    async with versions.client(versions.folder) as api:
        await create(api, mid, tags=["experimental"])
        url = f"/internal/models/{mid}/versions/1.0.0/tags"
        tagged = await api.post(url, json={"add": ["stable", "production"], "remove": ["experimental"]})
        assert tagged.status_code == 200 and tagged.json()["tags"] == ["stable", "production"]
        unchanged = await api.post(url, json={"add": ["stable"], "remove": ["backup"]})
        assert unchanged.status_code == 200 and unchanged.json()["tags"] == ["stable", "production"]
        again = await api.post(url, json={"remove": ["production"]})
        assert again.json()["tags"] == ["stable"]
        bad = await api.post(url, json={"add": ["fine", "not fine"]})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "add.1"
        await watcher.wait_for(lambda r: of_type(mid, "VersionTagged")(r) and body_of(r)["removed"] == ["production"])
    events = [body_of(r) for r in watcher.seen if of_type(mid, "VersionTagged")(r)]
    assert [(e["added"], e["removed"]) for e in events] == [(["stable", "production"], ["experimental"]),
                                                             ([], ["production"])]
    assert (await versions.client(versions.folder).get(f"/internal/models/{mid}/versions/1.0.0")).json()["tags"] == ["stable"]


async def test_metrics_merge_and_emit(versions, versions_topic):
    model = await versions.register_model()
    mid = model["model_id"]
    watcher = versions_topic
    async with versions.client(versions.folder) as api:
        await create(api, mid, metrics={"accuracy": 0.9, "loss": 0.3})
        url = f"/internal/models/{mid}/versions/1.0.0/metrics"
        merged = await api.post(url, json={"metrics": {"accuracy": 0.95, "f1": 0.94}, "source": "evaluation"})
        assert merged.status_code == 200
        assert merged.json()["metrics"] == {"accuracy": 0.95, "loss": 0.3, "f1": 0.94}
        assert (await api.get(f"/internal/models/{mid}/versions/1.0.0")).json()["metrics"]["f1"] == 0.94
        record = await watcher.wait_for(of_type(mid, "VersionMetricsRecorded"))
        assert body_of(record)["metrics"] == {"accuracy": 0.95, "f1": 0.94} and body_of(record)["source"] == "evaluation"
        bad = await api.post(url, json={"metrics": {"accuracy": "great"}, "source": "x"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "metrics.accuracy"


# ---- aliases ----------------------------------------------------------------------------------------

async def test_aliases_move_atomically_and_protect_their_version(versions, versions_topic):
    model = await versions.register_model()
    mid = model["model_id"]
    watcher = versions_topic
    async with versions.client(versions.folder) as api:
        v1 = await create(api, mid)
        v2 = await create(api, mid)
        url = f"/internal/models/{mid}/aliases/champion"
        first = await api.put(url, json={"version": "1.0.0"})
        assert first.status_code == 200, first.text
        assert first.json() == {"alias": "champion", "version": "1.0.0", "version_id": v1["version_id"],
                                "previous_version": None}
        moved = (await api.put(url, json={"version": "latest"})).json()
        assert moved["version"] == "1.0.1" and moved["previous_version"] == "1.0.0"
        record = await watcher.wait_for(lambda r: of_type(mid, "AliasSet")(r) and body_of(r)["version"] == "1.0.1")
        assert body_of(record)["previous_version"] == "1.0.0" and body_of(record)["version_id"] == v2["version_id"]

        by_alias = (await api.get(f"/internal/models/{mid}/versions/champion")).json()
        assert by_alias["version"] == "1.0.1" and by_alias["aliases"] == ["champion"]
        assert (await api.put(f"/internal/models/{mid}/aliases/challenger", json={"version": "champion"})).json()[
            "version"] == "1.0.1"
        listed = (await api.get(f"/internal/models/{mid}/aliases")).json()
        assert [(a["alias"], a["version"]) for a in listed] == [("challenger", "1.0.1"), ("champion", "1.0.1")]

        refused = await api.delete(f"/internal/models/{mid}/versions/1.0.1")
        assert refused.status_code == 409
        assert "champion" in refused.json()["detail"] and refused.json()["aliases"] == ["challenger", "champion"]
        assert (await api.delete(f"/internal/models/{mid}/aliases/challenger")).status_code == 204
        assert (await api.delete(f"/internal/models/{mid}/aliases/challenger")).status_code == 404
        removed = await watcher.wait_for(of_type(mid, "AliasRemoved"))
        assert body_of(removed) == {"model_id": mid, "alias": "challenger", "version": "1.0.1"}

        for bad_name in ("latest", "v1", "Champion", "1.0.0"):
            bad = await api.put(f"/internal/models/{mid}/aliases/{bad_name}", json={"version": "1.0.0"})
            assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "alias", bad_name
        missing = await api.put(url, json={"version": "7.7.7"})
        assert missing.status_code == 404


async def test_concurrent_alias_moves_form_one_chain(versions):
    model = await versions.register_model()
    mid = model["model_id"]
    async with versions.client(versions.folder) as api:
        made = [(await create(api, mid))["version"] for _ in range(10)]
        responses = await asyncio.gather(*(
            api.put(f"/internal/models/{mid}/aliases/prod", json={"version": v}) for v in made))
        moves = [r.json() for r in responses]
        final = (await api.get(f"/internal/models/{mid}/versions/prod")).json()["version"]
    # each move saw exactly the previous one: following previous_version from None visits all ten
    after = {m["previous_version"]: m["version"] for m in moves}
    assert len(after) == 10
    chain, at = [], None
    while at in after:
        at = after[at]
        chain.append(at)
    assert sorted(chain) == sorted(made) and chain[-1] == final


# ---- live versions, deletion, retention -------------------------------------------------------------

async def test_a_live_version_cannot_be_deleted_until_it_leaves_production(versions, versions_topic):
    model = await versions.register_model()
    mid = model["model_id"]
    watcher = versions_topic
    async with versions.client(versions.folder) as api:
        created = await create(api, mid)
        common = dict(model_id=uuid.UUID(mid), version_id=uuid.UUID(created["version_id"]), version="1.0.0")
        await publish_lifecycle(versions, VersionPromoted(**common, environment="production",
                                                          from_stage="staging", to_stage="production"))

        async def live():
            shown = (await api.get(f"/internal/models/{mid}/versions/1.0.0")).json()
            return shown["live_environments"] == ["production"]

        await eventually(live)
        refused = await api.delete(f"/internal/models/{mid}/versions/1.0.0")
        assert refused.status_code == 409
        assert "production" in refused.json()["detail"] and refused.json()["environments"] == ["production"]

        await publish_lifecycle(versions, VersionDemoted(**common, environment="production",
                                                         from_stage="production", to_stage="staging"))

        async def not_live():
            return (await api.get(f"/internal/models/{mid}/versions/1.0.0")).json()["live_environments"] == []

        await eventually(not_live)
        deleted = await api.delete(f"/internal/models/{mid}/versions/1.0.0", params={"reason": "cleanup"})
        assert deleted.status_code == 204
        assert (await api.get(f"/internal/models/{mid}/versions/1.0.0")).status_code == 404
        assert (await api.delete(f"/internal/models/{mid}/versions/1.0.0")).status_code == 404
        record = await watcher.wait_for(of_type(mid, "VersionDeleted"))
        assert body_of(record)["version"] == "1.0.0" and body_of(record)["reason"] == "cleanup"


async def test_retention_keeps_the_last_n_that_are_not_live_or_aliased(versions, versions_topic):
    model = await versions.register_model()
    mid = model["model_id"]
    watcher = versions_topic
    async with versions.client(versions.folder) as api:
        assert (await api.get(f"/internal/models/{mid}/retention")).json() == {"model_id": mid, "keep_last": None}
        made = [await create(api, mid) for _ in range(4)]  # 1.0.0 .. 1.0.3
        unique = uuid.uuid4().bytes * 1000
        stored = await api.put(f"/internal/models/{mid}/versions/1.0.2/artifact", content=unique)
        assert stored.status_code == 201
        sha = stored.json()["sha256"]
        assert versions.blob_path(sha).exists()
        assert (await api.put(f"/internal/models/{mid}/aliases/keeper", json={"version": "1.0.0"})).status_code == 200
        await publish_lifecycle(versions, VersionPromoted(
            model_id=uuid.UUID(mid), version_id=uuid.UUID(made[1]["version_id"]), version="1.0.1",
            environment="production", from_stage="staging", to_stage="production"))

        async def live():
            return (await api.get(f"/internal/models/{mid}/versions/1.0.1")).json()["live_environments"]

        await eventually(live)
        set_to = await api.put(f"/internal/models/{mid}/retention", json={"keep_last": 2})
        assert set_to.json() == {"model_id": mid, "keep_last": 2}
        policy = await watcher.wait_for(of_type(mid, "RetentionPolicySet"))
        assert body_of(policy)["keep_last"] == 2 and body_of(policy)["previous_keep_last"] is None
        # applied at once: 1.0.3 and 1.0.2 are the two kept; 1.0.1 is live and 1.0.0 aliased
        remaining = [v["version"] for v in (await api.get(f"/internal/models/{mid}/versions")).json()["versions"]]
        assert remaining == ["1.0.3", "1.0.2", "1.0.1", "1.0.0"]
        again = await api.put(f"/internal/models/{mid}/retention", json={"keep_last": 2})
        assert again.status_code == 200  # unchanged: no second RetentionPolicySet (checked below)
        bad = await api.put(f"/internal/models/{mid}/retention", json={"keep_last": 0})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "keep_last"

        await create(api, mid)  # 1.0.4: 1.0.4 and 1.0.3 stay, 1.0.2 goes; 1.0.1 is live, 1.0.0 aliased
        remaining = [v["version"] for v in (await api.get(f"/internal/models/{mid}/versions")).json()["versions"]]
        assert remaining == ["1.0.4", "1.0.3", "1.0.1", "1.0.0"]
        deleted = await watcher.wait_for(of_type(mid, "VersionDeleted"))
        assert body_of(deleted)["version"] == "1.0.2" and body_of(deleted)["reason"] == "retention: keep last 2"
        assert body_of(deleted)["version_id"] == made[2]["version_id"]
        assert not versions.blob_path(sha).exists()  # nothing else referenced those bytes

        await create(api, mid)  # 1.0.5: 1.0.3 goes
        remaining = [v["version"] for v in (await api.get(f"/internal/models/{mid}/versions")).json()["versions"]]
        assert remaining == ["1.0.5", "1.0.4", "1.0.1", "1.0.0"]
        assert (await api.put(f"/internal/models/{mid}/retention", json={"keep_last": None})).json()["keep_last"] is None
        cleared = await watcher.wait_for(lambda m: of_type(mid, "RetentionPolicySet")(m) and body_of(m)["keep_last"] is None)
        assert body_of(cleared)["previous_keep_last"] == 2
        # one model's events are ordered: every earlier policy event is already seen, and the repeat made none
        assert len([m for m in watcher.seen if of_type(mid, "RetentionPolicySet")(m)]) == 2
        for _ in range(3):
            await create(api, mid)
        assert (await api.get(f"/internal/models/{mid}/versions")).json()["total"] == 7


async def test_a_retried_training_job_gets_the_version_it_already_made(versions, versions_topic):
    model = await versions.register_model()
    mid = model["model_id"]
    job = str(uuid.uuid4())
    async with versions.client(versions.folder, actor="worker:w1") as api:
        first = await api.post(f"/internal/models/{mid}/versions",
                               json={"bump": "minor", "lineage": {"training_job_id": job, "dataset": "digits"}})
        assert first.status_code == 201
        retried = await api.post(f"/internal/models/{mid}/versions",
                                 json={"bump": "minor", "lineage": {"training_job_id": job, "dataset": "digits"}})
        assert retried.status_code == 200, retried.text
        assert retried.json()["version_id"] == first.json()["version_id"]
        assert retried.headers["location"] == first.headers["location"]
        other_job = await create(api, mid, bump="minor", lineage={"training_job_id": str(uuid.uuid4())})
        assert other_job["version"] == "1.1.0"  # 1.0.0 was the first job's
        assert (await api.get(f"/internal/models/{mid}/versions")).json()["total"] == 2
    await versions_topic.wait_for(lambda r: of_type(mid, "VersionCreated")(r) and body_of(r)["version"] == "1.1.0")
    made = [body_of(r)["version"] for r in versions_topic.seen if of_type(mid, "VersionCreated")(r)]
    assert made == ["1.0.0", "1.1.0"]
