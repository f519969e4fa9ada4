"""Real worker subprocesses (``python -m services.worker --pool cpu``) training real PyTorch models on CPU:
a digits CNN to one version, a long job without a consumer-group rebalance, a cancelled job, and a job that
always diverges, retried with back-off and dead-lettered."""
from __future__ import annotations

import hashlib

import pytest

from libs.events import topics
from libs.ml.artifact import load_artifact
from libs.ml.datasets import load_dataset
from tests.integration.training.conftest import (
    DIGITS_VISION,
    MAX_POLL_INTERVAL_MS,
    SESSION_TIMEOUT_MS,
    body,
    is_event,
    of_job,
)
from tests.support.kafka import TopicWatcher, eventually, header

pytestmark = pytest.mark.asyncio

DLQ = topics.dead_letters("training-jobs")


@pytest.fixture(scope="module")
async def cpu_worker(training):
    """One worker for the module; it is the group's only member once it owns every partition."""
    worker = training.start_worker()
    await worker.wait_for_log(lambda e: e.get("msg") == "worker started")
    await worker.wait_until_owning(3)
    yield worker
    await worker.stop()


async def test_a_digits_cnn_trains_on_cpu_to_exactly_one_version(training, cpu_worker):
    model = await training.register_model()
    async with TopicWatcher(training.kafka_bootstrap, topics.TRAINING) as watcher:
        job = await training.queue(model["model_id"], dataset="digits", bump="major",
                                   hyperparameters={"epochs": 3, "batch_size": 32, "learning_rate": 0.003, "seed": 7})
        job_id = job["job_id"]
        completed = await watcher.wait_for(is_event(job_id, "TrainingCompleted"), timeout=120)
        events = of_job(watcher.seen, job_id)

    assert [header(r, "ce_type") for r in events] == [
        "TrainingRequested", "TrainingStarted", "TrainingProgress", "TrainingProgress", "TrainingProgress",
        "TrainingCompleted"]
    started = body(events[1])
    assert started["worker"] == cpu_worker.name and started["device"] == "cpu" and started["resumed_from_epoch"] == 0
    assert header(events[1], "ce_actor") == f"worker:{cpu_worker.name}"
    progress = [body(r) for r in events[2:5]]
    assert [p["epoch"] for p in progress] == [1, 2, 3] and all(p["epochs"] == 3 for p in progress)
    assert all(p["samples_per_second"] > 0 and p["val_accuracy"] is not None for p in progress)
    done = body(completed)
    assert done["epochs_run"] == 3 and done["attempt"] == 1
    digits = load_dataset("digits", seed=0, for_model_type="vision")
    assert done["dataset_hash"] == digits.content_hash
    assert done["metrics"]["val_accuracy"] > 0.5  # real learning: ten classes, chance is 0.1

    versions = await training.versions_of(model["model_id"])
    assert len(versions) == 1
    version = versions[0]
    assert (version["version"], version["version_id"]) == (done["version"], done["version_id"])
    assert version["version"] == "1.0.0"  # bump major from nothing
    assert version["lineage"]["training_job_id"] == job_id
    assert version["lineage"]["dataset"] == "digits" and version["lineage"]["dataset_hash"] == digits.content_hash
    assert version["lineage"]["hyperparameters"]["seed"] == 7
    assert version["metrics"] == done["metrics"]
    assert version["metadata"]["trained_by"] == cpu_worker.name and version["metadata"]["device"] == "cpu"
    assert version["metadata"]["epochs_run"] == 3
    assert version["created_by"] == "alice"  # who asked for the training
    assert version["artifact"]["sha256"] == done["artifact_sha256"]

    data = await training.artifact(model["model_id"], version["version"])
    assert hashlib.sha256(data).hexdigest() == done["artifact_sha256"]
    loaded = load_artifact(data)
    assert loaded.model_type == "vision" and loaded.config == {**DIGITS_VISION, "base_channels": 16, "architecture": "cnn"}
    assert loaded.extra["dataset_hash"] == digits.content_hash
    images, labels = digits.test.tensors
    accuracy = (loaded.model(images).argmax(dim=1) == labels).float().mean().item()
    assert accuracy > 0.5  # the stored weights are the trained ones

    state = await training.job(job_id)
    assert state["state"] == "succeeded" and state["result"]["version"] == version["version"]
    assert not training.checkpoint_path(job_id).exists()  # deleted after success
    live = await training.live_entries(job_id)
    assert [e["type"] for e in live] == ["queued", "started", "progress", "progress", "progress", "completed"]
    assert live[-1]["state"] == "succeeded" and live[-1]["version"] == version["version"]
    assert [e["epoch"] for e in live if e["type"] == "progress"] == [1, 2, 3]


async def test_a_long_job_causes_no_consumer_group_rebalance(training, cpu_worker):
    """The job runs longer than the worker's max poll interval and its session timeout: a worker that
    stopped polling (or heartbeating) while training would be thrown out of the group mid-job."""
    model = await training.register_model()
    seen_before = len(cpu_worker.logs())
    async with TopicWatcher(training.kafka_bootstrap, topics.TRAINING) as watcher:
        job_id = (await training.queue(model["model_id"], dataset="digits",
                                       hyperparameters={"epochs": 10, "batch_size": 4}))["job_id"]
        started = await watcher.wait_for(is_event(job_id, "TrainingStarted"), timeout=60)
        completed = await watcher.wait_for(is_event(job_id, "TrainingCompleted"), timeout=180)
    duration = (completed.timestamp - started.timestamp) / 1000
    assert duration * 1000 > max(MAX_POLL_INTERVAL_MS, SESSION_TIMEOUT_MS), f"job too short to prove anything: {duration}s"
    during = cpu_worker.logs()[seen_before:]
    assert [e for e in during if e.get("msg") == "partitions revoked"] == []
    assert [e for e in during if e.get("msg") == "partitions assigned"] == []
    assert body(completed)["attempt"] == 1  # never taken away from the worker
    # the liveness file (CAIRN_HEARTBEAT_FILE) was touched while the job ran: the loop kept polling
    assert cpu_worker.alive_file.stat().st_mtime * 1000 > started.timestamp
    assert len(await training.versions_of(model["model_id"])) == 1


async def test_a_cancelled_running_job_stops_and_makes_no_version(training, cpu_worker):
    model = await training.register_model()
    async with TopicWatcher(training.kafka_bootstrap, topics.TRAINING) as watcher:
        job_id = (await training.queue(model["model_id"], dataset="digits",
                                       hyperparameters={"epochs": 200, "batch_size": 4}))["job_id"]
        await watcher.wait_for(is_event(job_id, "TrainingProgress"), timeout=90)
        cancelled = await training.cancel(job_id)
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        await watcher.wait_for(is_event(job_id, "TrainingCancelled"))
        stopped = await cpu_worker.wait_for_log(
            lambda e: e.get("msg") == "job cancelled; acknowledged" and e.get("job_id") == job_id, timeout=30)
    assert stopped["epochs_completed"] < 200
    assert of_job(watcher.seen, job_id, "TrainingCompleted") == []
    assert await training.versions_of(model["model_id"]) == []
    assert (await training.job(job_id))["state"] == "cancelled"
    assert (await training.live_entries(job_id))[-1]["type"] == "cancelled"
    # the worker moved on: a later job still trains
    quick = await training.queue(model["model_id"], dataset="digits", hyperparameters={"epochs": 1})
    await training.wait_for_state(quick["job_id"], "succeeded", timeout=90)


async def test_a_diverging_job_is_retried_with_backoff_then_dead_lettered_with_its_reason(training, cpu_worker):
    model = await training.register_model(type="regression", metadata={})
    hyperparameters = {"epochs": 3, "optimizer": "sgd", "learning_rate": 10, "momentum": 0.99}  # loss → NaN
    async with TopicWatcher(training.kafka_bootstrap, topics.TRAINING, DLQ) as watcher:
        job_id = (await training.queue(model["model_id"], dataset="diabetes", max_attempts=3,
                                       hyperparameters=hyperparameters))["job_id"]
        final = await watcher.wait_for(is_event(job_id, "TrainingFailed", lambda b: b["final"]), timeout=120)
        dead = await watcher.wait_for(lambda r: r.topic == DLQ and body(r)["job_id"] == job_id)
        failures = of_job(watcher.seen, job_id, "TrainingFailed")
        starts = of_job(watcher.seen, job_id, "TrainingStarted")

    assert [body(r)["attempt"] for r in starts] == [1, 2, 3]
    assert [(body(r)["attempt"], body(r)["final"]) for r in failures] == [(1, False), (2, False), (3, True)]
    assert all("loss became nan" in body(r)["reason"] for r in failures)
    # back-off doubles: the second wait is longer than the first
    waits = [(_time(body(r)["retry_at"]) - _time(header(r, "ce_time"))) for r in failures[:2]]
    assert 0 < waits[0] < waits[1]
    # and the next attempt never started before its retry time
    for failure, start in zip(failures[:2], starts[1:]):
        assert _time(header(start, "ce_time")) >= _time(body(failure)["retry_at"])
    assert body(final)["retry_at"] is None
    assert header(dead, "dlq_reason") == body(final)["reason"]
    assert header(dead, "dlq_attempts") == "3" and header(dead, "ce_type") == "TrainingJobDispatched"
    assert dead.key == model["model_id"].encode()
    job = await training.job(job_id)
    assert (job["state"], job["attempt"], job["failures"]) == ("failed", 3, 3)
    assert await training.versions_of(model["model_id"]) == []


def _time(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value).timestamp()


async def test_job_messages_of_finished_jobs_are_acknowledged_and_skipped(training, cpu_worker):
    """A redelivered message of a job that already finished is refused by the scheduler and committed."""
    model = await training.register_model()
    job_id = (await training.queue(model["model_id"], dataset="digits", hyperparameters={"epochs": 1}))["job_id"]
    await training.wait_for_state(job_id, "succeeded", timeout=90)
    async with training.client(training.scheduler) as client:
        # what a duplicate delivery looks like from the scheduler's side
        refused = await client.post(f"/internal/training-jobs/{job_id}/claim", json={"attempt": 1, "worker": "dup"})
    assert refused.status_code == 409

    async def one_version():
        return len(await training.versions_of(model["model_id"])) == 1

    await eventually(one_version, timeout=5)


async def test_a_version_an_earlier_attempt_already_made_is_reused_not_duplicated(training, cpu_worker):
    """A crash between uploading the artifact and reporting completion: the next attempt's create returns
    the existing version (200) and the job completes with it, so a retried job never makes two versions."""
    model = await training.register_model()
    job_id = (await training.queue(model["model_id"], dataset="digits", hyperparameters={"epochs": 3}))["job_id"]
    earlier = b"weights uploaded by an earlier attempt"
    sha256 = hashlib.sha256(earlier).hexdigest()
    async with training.client(training.version, actor="alice") as version:
        made = await version.post(f"/internal/models/{model['model_id']}/versions",
                                  json={"bump": "minor", "lineage": {"training_job_id": job_id, "dataset": "digits"}})
        assert made.status_code == 201, made.text
        uploaded = await version.put(f"/internal/models/{model['model_id']}/versions/{made.json()['version']}/artifact",
                                     content=earlier, headers={"x-content-sha256": sha256})
        assert uploaded.status_code == 201, uploaded.text
    job = await training.wait_for_state(job_id, "succeeded", "failed", timeout=90)
    assert job["state"] == "succeeded", job
    assert job["result"]["version"] == made.json()["version"] and job["result"]["artifact_sha256"] == sha256
    versions = await training.versions_of(model["model_id"])
    assert [v["version"] for v in versions] == [made.json()["version"]]
    await cpu_worker.wait_for_log(lambda e: e.get("msg") == "version already made by an earlier attempt"
                                  and e.get("job_id") == job_id)
