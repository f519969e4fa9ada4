"""Workers that die or stop mid-job. SIGKILL after at least one checkpoint: a second worker takes the job
over, resumes from the checkpoint (fewer epochs re-run than the job has) and the job succeeds once, with
one version. SIGTERM: the worker hands the job back, leaves its message uncommitted and exits 0."""
from __future__ import annotations

import pytest

from libs.events import topics
from tests.integration.training.conftest import body, is_event, of_job
from tests.support.kafka import TopicWatcher, header

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("stop_workers_after")]

EPOCHS = 8


async def test_a_worker_killed_mid_job_is_replaced_and_the_job_resumes_from_its_checkpoint(training):
    first = training.start_worker()
    await first.wait_until_owning(3)
    model = await training.register_model()
    async with TopicWatcher(training.kafka_bootstrap, topics.TRAINING) as watcher:
        job_id = (await training.queue(model["model_id"], dataset="digits",
                                       hyperparameters={"epochs": EPOCHS, "batch_size": 4}))["job_id"]
        # a progress report for epoch N is sent once epoch N's checkpoint is stored
        await watcher.wait_for(is_event(job_id, "TrainingProgress", lambda b: b["epoch"] >= 1), timeout=90)
        assert training.checkpoint_path(job_id).exists()
        first.kill()  # SIGKILL: no goodbye, the message stays uncommitted, the lease just stops being renewed

        second = training.start_worker()
        resumed = await watcher.wait_for(
            is_event(job_id, "TrainingStarted", lambda b: b["worker"] == second.name), timeout=90)
        completed = await watcher.wait_for(is_event(job_id, "TrainingCompleted"), timeout=120)
        events = of_job(watcher.seen, job_id)

    started = [body(r) for r in events if header(r, "ce_type") == "TrainingStarted"]
    assert started[0]["worker"] == first.name and started[0]["attempt"] == 1 and started[0]["resumed_from_epoch"] == 0
    resumed_from = body(resumed)["resumed_from_epoch"]
    assert resumed_from >= 1 and body(resumed)["attempt"] >= 2
    lost = [body(r) for r in events if header(r, "ce_type") == "TrainingFailed"]
    assert lost and lost[0]["reason"] == "worker stopped heartbeating" and not lost[0]["final"]

    rerun = [body(r)["epoch"] for r in events
             if header(r, "ce_type") == "TrainingProgress" and body(r)["attempt"] == body(resumed)["attempt"]]
    assert rerun == list(range(resumed_from + 1, EPOCHS + 1))
    assert len(rerun) < EPOCHS  # fewer epochs re-run than the job has
    assert [header(r, "ce_type") for r in events].count("TrainingCompleted") == 1
    done = body(completed)
    assert done["epochs_run"] == EPOCHS and done["attempt"] == body(resumed)["attempt"]

    versions = await training.versions_of(model["model_id"])
    assert len(versions) == 1 and versions[0]["lineage"]["training_job_id"] == job_id
    assert versions[0]["metadata"]["trained_by"] == second.name
    job = await training.job(job_id)
    assert job["state"] == "succeeded" and job["failures"] == 1
    second_log = await second.wait_for_log(lambda e: e.get("msg") == "resuming from checkpoint" and e.get("job_id") == job_id)
    assert second_log["epoch"] == resumed_from
    assert not training.checkpoint_path(job_id).exists()


async def test_sigterm_hands_the_running_job_back_and_exits_0(training):
    worker = training.start_worker()
    await worker.wait_until_owning(3)
    model = await training.register_model()
    async with TopicWatcher(training.kafka_bootstrap, topics.TRAINING) as watcher:
        job_id = (await training.queue(model["model_id"], dataset="digits",
                                       hyperparameters={"epochs": 100, "batch_size": 4}))["job_id"]
        await watcher.wait_for(is_event(job_id, "TrainingProgress"), timeout=90)
        worker.terminate()
        assert await worker.wait(60) == 0
        released = await watcher.wait_for(is_event(job_id, "TrainingFailed"), timeout=30)

    assert body(released)["reason"].startswith("released: ") and body(released)["final"] is False
    job = await training.job(job_id)
    # back in the queue without spending an attempt, and resumable from its checkpoint
    assert job["state"] == "queued" and job["failures"] == 0 and job["checkpoint_epoch"] >= 1
    logs = worker.logs()
    assert any(e.get("msg") == "attempt interrupted by shutdown; releasing the job" for e in logs)
    assert logs[-1]["msg"] == "worker stopped"
    assert (await training.cancel(job_id)).status_code == 200  # nobody else should train it after this test
