"""The search-indexer consuming real events from Kafka into the Postgres index, queried through its
internal API: fuzzy text, filters, metric ranges, sorting, paging, deletion, order and redelivery
tolerance, and rebuilds."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import httpx

from libs.events.envelope import Envelope
from libs.events.evaluation import EvaluationCompleted
from libs.events.lifecycle import VersionArchived, VersionPromoted
from libs.events.models import ModelDeleted, ModelRegistered, ModelUpdated
from libs.events.versions import VersionCreated, VersionDeleted, VersionMetricsRecorded, VersionTagged
from services.search_indexer import store
from tests.support.kafka import eventually

NOW = datetime.now(timezone.utc)


def model_event(model_id: uuid.UUID, name: str, run_tag: str, *, revision: int = 1, cls=ModelRegistered,
                **fields) -> ModelRegistered:
    key, value = run_tag.split(":")
    body = dict(model_id=model_id, name=name, type="transformer", framework="pytorch", task="text-classification",
                description=f"{name} model", tags={key: value}, owner="alice", created_at=NOW, updated_at=NOW,
                revision=revision)
    body.update(fields)
    return cls(**body)


def version_event(model_id: uuid.UUID, version: str, metrics: dict | None = None, *, minutes: int = 0,
                  version_id: uuid.UUID | None = None) -> VersionCreated:
    return VersionCreated(model_id=model_id, version_id=version_id or uuid.uuid4(), version=version,
                          version_type="release", metrics=metrics or {}, created_by="alice",
                          created_at=NOW + timedelta(minutes=minutes))


def promoted(v: VersionCreated, to_stage: str = "production", from_stage: str = "staging") -> VersionPromoted:
    return VersionPromoted(model_id=v.model_id, version_id=v.version_id, version=v.version, environment="production",
                           from_stage=from_stage, to_stage=to_stage)


def only(body: dict) -> dict:
    assert body["total"] == 1, body
    return body["models"][0]


async def test_bertt_finds_bert_base_chinese_with_its_production_version(search_system, run_tag):
    model_id = uuid.uuid4()
    await search_system.send(model_event(model_id, "bert-base-chinese", run_tag))
    old = version_event(model_id, "1.0.0", {"accuracy": 0.91}, minutes=1)
    new = version_event(model_id, "1.1.0", {"accuracy": 0.97}, minutes=2)
    for event in (old, new, promoted(new)):
        await search_system.send(event)
    body = await search_system.search_until(
        lambda b: b["total"] == 1 and b["models"][0]["status"] == "production", q="bertt", tag=run_tag)
    row = only(body)
    assert row["model_id"] == str(model_id) and row["name"] == "bert-base-chinese"
    assert (row["version"], row["metrics"]) == ("1.1.0", {"accuracy": 0.97})
    assert row["framework"] == "pytorch" and row["task"] == "text-classification"
    assert row["created_at"].startswith(NOW.strftime("%Y-%m-%dT%H:%M:%S"))
    assert body["page"] == 1 and body["page_size"] == 20
    assert (await search_system.search(q="bert-base", tag=run_tag))["total"] == 1
    assert (await search_system.search(q="gpt", tag=run_tag))["total"] == 0


async def test_filters_metric_ranges_sorting_and_paging(search_system, run_tag):
    specs = [("alpha", "pytorch", 0.80), ("beta", "pytorch", 0.95), ("gamma", "tensorflow", 0.99),
             ("delta", "pytorch", 0.60), ("epsilon", "pytorch", None)]
    for name, framework, accuracy in specs:
        model_id = uuid.uuid4()
        await search_system.send(model_event(model_id, f"{name}-{run_tag[4:]}", run_tag, framework=framework))
        await search_system.send(version_event(model_id, "1.0.0", {"accuracy": accuracy} if accuracy else {}))
    await search_system.search_until(lambda b: b["total"] == 5 and all(m["version"] for m in b["models"]),
                                     tag=run_tag)

    def short(body: dict) -> list[str]:
        return [m["name"].split("-")[0] for m in body["models"]]

    pytorch = await search_system.search(tag=run_tag, framework="pytorch", sort_by="accuracy", order="desc")
    assert short(pytorch) == ["beta", "alpha", "delta", "epsilon"]
    ranged = await search_system.search(tag=run_tag, metric=["accuracy>=0.8", "accuracy<0.99"], sort_by="accuracy",
                                        order="asc")
    assert short(ranged) == ["alpha", "beta"]
    first = await search_system.search(tag=run_tag, sort_by="accuracy", page=1, page_size=2)
    second = await search_system.search(tag=run_tag, sort_by="accuracy", page=2, page_size=2)
    third = await search_system.search(tag=run_tag, sort_by="accuracy", page=3, page_size=2)
    assert (first["total"], second["total"], third["total"]) == (5, 5, 5)
    assert short(first) + short(second) + short(third) == ["gamma", "beta", "alpha", "delta", "epsilon"]
    assert short(await search_system.search(tag=run_tag, sort_by="name", order="asc"))[:2] == ["alpha", "beta"]
    assert (await search_system.search(tag=run_tag, stage="production"))["total"] == 0
    assert (await search_system.search(tag=run_tag, stage="draft"))["total"] == 5


async def test_metrics_tags_and_stages_follow_their_events(search_system, run_tag):
    model_id = uuid.uuid4()
    await search_system.send(model_event(model_id, f"lifecycle-{run_tag[4:]}", run_tag))
    v = version_event(model_id, "2.0.0", {"accuracy": 0.5})
    await search_system.send(v)
    await search_system.send(VersionMetricsRecorded(model_id=model_id, version_id=v.version_id, version=v.version,
                                                    metrics={"f1": 0.7}, source="tests"))
    await search_system.send(EvaluationCompleted(
        model_id=model_id, version=v.version, version_id=v.version_id, evaluation_id=uuid.uuid4(), dataset="digits",
        dataset_hash="0" * 64, samples=10, device="cpu", metrics={"accuracy": 0.93}))
    await search_system.send(VersionTagged(model_id=model_id, version_id=v.version_id, version=v.version,
                                           tags=["gold"], added=["gold"], removed=[]))
    await search_system.send(promoted(v, "staging", "draft"))
    # four topics: wait until every event is in; the evaluation's accuracy (a later event) wins over the created one
    row = only(await search_system.search_until(
        lambda b: b["total"] == 1 and b["models"][0]["status"] == "staging" and b["models"][0]["version_tags"]
        and b["models"][0]["metrics"] == {"accuracy": 0.93, "f1": 0.7}, tag=run_tag))
    assert row["version_tags"] == ["gold"]
    assert (await search_system.search(tag=[run_tag, "gold"], metric="accuracy>0.9"))["total"] == 1
    await search_system.send(VersionArchived(model_id=model_id, version_id=v.version_id, version=v.version,
                                             environment="production", from_stage="staging", to_stage="archived"))
    await search_system.search_until(lambda b: b["total"] == 1, tag=run_tag, stage="archived")
    await search_system.send(model_event(model_id, f"renamed-{run_tag[4:]}", run_tag, revision=2, cls=ModelUpdated,
                                         description="now about translation", changed=["name", "description"]))
    row = only(await search_system.search_until(lambda b: b["total"] == 1, q="translation", tag=run_tag))
    assert row["name"] == f"renamed-{run_tag[4:]}"


async def test_versions_before_their_model_and_deletions(search_system, run_tag):
    model_id = uuid.uuid4()
    first = version_event(model_id, "1.0.0", {"accuracy": 0.7}, minutes=1)
    second = version_event(model_id, "1.1.0", {"accuracy": 0.8}, minutes=2)
    await search_system.send(first)
    await search_system.send(second)  # the model's registration comes after its versions
    await search_system.send(model_event(model_id, f"late-{run_tag[4:]}", run_tag))
    row = only(await search_system.search_until(lambda b: b["total"] == 1, tag=run_tag))
    assert row["version"] == "1.1.0"
    await search_system.send(VersionDeleted(model_id=model_id, version_id=second.version_id, version="1.1.0"))
    await search_system.search_until(lambda b: b["total"] == 1 and b["models"][0]["version"] == "1.0.0", tag=run_tag)
    await search_system.send(ModelDeleted(model_id=model_id, name=f"late-{run_tag[4:]}", deleted_at=NOW))
    await search_system.search_until(lambda b: b["total"] == 0, tag=run_tag)


async def _duplicates_seen(search_system) -> float:
    async with httpx.AsyncClient(base_url=search_system.indexer.url) as api:
        text = (await api.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith("cairn_events_duplicate_total{") and 'group="search-indexer"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_redelivered_event_has_no_second_effect(search_system, run_tag):
    model_id = uuid.uuid4()
    registered = await search_system.send(model_event(model_id, f"redeliver-{run_tag[4:]}", run_tag))
    await search_system.search_until(lambda b: b["total"] == 1, tag=run_tag)
    before = await _duplicates_seen(search_system)
    # a newer registration revision arrives, then the old envelope is delivered again
    await search_system.send(model_event(model_id, f"redeliver-{run_tag[4:]}", run_tag, revision=2, cls=ModelUpdated,
                                         description="second words", changed=["description"]))
    await search_system.search_until(lambda b: b["total"] == 1, q="second words", tag=run_tag)
    await search_system.send(envelope=registered)
    await eventually(lambda: _more(search_system, before))
    row = only(await search_system.search(tag=run_tag))
    assert row["description"] == "second words"
    pool = search_system.indexer.app.state.runtime.pool
    assert await pool.fetchval(f"SELECT count(*) FROM {store.SCHEMA}.inbox WHERE event_id = $1",
                               registered.id) == 1


async def _more(search_system, before: float) -> bool:
    return await _duplicates_seen(search_system) > before


async def test_rebuild_from_the_projection_and_from_the_audit_log(search_system, run_tag):
    model_id = uuid.uuid4()
    v = version_event(model_id, "3.0.0", {"accuracy": 0.88})
    await search_system.send(model_event(model_id, f"rebuild-{run_tag[4:]}", run_tag))
    await search_system.send(v)
    last = await search_system.send(promoted(v))
    expected = only(await search_system.search_until(
        lambda b: b["total"] == 1 and b["models"][0]["status"] == "production", tag=run_tag))
    indexer = search_system.indexer.app.state.indexer

    await indexer.index.clear()  # the index is lost (or a new one is empty)
    assert (await search_system.search(tag=run_tag))["total"] == 0
    async with search_system.internal() as api:
        report = (await api.post("/internal/search/rebuild", json={"source": "projection"})).json()
    assert report["source"] == "projection" and report["documents"] >= 1
    assert only(await search_system.search(tag=run_tag)) == expected

    # the projection and the index are both lost: the audit log holds the history
    async def audited() -> bool:
        async with httpx.AsyncClient(base_url=search_system.system.services["audit"].url,
                                     headers={"x-cairn-internal-token": search_system.token}) as api:
            entries = (await api.get("/internal/audit", params={"model_id": str(model_id)})).json()["entries"]
        return any(e["event_id"] == str(last.id) for e in entries)

    await eventually(audited)
    pool = search_system.indexer.app.state.runtime.pool
    await pool.execute(f"DELETE FROM {store.SCHEMA}.models")
    await indexer.index.clear()
    async with search_system.internal() as api:
        response = await api.post("/internal/search/rebuild", json={"source": "audit"})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["source"] == "audit" and report["events_replayed"] >= 3 and report["documents"] >= 1
    assert only(await search_system.search(tag=run_tag)) == expected
    # and events keep flowing into the rebuilt model
    await search_system.send(VersionMetricsRecorded(model_id=model_id, version_id=v.version_id, version=v.version,
                                                    metrics={"accuracy": 0.9}, source="tests"))
    await search_system.search_until(lambda b: b["total"] == 1 and b["models"][0]["metrics"]["accuracy"] == 0.9,
                                     tag=run_tag)


async def test_internal_api_needs_the_internal_token(search_system):
    async with httpx.AsyncClient(base_url=search_system.indexer.url) as api:
        assert (await api.get("/internal/search")).status_code == 401
        assert (await api.post("/internal/search/rebuild")).status_code == 401


async def test_envelopes_without_a_registered_model_are_not_searchable(search_system, run_tag):
    model_id = uuid.uuid4()
    v = version_event(model_id, "1.0.0")
    await search_system.send(Envelope(data=v, source="tests", actor="tests").data)
    pool = search_system.indexer.app.state.runtime.pool

    async def projected():
        return await pool.fetchval(f"SELECT state FROM {store.SCHEMA}.models WHERE model_id = $1", model_id)

    state = await eventually(projected)
    assert state["registered"] is False and str(v.version_id) in state["versions"]
    assert (await search_system.search(q=str(model_id)))["total"] == 0
