"""Evaluations driven by events, on real Postgres and Kafka with weights trained in the test:
ArtifactStored → EvaluationCompleted measured by the service on the held-out split; unreadable weights
→ EvaluationFailed; EvaluationRequested from Kafka or from the HTTP API → a new evaluation; a
redelivered event evaluates once; the metrics reach the version service."""
from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone

import pytest

from libs.events.envelope import Envelope
from libs.events.evaluation import EvaluationRequested
from libs.events.versions import ArtifactStored, VersionCreated
from libs.ml.artifact import load_artifact, save_artifact
from libs.ml.datasets import load_dataset
from libs.ml.evaluate import evaluate
from services.evaluation import store
from services.evaluation.domain import evaluation_id_for
from tests.support.kafka import eventually, header

pytestmark = pytest.mark.asyncio

WAIT = 120  # first evaluations wait for the consumer groups to join
METRIC_KEYS = {
    "accuracy", "precision_macro", "recall_macro", "f1_macro", "loss",
    "latency_p50_ms", "latency_p99_ms", "throughput_per_s", "parameters", "size_bytes", "flops",
}


def completed(**match):
    def predicate(record) -> bool:
        if header(record, "ce_type") != "EvaluationCompleted":
            return False
        body = json.loads(record.value)
        return all(body.get(k) == str(v) for k, v in match.items())

    return predicate


def failed(model_id, version):
    def predicate(record) -> bool:
        body = json.loads(record.value)
        return (header(record, "ce_type") == "EvaluationFailed" and body["model_id"] == str(model_id)
                and body["version"] == version)

    return predicate


async def test_new_weights_are_measured_by_the_service_on_the_held_out_split(evaluation_system, evaluation_events, weights):
    system, watcher = evaluation_system, evaluation_events
    model = await system.register_model("digits-cnn")
    version_id, stored = await system.announce_version(
        model["model_id"], "1.0.0", weights.good_cnn.artifact, reported_metrics={"accuracy": 0.11},
    )
    record = await watcher.wait_for(completed(version_id=version_id), timeout=WAIT)
    event = json.loads(record.value)
    metrics = event["metrics"]
    assert set(metrics) == METRIC_KEYS
    assert metrics["accuracy"] >= 0.9  # the trainer's "reported" 0.11 plays no part

    # the same held-out split, measured here independently, gives the same quality numbers
    data = load_dataset("digits", seed=0, for_model_type="vision")
    expected = evaluate(load_artifact(weights.good_cnn.artifact).model, data.test, device="cpu", latency_runs=1)
    assert metrics["accuracy"] == pytest.approx(expected.accuracy)
    assert metrics["f1_macro"] == pytest.approx(expected.f1_macro)
    assert metrics["loss"] == pytest.approx(expected.loss, rel=1e-4)
    assert (event["dataset"], event["split"], event["samples"]) == ("digits", "test", len(data.test))
    assert event["dataset_hash"] == data.content_hash
    assert event["device"] == "cpu"
    assert 0 < metrics["latency_p50_ms"] <= metrics["latency_p99_ms"]
    assert metrics["throughput_per_s"] > 0
    assert metrics["parameters"] == weights.good_cnn.parameters
    assert metrics["size_bytes"] == weights.good_cnn.state_dict_bytes
    assert metrics["flops"] > 2 * weights.good_cnn.parameters  # convolutions reuse their weights per pixel
    assert event["evaluation_id"] == str(evaluation_id_for(stored.id))
    assert header(record, "ce_source") == "evaluation"
    assert header(record, "ce_subject") == model["model_id"]
    assert header(record, "traceparent").split("-")[1] == stored.traceparent.split("-")[1]  # same trace

    async with system.api() as api:
        listing = await api.get(f"/internal/models/{model['name']}/versions/1.0.0/evaluations")
        assert listing.status_code == 200, listing.text
        [summary] = listing.json()["evaluations"]
        assert summary["evaluation_id"] == event["evaluation_id"]
        assert (summary["state"], summary["trigger"], summary["held_out"]) == ("completed", "artifact_stored", True)
        assert summary["metrics"] == metrics
        detail = (await api.get(f"/internal/evaluations/{event['evaluation_id']}")).json()
    layers = {layer["name"]: layer for layer in detail["structure"]}
    assert layers["features.0.0"]["parameter_shapes"]["weight"] == [16, 1, 3, 3]
    assert layers["head"]["output_shape"] == [1, 10]
    assert detail["config"]["base_channels"] == 16
    assert detail["hyperparameters"]["epochs"] == 4
    assert detail["details"]["trained_on"]["dataset_hash"] == data.content_hash

    # the version service is told, with the internal token
    async def posted():
        return system.versions.posts_for(model["model_id"], "1.0.0")

    [post] = await eventually(posted)
    assert post["body"] == {"metrics": metrics, "source": "evaluation"}
    assert post["token"] == system.token

    async def synced():
        run = await store.get_run(system.pool, uuid.UUID(event["evaluation_id"]))
        return run.sync_state == "done" and run

    assert (await eventually(synced)).sync_attempts == 1


async def test_metrics_are_retried_until_the_version_service_takes_them(evaluation_system, evaluation_events, weights):
    system, watcher = evaluation_system, evaluation_events
    model = await system.register_model("retry")
    system.versions.fail_next[(model["model_id"], "1.0.0")] = 2
    version_id, _ = await system.announce_version(model["model_id"], "1.0.0", weights.weak_cnn.artifact)
    record = await watcher.wait_for(completed(version_id=version_id), timeout=WAIT)
    evaluation_id = uuid.UUID(json.loads(record.value)["evaluation_id"])

    async def synced():
        run = await store.get_run(system.pool, evaluation_id)
        return run.sync_state == "done" and run

    run = await eventually(synced, timeout=30)
    assert run.sync_attempts == 3
    assert len(system.versions.posts_for(model["model_id"], "1.0.0")) == 3


async def test_unreadable_weights_end_as_evaluation_failed_not_as_a_dead_letter(evaluation_system, evaluation_events):
    system, watcher = evaluation_system, evaluation_events
    model_id = uuid.uuid4()
    consumer = next(c for c in system.runtime.consumers if c.group == "evaluation")
    dead_before = consumer.dead_lettered
    _, stored = await system.announce_version(model_id, "0.1.0", os.urandom(4096))
    record = await watcher.wait_for(failed(model_id, "0.1.0"), timeout=WAIT)
    reason = json.loads(record.value)["reason"]
    assert "cairn.torch/1" in reason
    run = await store.get_run(system.pool, evaluation_id_for(stored.id))
    assert (run.state, run.reason, run.attempts) == ("failed", reason, 1)  # refused once, no retry loop
    assert run.metrics is None and run.sync_state == "none"
    assert consumer.dead_lettered == dead_before


async def test_weights_without_a_dataset_fail_until_a_dataset_is_requested(evaluation_system, evaluation_events, weights):
    system, watcher = evaluation_system, evaluation_events
    model = await system.register_model("no-dataset")
    loaded = load_artifact(weights.good_cnn.artifact)
    bare = save_artifact(loaded.model, loaded.model_type, loaded.config, extra={})
    version_id, _ = await system.announce_version(model["model_id"], "2.0.0", bare)
    refusal = await watcher.wait_for(failed(model["model_id"], "2.0.0"), timeout=WAIT)
    assert "names no dataset" in json.loads(refusal.value)["reason"]
    request = await system.send(EvaluationRequested(model_id=model["model_id"], version="2.0.0", dataset="digits"))
    record = await watcher.wait_for(completed(evaluation_id=evaluation_id_for(request.id)), timeout=WAIT)
    event = json.loads(record.value)
    assert event["version_id"] == str(version_id)
    assert event["metrics"]["accuracy"] >= 0.9
    run = await store.get_run(system.pool, evaluation_id_for(request.id))
    assert (run.trigger, run.requested_dataset, run.details["held_out"]) == ("requested", "digits", None)


async def test_evaluation_requested_on_kafka_evaluates_again_on_another_split(evaluation_system, evaluation_events, weights):
    system, watcher = evaluation_system, evaluation_events
    model = await system.register_model("again")
    version_id, stored = await system.announce_version(model["model_id"], "1.0.0", weights.good_cnn.artifact)
    first = json.loads((await watcher.wait_for(completed(version_id=version_id), timeout=WAIT)).value)
    request = await system.send(EvaluationRequested(model_id=model["model_id"], version="1.0.0", dataset_seed=1))
    second = json.loads((await watcher.wait_for(
        completed(evaluation_id=evaluation_id_for(request.id)), timeout=WAIT)).value)
    assert first["evaluation_id"] == str(evaluation_id_for(stored.id))
    assert second["evaluation_id"] != first["evaluation_id"]
    assert second["dataset_hash"] == load_dataset("digits", seed=1, for_model_type="vision").content_hash
    assert second["dataset_hash"] != first["dataset_hash"]
    async with system.api() as api:
        listing = (await api.get(f"/internal/models/{model['model_id']}/versions/1.0.0/evaluations")).json()
    assert [e["evaluation_id"] for e in listing["evaluations"]] == [second["evaluation_id"], first["evaluation_id"]]
    assert [e["held_out"] for e in listing["evaluations"]] == [False, True]


async def test_a_version_not_announced_yet_is_looked_up_at_the_version_service(evaluation_system, evaluation_events, weights):
    system, watcher = evaluation_system, evaluation_events
    model_id, version_id = uuid.uuid4(), uuid.uuid4()
    artifact = await system.store_weights(weights.weak_cnn.artifact)
    system.versions.versions[(str(model_id), "3.0.0")] = {
        "model_id": str(model_id), "version_id": str(version_id), "version": "3.0.0",
        "artifact": artifact.model_dump(), "created_at": datetime.now(timezone.utc).isoformat(),
    }
    request = await system.send(EvaluationRequested(model_id=model_id, version="3.0.0"))
    record = await watcher.wait_for(completed(evaluation_id=evaluation_id_for(request.id)), timeout=WAIT)
    assert json.loads(record.value)["version_id"] == str(version_id)
    known = await store.get_version(system.pool, version_id)
    assert known.artifact_sha256 == artifact.sha256


async def test_a_redelivered_event_evaluates_once(evaluation_system, evaluation_events, weights):
    system, watcher = evaluation_system, evaluation_events
    model_id, version_id = uuid.uuid4(), uuid.uuid4()
    artifact = await system.store_weights(weights.weak_cnn.artifact)
    envelope = Envelope(data=ArtifactStored(model_id=model_id, version_id=version_id, version="1.0.0",
                                            artifact=artifact, deduplicated=False), source="tests", actor="tests")
    await system.send(envelope=envelope)
    await system.send(envelope=envelope)  # redelivered: same ce_id
    # a later event on the same partition (same key) proves the consumer got past both copies
    marker = uuid.uuid4()
    await system.send(VersionCreated(model_id=model_id, version_id=marker, version="1.0.1", version_type="release",
                                     created_by="tests", created_at=datetime.now(timezone.utc)))
    await eventually(lambda: store.get_version(system.pool, marker), timeout=WAIT)
    await watcher.wait_for(completed(version_id=version_id), timeout=WAIT)
    runs = await system.pool.fetchval("SELECT count(*) FROM evaluation.evaluations WHERE version_id = $1", version_id)
    emitted = await system.pool.fetchval(
        "SELECT count(*) FROM evaluation.outbox WHERE headers->>'ce_type' = 'EvaluationCompleted'"
        " AND convert_from(body, 'UTF8')::jsonb->>'version_id' = $1", str(version_id))
    inbox = await system.pool.fetchval(
        "SELECT count(*) FROM evaluation.inbox WHERE consumer = 'evaluation' AND event_id = $1", envelope.id)
    assert (runs, emitted, inbox) == (1, 1, 1)


async def test_the_http_api_requests_through_the_same_event_path(evaluation_system, evaluation_events, weights):
    system, watcher = evaluation_system, evaluation_events
    model = await system.register_model("http")
    version_id, _ = await system.announce_version(model["model_id"], "1.0.0", weights.weak_cnn.artifact)
    await watcher.wait_for(completed(version_id=version_id), timeout=WAIT)
    async with system.api(actor="alice") as api:
        response = await api.post(f"/internal/models/{model['name']}/versions/1.0.0/evaluate",
                                  json={"dataset": "digits", "dataset_seed": 2})
        assert response.status_code == 202, response.text
        accepted = response.json()
        assert response.headers["location"] == f"/api/v1/evaluations/{accepted['evaluation_id']}"
        request = await watcher.wait_for(lambda r: header(r, "ce_id") == accepted["request_id"], timeout=WAIT)
        assert (header(request, "ce_type"), header(request, "ce_source"), header(request, "ce_actor")) == (
            "EvaluationRequested", "evaluation", "alice")
        await watcher.wait_for(completed(evaluation_id=accepted["evaluation_id"]), timeout=WAIT)
        detail = (await api.get(f"/internal/evaluations/{accepted['evaluation_id']}")).json()
        assert (detail["trigger"], detail["requested_by"], detail["dataset_seed"]) == ("requested", "alice", 2)
        assert detail["held_out"] is False

        unknown_version = await api.post(f"/internal/models/{model['name']}/versions/9.9.9/evaluate")
        assert unknown_version.status_code == 404
        unknown_model = await api.get("/internal/models/no-such-model-x/versions/1.0.0/evaluations")
        assert unknown_model.status_code == 404
        bad_dataset = await api.post(f"/internal/models/{model['name']}/versions/1.0.0/evaluate",
                                     json={"dataset": "imagenet"})
        assert bad_dataset.status_code == 422
        assert bad_dataset.json()["errors"][0]["field"] == "dataset"
        missing = await api.get(f"/internal/evaluations/{uuid.uuid4()}")
        assert missing.status_code == 404
    async with system.api() as api:
        api.headers.pop("x-cairn-internal-token")
        assert (await api.get(f"/internal/evaluations/{accepted['evaluation_id']}")).status_code == 401


async def test_a_run_left_running_by_a_dead_process_is_taken_over(evaluation_system, evaluation_events, weights):
    system, watcher = evaluation_system, evaluation_events
    model_id, version_id = uuid.uuid4(), uuid.uuid4()
    artifact = await system.store_weights(weights.weak_cnn.artifact)
    await store.upsert_version(system.pool, version_id=version_id, model_id=model_id, version="1.0.0", artifact=artifact)
    evaluation_id = uuid.uuid4()
    # claimed by a process that died at once: its lease is already over
    ghost = await store.insert_run(
        system.pool, evaluation_id=evaluation_id, model_id=model_id, version="1.0.0", version_id=version_id,
        trigger="requested", trigger_event_id=None, dataset=None, dataset_seed=None, priority=1, actor="tests",
        traceparent=None, now=datetime.now(timezone.utc), lease_owner="ghost:1:dead", lease_s=0.0,
    )
    assert (ghost.state, ghost.attempts) == ("running", 1)
    system.evaluation.app.state.evaluation_worker.wake()
    await watcher.wait_for(completed(evaluation_id=evaluation_id), timeout=WAIT)
    run = await store.get_run(system.pool, evaluation_id)
    assert (run.state, run.attempts, run.lease_owner) == ("completed", 2, None)
