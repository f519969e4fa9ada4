"""The training scheduler's internal API without workers: job creation in one transaction, validation,
listing, cancellation, the worker protocol driven by hand (claim, heartbeat, progress, fail, complete), the
tick taking a job away from a silent worker, and cancellation of a deleted model's jobs."""
from __future__ import annotations

import uuid

import pytest

from libs.events import topics
from tests.integration.training.conftest import (
    DIGITS_VISION,
    HEARTBEAT_TIMEOUT_S,
    body,
    is_event,
    of_job,
    unique,
)
from tests.support.kafka import TopicWatcher, eventually, header

pytestmark = pytest.mark.asyncio

JOBS_CPU = topics.training_jobs("cpu")


async def test_creating_a_job_queues_it_with_its_request_and_first_job_message(training):
    model = await training.register_model()
    async with TopicWatcher(training.kafka_bootstrap, topics.TRAINING, JOBS_CPU) as watcher:
        response = await training.create_job(model["name"], dataset="digits", hyperparameters={"epochs": 2})
        assert response.status_code == 201, response.text
        job = response.json()
        job_id = job["job_id"]
        assert response.headers["location"] == f"/api/v1/training-jobs/{job_id}"
        requested = await watcher.wait_for(is_event(job_id, "TrainingRequested"))
        dispatched = await watcher.wait_for(is_event(job_id, "TrainingJobDispatched"))

    assert job["model_id"] == model["model_id"]
    assert (job["state"], job["attempt"], job["failures"], job["max_attempts"], job["pool"]) == ("queued", 0, 0, 3, "cpu")
    assert job["created_by"] == "alice"
    spec = job["spec"]
    assert spec["model_type"] == "vision" and spec["dataset"] == "digits" and spec["bump"] == "minor"
    # the model's metadata, completed for the dataset and resolved by the zoo
    assert spec["architecture"] == {**DIGITS_VISION, "base_channels": 16, "architecture": "cnn"}
    # hyperparameters are stored complete, so the job is reproducible from its record
    assert spec["hyperparameters"]["epochs"] == 2 and spec["hyperparameters"]["batch_size"] == 64

    assert requested.topic == topics.TRAINING and requested.key == model["model_id"].encode()
    assert header(requested, "ce_source") == "training-scheduler" and header(requested, "ce_actor") == "alice"
    assert body(requested)["spec"] == spec and body(requested)["max_attempts"] == 3
    assert dispatched.topic == JOBS_CPU and dispatched.key == model["model_id"].encode()
    assert body(dispatched) == {"model_id": model["model_id"], "job_id": job_id, "pool": "cpu", "attempt": 1}
    assert header(dispatched, "ce_specversion") == "1.0"

    live = await training.live_entries(job_id)
    assert [(e["type"], e["state"]) for e in live] == [("queued", "queued")]

    cancelled = await training.cancel(job_id)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["cancel_reason"] == "cancelled by bob"
    again = await training.cancel(job_id)
    assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
    assert [e["type"] for e in await training.live_entries(job_id)] == ["queued", "cancelled"]


@pytest.mark.parametrize("request_body, field", [
    ({"dataset": "digits", "hyperparameters": {"learning_rate": -0.1}}, "hyperparameters.learning_rate"),
    ({"dataset": "digits", "hyperparameters": {"learning_rate": "fast"}}, "hyperparameters.learning_rate"),
    ({"dataset": "digits", "hyperparameters": {"epochs": 0}}, "hyperparameters.epochs"),
    ({"dataset": "digits", "hyperparameters": {"warmup": 3}}, "hyperparameters.warmup"),
    ({"dataset": "digits", "hyperparameters": {"device": "cuda"}}, "hyperparameters.device"),
    ({"dataset": "wine"}, "dataset"),
    ({"dataset": "imagenet"}, "dataset"),
    ({"dataset": "digits", "pool": "tpu"}, "pool"),
    ({"dataset": "digits", "max_attempts": 0}, "max_attempts"),
    ({"hyperparameters": {}}, "dataset"),
])
async def test_invalid_requests_are_422_naming_the_field(training, request_body, field):
    model = await training.register_model()
    response = await training.create_job(model["model_id"], **request_body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == field


async def test_model_metadata_that_contradicts_the_dataset_is_422_naming_the_metadata_field(training):
    model = await training.register_model(metadata={"image_size": 8, "image_channels": 1, "num_classes": 5})
    response = await training.create_job(model["model_id"], dataset="digits")
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "metadata.num_classes", "message": "the model says 5 but dataset 'digits' needs at least 10"}]
    vit = await training.register_model(metadata={**DIGITS_VISION, "architecture": "vit"})
    response = await training.create_job(vit["model_id"], dataset="digits")
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "metadata.architecture"


async def test_an_unknown_model_or_parent_version_is_refused(training):
    assert (await training.create_job(unique("nobody"), dataset="digits")).status_code == 404
    model = await training.register_model()
    response = await training.create_job(model["model_id"], dataset="digits", parent_version="9.9.9")
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "parent_version"


async def test_jobs_are_listed_per_model_by_name_with_a_state_filter_and_paging(training):
    model = await training.register_model()
    ids = [(await training.queue(model["model_id"], dataset="digits"))["job_id"] for _ in range(3)]
    await training.cancel(ids[0])
    async with training.client(training.scheduler) as client:
        everything = (await client.get(f"/internal/models/{model['name']}/training-jobs")).json()
        queued = (await client.get(f"/internal/models/{model['model_id']}/training-jobs",
                                   params={"state": "queued"})).json()
        page2 = (await client.get(f"/internal/models/{model['model_id']}/training-jobs",
                                  params={"page": 2, "page_size": 2})).json()
        bad = await client.get(f"/internal/models/{model['model_id']}/training-jobs", params={"state": "paused"})
        missing = await client.get(f"/internal/training-jobs/{uuid.uuid4()}")
        no_token = await client.get(f"/internal/training-jobs/{ids[0]}", headers={"x-cairn-internal-token": "wrong"})
    assert everything["total"] == 3 and [j["job_id"] for j in everything["jobs"]] == ids[::-1]  # newest first
    assert queued["total"] == 2 and {j["job_id"] for j in queued["jobs"]} == set(ids[1:])
    assert page2["total"] == 3 and [j["job_id"] for j in page2["jobs"]] == [ids[0]]
    assert bad.status_code == 422 and missing.status_code == 404 and no_token.status_code == 401
    for job_id in ids[1:]:
        await training.cancel(job_id)


async def test_the_worker_protocol_by_hand_claim_progress_fail_retry_complete(training):
    """What a worker does, spelled out: the scheduler is the single writer of job state."""
    model = await training.register_model()
    job_id = (await training.queue(model["model_id"], dataset="digits", max_attempts=2))["job_id"]
    base = f"/internal/training-jobs/{job_id}"
    async with TopicWatcher(training.kafka_bootstrap, topics.TRAINING, JOBS_CPU) as watcher, \
            training.client(training.scheduler, actor="worker:hand") as w:
        first = await w.post(f"{base}/claim", json={"attempt": 1, "worker": "hand", "device": "cpu"})
        assert first.status_code == 200, first.text
        claim = first.json()
        lease = claim["lease_id"]
        assert (claim["attempt"], claim["resume"], claim["resumed_from_epoch"], claim["device"]) == (1, False, 0, "cpu")
        assert claim["checkpoint_key"] == f"checkpoints/training/{job_id}/latest.ckpt"
        assert claim["requested_by"] == "alice" and claim["spec"]["dataset"] == "digits"
        # a second worker holding a copy of the message is refused while the lease is live
        rival = await w.post(f"{base}/claim", json={"attempt": 1, "worker": "rival"})
        assert rival.status_code == 409 and rival.json()["code"] == "claim_refused"

        assert (await w.post(f"{base}/heartbeat", json={"lease_id": lease})).json() == {"cancel": False}
        stale = await w.post(f"{base}/heartbeat", json={"lease_id": str(uuid.uuid4())})
        assert stale.status_code == 409 and stale.json()["code"] == "stale_lease"
        report = {"epoch": 1, "epochs": 10, "train_loss": 1.5, "val_loss": 1.2, "val_accuracy": 0.6,
                  "samples_per_second": 900.0, "learning_rate": 0.001, "checkpoint_epoch": 1}
        assert (await w.post(f"{base}/progress", json={"lease_id": lease, **report})).json() == {"cancel": False}
        nan = await w.post(f"{base}/progress", content=b'{"lease_id": "%s", "epoch": 2, "epochs": 10, "train_loss": NaN, '
                           b'"samples_per_second": 1, "learning_rate": 0.1}' % lease.encode(),
                           headers={"content-type": "application/json"})
        assert nan.status_code in (400, 422)

        failed = await w.post(f"{base}/fail", json={"lease_id": lease, "reason": "CUDA out of memory"})
        assert failed.status_code == 200 and failed.json()["state"] == "queued" and failed.json()["failures"] == 1
        assert (await w.post(f"{base}/heartbeat", json={"lease_id": lease})).status_code == 409  # lease gone

        # after the back-off the tick sends the job message of attempt 2
        second_message = await watcher.wait_for(is_event(job_id, "TrainingJobDispatched", lambda b: b["attempt"] == 2))
        retry = await w.post(f"{base}/claim", json={"attempt": 2, "worker": "hand"})
        assert retry.status_code == 200, retry.text
        claim2 = retry.json()
        assert claim2["attempt"] == 2 and claim2["resume"] is True and claim2["resumed_from_epoch"] == 1
        done = await w.post(f"{base}/complete", json={
            "lease_id": claim2["lease_id"], "version": "1.0.0", "version_id": str(uuid.uuid4()),
            "artifact_sha256": "ab" * 32, "metrics": {"val_accuracy": 0.9}, "epochs_run": 10, "best_epoch": 9,
            "stopped_early": False, "dataset_hash": "h" * 64, "duration_s": 3.5})
        assert done.status_code == 200 and done.json()["state"] == "succeeded"
        assert done.json()["result"]["version"] == "1.0.0"
        after = await w.post(f"{base}/claim", json={"attempt": 2, "worker": "late"})
        assert after.status_code == 409
        await watcher.wait_for(is_event(job_id, "TrainingCompleted"))
        events = of_job(watcher.seen, job_id)

    assert second_message.topic == JOBS_CPU
    kinds = [(header(r, "ce_type"), body(r).get("attempt")) for r in events if r.topic == topics.TRAINING]
    assert kinds == [("TrainingRequested", None), ("TrainingStarted", 1), ("TrainingProgress", 1),
                     ("TrainingFailed", 1), ("TrainingStarted", 2), ("TrainingCompleted", 2)]
    failed_event = body(of_job(events, job_id, "TrainingFailed")[0])
    assert failed_event["final"] is False and failed_event["reason"] == "CUDA out of memory"
    started2 = body(of_job(events, job_id, "TrainingStarted")[1])
    assert started2["resumed_from_epoch"] == 1 and started2["worker"] == "hand"
    live = await training.live_entries(job_id)
    assert [(e["type"], e["state"]) for e in live] == [
        ("queued", "queued"), ("started", "running"), ("progress", "running"), ("failed", "queued"),
        ("started", "running"), ("completed", "succeeded")]
    progress = live[2]
    assert progress["epoch"] == 1 and progress["train_loss"] == 1.5 and progress["samples_per_second"] == 900.0
    assert progress["metrics"] == {"val_loss": 1.2, "val_accuracy": 0.6}


async def test_a_silent_worker_loses_its_attempt_and_the_last_one_is_dead_lettered(training):
    model = await training.register_model()
    job_id = (await training.queue(model["model_id"], dataset="digits", max_attempts=2))["job_id"]
    base = f"/internal/training-jobs/{job_id}"
    dlq = topics.dead_letters("training-jobs")
    async with TopicWatcher(training.kafka_bootstrap, topics.TRAINING, JOBS_CPU, dlq) as watcher, \
            training.client(training.scheduler) as w:
        assert (await w.post(f"{base}/claim", json={"attempt": 1, "worker": "silent"})).status_code == 200
        # no heartbeat: the tick takes the attempt away and dispatches attempt 2 after the back-off
        lost = await watcher.wait_for(is_event(job_id, "TrainingFailed"), timeout=HEARTBEAT_TIMEOUT_S + 10)
        await watcher.wait_for(is_event(job_id, "TrainingJobDispatched", lambda b: b["attempt"] == 2))
        assert (await w.post(f"{base}/claim", json={"attempt": 2, "worker": "silent-too"})).status_code == 200
        final = await watcher.wait_for(is_event(job_id, "TrainingFailed", lambda b: b["final"]),
                                       timeout=HEARTBEAT_TIMEOUT_S + 10)
        dead = await watcher.wait_for(lambda r: r.topic == dlq and body(r)["job_id"] == job_id)
    assert body(lost)["reason"] == "worker stopped heartbeating" and body(lost)["final"] is False
    assert body(lost)["retry_at"] is not None
    assert body(final)["attempt"] == 2
    assert header(dead, "dlq_reason") == "worker stopped heartbeating"
    assert header(dead, "dlq_topic") == JOBS_CPU and header(dead, "ce_type") == "TrainingJobDispatched"
    job = await training.job(job_id)
    assert (job["state"], job["attempt"], job["failures"]) == ("failed", 2, 2)
    assert job["last_error"] == "worker stopped heartbeating"


async def test_deleting_a_model_cancels_its_unfinished_jobs(training):
    model = await training.register_model()
    job_id = (await training.queue(model["model_id"], dataset="digits"))["job_id"]
    async with training.client(training.registry) as registry:
        assert (await registry.delete(f"/internal/models/{model['model_id']}")).status_code == 204

    async def cancelled():
        job = await training.job(job_id)
        return job if job["state"] == "cancelled" else None

    job = await eventually(cancelled, timeout=30)
    assert job["cancel_reason"] == f"model {model['name']} was deleted"
