"""The registry through the gateway, over real HTTP, on real Postgres and Kafka."""
from __future__ import annotations

import uuid

import pytest

from libs.events import topics
from tests.support.kafka import TopicWatcher, header

pytestmark = pytest.mark.asyncio


def unique(prefix: str = "m") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def transformer(name: str, **extra) -> dict:
    body = {
        "name": name, "type": "transformer", "framework": "pytorch", "task": "text-classification",
        "metadata": {"vocab_size": 1000, "max_seq_len": 64, "d_model": 32, "num_heads": 4, "num_layers": 2, "d_ff": 64},
        "tags": {"language": "en"},
    }
    body.update(extra)
    return body


async def test_register_then_get_by_id_and_by_name(system):
    async with system.admin as api:
        name = unique()
        created = await api.post("/api/v1/models", json=transformer(name))
        assert created.status_code == 201, created.text
        model = created.json()
        assert model["owner"] == "test-admin"
        assert created.headers["location"] == f"/api/v1/models/{model['model_id']}"
        by_id = await api.get(f"/api/v1/models/{model['model_id']}")
        by_name = await api.get(f"/api/v1/models/{name}")
        assert by_id.json() == by_name.json() == model
        assert by_id.headers["etag"] == '"1"'


async def test_registration_emits_model_registered_with_cloudevents_headers(system):
    name = unique()
    async with TopicWatcher(system.kafka_bootstrap, topics.MODELS) as watcher, system.admin as api:
        model = (await api.post("/api/v1/models", json=transformer(name), headers={
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})).json()
        record = await watcher.wait_for(lambda r: r.key == model["model_id"].encode())
    assert header(record, "ce_type") == "ModelRegistered"
    assert header(record, "ce_specversion") == "1.0"
    assert header(record, "ce_source") == "registry"
    assert header(record, "ce_subject") == model["model_id"]
    assert header(record, "ce_actor") == "test-admin"
    assert header(record, "traceparent").startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert header(record, "content-type") == "application/json"


async def test_duplicate_name_is_409_naming_the_field(system):
    async with system.admin as api:
        name = unique()
        assert (await api.post("/api/v1/models", json=transformer(name))).status_code == 201
        again = await api.post("/api/v1/models", json=transformer(name.upper()))
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["field"] == "name"
    assert again.json()["instance"] == "/api/v1/models"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"type": "vision"}, "name"),
        ({"name": "ok-name", "type": "spaceship"}, "type"),
        ({"name": "ok-name", "type": "vision", "colour": "red"}, "colour"),
        ({"name": "bad name!", "type": "vision"}, "name"),
        ({"name": "ok-name", "type": "vision", "metadata": {"image_size": "big"}}, "metadata.image_size"),
        ({"name": "ok-name", "type": "vision", "metadata": {"num_heads": 3}}, "metadata.num_heads"),
        ({"name": "ok-name", "type": "transformer", "metadata": {"d_model": 30, "num_heads": 4}}, "metadata"),
        ({"name": "ok-name", "type": "vision", "tags": {"bad key!": "x"}}, "tags.bad key!"),
        ({"name": "ok-name", "type": "vision", "tags": ["a"]}, "tags"),
        ({"name": "Search", "type": "vision"}, "name"),
        ({"name": "compare", "type": "vision"}, "name"),
    ],
)
async def test_invalid_registrations_get_422_naming_the_field(system, body, field):
    async with system.admin as api:
        response = await api.post("/api/v1/models", json=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert field in [e["field"] for e in problem["errors"]], problem


async def test_malformed_json_is_400_and_wrong_content_is_not_500(system):
    async with system.admin as api:
        broken = await api.post("/api/v1/models", content=b'{"name": ', headers={"content-type": "application/json"})
        not_object = await api.post("/api/v1/models", json=[1, 2])
    assert broken.status_code == 400 and "malformed JSON" in broken.json()["detail"]
    assert not_object.status_code == 422


async def test_oversize_body_is_413(system):
    async with system.admin as api:
        huge = transformer(unique(), description="x" * 2_000_000)
        response = await api.post("/api/v1/models", json=huge)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_unknown_id_is_404(system):
    async with system.admin as api:
        response = await api.get(f"/api/v1/models/{uuid.uuid4()}")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


async def test_list_filters_by_type_framework_tag_and_pages(system):
    batch = uuid.uuid4().hex[:8]
    async with system.admin as api:
        for i in range(5):
            kind = "vision" if i % 2 else "audio"
            response = await api.post("/api/v1/models", json={
                "name": f"list-{batch}-{i}", "type": kind, "framework": "onnx" if i == 4 else "pytorch",
                "tags": {"batch": batch, "parity": "odd" if i % 2 else "even"},
            })
            assert response.status_code == 201
        everything = (await api.get("/api/v1/models", params={"tag": f"batch:{batch}", "page_size": 2})).json()
        assert everything["total"] == 5 and len(everything["models"]) == 2
        page3 = (await api.get("/api/v1/models", params={"tag": f"batch:{batch}", "page_size": 2, "page": 3})).json()
        assert len(page3["models"]) == 1
        names = {m["name"] for p in (1, 2, 3) for m in (await api.get(
            "/api/v1/models", params={"tag": f"batch:{batch}", "page_size": 2, "page": p, "sort": "name"})).json()["models"]}
        assert names == {f"list-{batch}-{i}" for i in range(5)}
        vision = (await api.get("/api/v1/models", params={"tag": f"batch:{batch}", "type": "vision"})).json()
        assert vision["total"] == 2
        onnx = (await api.get("/api/v1/models", params=[("tag", f"batch:{batch}"), ("tag", "parity:even"),
                                                         ("framework", "onnx")])).json()
        assert [m["name"] for m in onnx["models"]] == [f"list-{batch}-4"]
        text = (await api.get("/api/v1/models", params={"q": f"{batch}-3"})).json()
        assert [m["name"] for m in text["models"]] == [f"list-{batch}-3"]
        bad = await api.get("/api/v1/models", params={"page_size": 1000})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.page_size"


async def test_patch_merges_metadata_and_tags_and_bumps_revision(system):
    async with TopicWatcher(system.kafka_bootstrap, topics.MODELS) as watcher, system.admin as api:
        model = (await api.post("/api/v1/models", json=transformer(unique()))).json()
        patched = await api.patch(f"/api/v1/models/{model['model_id']}", json={
            "description": "now documented", "metadata": {"num_layers": 6, "max_seq_len": None},
            "tags": {"language": None, "team": "nlp"},
        })
        assert patched.status_code == 200, patched.text
        body = patched.json()
        assert body["revision"] == 2 and patched.headers["etag"] == '"2"'
        assert body["metadata"]["num_layers"] == 6 and "max_seq_len" not in body["metadata"]
        assert body["tags"] == {"team": "nlp"}
        record = await watcher.wait_for(lambda r: r.key == model["model_id"].encode() and header(r, "ce_type") == "ModelUpdated")
    assert b'"changed":["description","metadata","tags"]' in record.value


async def test_put_updates_like_patch_and_if_match_guards_lost_updates(system):
    async with system.admin as api:
        model = (await api.post("/api/v1/models", json=transformer(unique()))).json()
        url = f"/api/v1/models/{model['model_id']}"
        first = await api.put(url, json={"description": "first"}, headers={"if-match": '"1"'})
        assert first.status_code == 200
        stale = await api.put(url, json={"description": "second"}, headers={"if-match": '"1"'})
        assert stale.status_code == 412
        assert (await api.get(url)).json()["description"] == "first"


async def test_update_refuses_immutable_and_invalid_fields(system):
    async with system.admin as api:
        model = (await api.post("/api/v1/models", json=transformer(unique()))).json()
        url = f"/api/v1/models/{model['model_id']}"
        rename = await api.patch(url, json={"name": "other"})
        bad_meta = await api.patch(url, json={"metadata": {"num_heads": 5}})  # 32 is not divisible by 5
    assert rename.status_code == 422 and rename.json()["errors"][0]["field"] == "name"
    assert bad_meta.status_code == 422


async def test_delete_is_soft_emits_model_deleted_and_frees_the_name(system):
    name = unique()
    async with TopicWatcher(system.kafka_bootstrap, topics.MODELS) as watcher, system.admin as api:
        model = (await api.post("/api/v1/models", json=transformer(name))).json()
        url = f"/api/v1/models/{model['model_id']}"
        assert (await api.delete(url)).status_code == 204
        assert (await api.get(url)).status_code == 404
        assert (await api.delete(url)).status_code == 404
        await watcher.wait_for(lambda r: r.key == model["model_id"].encode() and header(r, "ce_type") == "ModelDeleted")
        again = await api.post("/api/v1/models", json=transformer(name))
    assert again.status_code == 201 and again.json()["model_id"] != model["model_id"]


async def test_model_types_lists_metadata_schemas(system):
    async with system.admin as api:
        schemas = (await api.get("/api/v1/model-types")).json()
    assert "d_model" in schemas["transformer"]["properties"]
    assert "image_size" in schemas["vision"]["properties"]


# ---- seed 001 bodies and the model's status -----------------------------------------------------------

SEED_REGISTER = {
    "name": "bert-base-chinese",
    "model_path": "/path/to/model",
    "metadata": {"framework": "pytorch", "task": "text-classification", "input_shape": [512], "output_shape": [10]},
    "tags": {"language": "chinese", "version": "base"},
}


async def test_seed_001_register_body_model_path_is_refused_with_the_way_that_works(system):
    async with system.admin as api:
        response = await api.post("/api/v1/models", json=dict(SEED_REGISTER, name=unique("seed")))
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "model_path" and "/artifact" in error["message"]


async def test_seed_001_register_and_update_bodies_without_a_path_are_accepted(system):
    name = unique("seed")
    body = {k: v for k, v in SEED_REGISTER.items() if k != "model_path"}
    async with system.admin as api:
        created = await api.post("/api/v1/models", json=dict(body, name=name))
        assert created.status_code == 201, created.text
        model = created.json()
        assert model["type"] == "other" and model["framework"] == "pytorch"
        assert model["task"] == "text-classification" and model["status"] == "draft"
        assert model["metadata"] == {"input_shape": [512], "output_shape": [10]}
        updated = await api.put(f"/api/v1/models/{name}", json={
            "metadata": {"description": "BERT base model for Chinese text classification"},
            "tags": {"language": "chinese", "version": "base", "updated": "true"}})
        assert updated.status_code == 200, updated.text
        assert updated.json()["description"] == "BERT base model for Chinese text classification"
        assert updated.json()["tags"]["updated"] == "true"
        assert updated.json()["metadata"] == {"input_shape": [512], "output_shape": [10]}
        twice = await api.put(f"/api/v1/models/{name}", json={"framework": "onnx", "metadata": {"framework": "jax"}})
        assert twice.status_code == 422 and twice.json()["errors"][0]["field"] == "body"


async def test_status_is_the_most_advanced_stage_in_production(system):
    from libs.events.lifecycle import VersionArchived, VersionPromoted
    from libs.kit.uow import UnitOfWork
    from tests.support.kafka import eventually

    async with system.admin as api:
        model = (await api.post("/api/v1/models", json=transformer(unique("status")))).json()
        mid = uuid.UUID(model["model_id"])

        async def emit(event) -> None:  # as the lifecycle service would: through an outbox, onto Kafka
            async with UnitOfWork(system.pool, "gateway", source="lifecycle", actor="tests") as uow:
                await uow.emit(event)

        async def status_is(expected: str):
            return (await api.get(f"/api/v1/models/{mid}")).json()["status"] == expected

        move = dict(model_id=mid, version_id=uuid.uuid4(), version="1.0.0", environment="production")
        await emit(VersionPromoted(**move, from_stage="draft", to_stage="staging"))
        await eventually(lambda: status_is("staging"))
        await emit(VersionPromoted(**move, from_stage="staging", to_stage="production"))
        await eventually(lambda: status_is("production"))
        listed = (await api.get("/api/v1/models", params={"q": model["name"]})).json()["models"]
        assert [m["status"] for m in listed] == ["production"]
        await emit(VersionArchived(**move, from_stage="production", to_stage="archived"))
        await eventually(lambda: status_is("draft"))
