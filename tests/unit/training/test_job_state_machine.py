"""The training job state machine (services.training_scheduler.domain): claims, leases, retries with
back-off, dead-lettering after max_attempts, cancellation and the tick's dispatch rules. Pure: the clock
is passed in."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from uuid import uuid4

import pytest

from libs.events.training import (
    TrainingCancelled,
    TrainingCompleted,
    TrainingFailed,
    TrainingJobDispatched,
    TrainingProgress,
    TrainingRequested,
    TrainingSpec,
    TrainingStarted,
)
from libs.kit.errors import Conflict
from services.training_scheduler import domain
from services.training_scheduler.domain import JobState

T0 = datetime(2026, 6, 15, 10, 0, tzinfo=timezone.utc)
POLICY = domain.Policy(heartbeat_timeout=timedelta(seconds=15), retry_backoff_s=2.0, retry_backoff_max_s=10.0,
                       redispatch_after=timedelta(minutes=10))
SPEC = TrainingSpec(dataset="digits", hyperparameters={"epochs": 3}, model_type="vision",
                    architecture={"image_size": 8, "image_channels": 1, "num_classes": 10})


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def new_job(max_attempts: int = 3) -> domain.Job:
    return domain.create(job_id=uuid4(), model_id=uuid4(), pool="cpu", spec=SPEC, max_attempts=max_attempts,
                         actor="alice", now=T0).job


def claimed(job: domain.Job, now: datetime = T0, worker: str = "w1") -> tuple[domain.Job, domain.Claim, domain.Outcome]:
    outcome, claim = domain.claim(job, worker=worker, device="cpu", lease_id=uuid4(), now=now, policy=POLICY)
    assert claim is not None, outcome.refusal
    return outcome.job, claim, outcome


def types(outcome: domain.Outcome) -> list[type]:
    return [type(e) for e in outcome.events]


# -- creation ----------------------------------------------------------------------------------------


def test_create_queues_the_job_with_its_request_and_the_first_job_message():
    outcome = domain.create(job_id=uuid4(), model_id=uuid4(), pool="gpu", spec=SPEC, max_attempts=2, actor="alice",
                            now=T0)
    job = outcome.job
    assert (job.state, job.attempt, job.failures, job.max_attempts) == (JobState.queued, 0, 0, 2)
    assert types(outcome) == [TrainingRequested]
    assert outcome.dispatch == TrainingJobDispatched(model_id=job.model_id, job_id=job.id, pool="gpu", attempt=1)
    assert job.next_attempt_at is None and job.dispatched_at == T0  # the message is out
    assert outcome.live[0]["type"] == "queued" and outcome.live[0]["state"] == "queued"
    assert job.checkpoint_key == f"checkpoints/training/{job.id}/latest.ckpt"


# -- claims ------------------------------------------------------------------------------------------


def test_claiming_a_queued_job_starts_attempt_one_under_a_new_lease():
    job, claim, outcome = claimed(new_job())
    assert job.state is JobState.running and job.attempt == 1 and job.lease_id is not None
    assert job.worker == "w1" and job.heartbeat_at == T0 and job.started_at == T0
    assert claim.resume is False and claim.resumed_from_epoch == 0
    assert types(outcome) == [TrainingStarted]
    started = outcome.events[0]
    assert (started.attempt, started.worker, started.device, started.resumed_from_epoch) == (1, "w1", "cpu", 0)
    assert outcome.live[0]["type"] == "started" and outcome.live[0]["state"] == "running"


def test_a_running_job_under_a_live_lease_cannot_be_claimed():
    job, _, _ = claimed(new_job())
    outcome, claim = domain.claim(job, worker="w2", device="cpu", lease_id=uuid4(), now=at(14), policy=POLICY)
    assert claim is None and "live lease" in outcome.refusal
    assert outcome.job == job and outcome.events == ()


@pytest.mark.parametrize("finish", ["succeeded", "failed", "cancelled"])
def test_finished_jobs_cannot_be_claimed(finish):
    job = replace(new_job(), state=JobState(finish))
    outcome, claim = domain.claim(job, worker="w", device="cpu", lease_id=uuid4(), now=T0, policy=POLICY)
    assert claim is None and outcome.refusal == f"job is {finish}"


def test_an_expired_lease_is_taken_over_as_the_next_attempt_resuming_from_the_checkpoint():
    job, first, _ = claimed(new_job())
    job, _ = domain.progress(job, lease_id=job.lease_id, now=at(5),
                             report={"epoch": 2, "epochs": 3, "train_loss": 0.5, "val_loss": 0.4, "val_accuracy": 0.9,
                                     "samples_per_second": 100.0, "learning_rate": 0.001, "checkpoint_epoch": 2})
    job = job.job
    outcome, claim = domain.claim(job, worker="w2", device="cpu", lease_id=uuid4(), now=at(5 + 16), policy=POLICY)
    assert claim is not None
    assert claim.job.attempt == 2 and claim.job.failures == 1 and claim.job.worker == "w2"
    assert claim.job.lease_id != first.job.lease_id
    assert claim.resume is True and claim.resumed_from_epoch == 2
    assert types(outcome) == [TrainingFailed, TrainingStarted]
    failed, started = outcome.events
    assert failed.reason == domain.HEARTBEAT_LOST and failed.final is False and failed.attempt == 1
    assert started.attempt == 2 and started.resumed_from_epoch == 2


def test_taking_over_an_expired_lease_of_the_last_attempt_fails_the_job_and_dead_letters_it():
    job, _, _ = claimed(new_job(max_attempts=1))
    outcome, claim = domain.claim(job, worker="w2", device="cpu", lease_id=uuid4(), now=at(16), policy=POLICY)
    assert claim is None and outcome.refusal
    assert outcome.job.state is JobState.failed and outcome.job.finished_at == at(16)
    assert types(outcome) == [TrainingFailed] and outcome.events[0].final is True
    assert outcome.dead_letter == domain.HEARTBEAT_LOST


def test_a_job_backing_off_is_not_claimed_before_its_retry_is_due():
    job, _, _ = claimed(new_job())
    job = domain.fail(job, lease_id=job.lease_id, reason="boom", now=at(1), policy=POLICY).job
    assert job.next_attempt_at == at(3)
    early, claim = domain.claim(job, worker="w", device="cpu", lease_id=uuid4(), now=at(2), policy=POLICY)
    assert claim is None and "not due" in early.refusal
    due, claim = domain.claim(job, worker="w", device="cpu", lease_id=uuid4(), now=at(3), policy=POLICY)
    assert claim is not None and claim.job.attempt == 2 and claim.job.next_attempt_at is None


def test_the_device_is_what_the_job_asks_for_or_what_the_worker_has():
    assert domain.resolve_device("cpu", "cuda") == "cpu"
    assert domain.resolve_device("auto", "cuda") == "cuda"
    assert domain.resolve_device("cuda", "cuda:1") == "cuda:1"
    assert domain.resolve_device("auto", "cpu") == "cpu"


# -- leases ------------------------------------------------------------------------------------------


def test_heartbeats_refresh_the_lease_and_stale_leases_are_refused():
    job, _, _ = claimed(new_job())
    outcome, cancel = domain.heartbeat(job, lease_id=job.lease_id, now=at(10))
    assert cancel is False and outcome.job.heartbeat_at == at(10)
    assert not outcome.job.lease_expired(at(24), POLICY.heartbeat_timeout)
    with pytest.raises(domain.StaleLease) as refused:
        domain.heartbeat(job, lease_id=uuid4(), now=at(10))
    assert refused.value.status == 409 and refused.value.code == "stale_lease"


def test_a_cancelled_job_tells_its_worker_to_stop_instead_of_refusing_it():
    job, _, _ = claimed(new_job())
    cancelled = domain.cancel(job, reason="no longer needed", now=at(3)).job
    outcome, cancel = domain.heartbeat(cancelled, lease_id=job.lease_id, now=at(4))
    assert cancel is True and outcome.job == cancelled
    outcome, cancel = domain.progress(cancelled, lease_id=job.lease_id, now=at(4),
                                      report={"epoch": 1, "epochs": 3, "train_loss": 1.0, "samples_per_second": 1.0,
                                              "learning_rate": 0.1})
    assert cancel is True and outcome.events == ()
    with pytest.raises(Conflict):
        domain.complete(cancelled, lease_id=job.lease_id, now=at(5), result={})


def test_progress_emits_an_epoch_report_and_remembers_the_checkpoint():
    job, _, _ = claimed(new_job())
    report = {"epoch": 1, "epochs": 3, "train_loss": 1.2, "val_loss": 0.9, "val_accuracy": 0.7,
              "samples_per_second": 5000.0, "learning_rate": 0.001, "elapsed_s": 1.5, "checkpoint_epoch": 1}
    outcome, cancel = domain.progress(job, lease_id=job.lease_id, report=report, now=at(2))
    assert cancel is False
    assert outcome.job.checkpoint_epoch == 1 and outcome.job.heartbeat_at == at(2)
    assert outcome.job.progress["val_accuracy"] == 0.7
    assert types(outcome) == [TrainingProgress] and outcome.events[0].epoch == 1
    live = outcome.live[0]
    assert live["type"] == "progress" and live["state"] == "running" and live["samples_per_second"] == 5000.0
    assert live["metrics"] == {"val_loss": 0.9, "val_accuracy": 0.7}
    # an epoch whose checkpoint was not stored does not move the resume point
    again, _ = domain.progress(outcome.job, lease_id=job.lease_id, now=at(3),
                               report={**report, "epoch": 2, "checkpoint_epoch": None})
    assert again.job.checkpoint_epoch == 1


def test_complete_succeeds_the_job_with_its_version():
    job, _, _ = claimed(new_job())
    result = {"version": "1.1.0", "version_id": uuid4(), "artifact_sha256": "a" * 64, "metrics": {"val_loss": 0.1},
              "epochs_run": 3, "best_epoch": 3, "stopped_early": False, "dataset_hash": "h", "duration_s": 4.0}
    outcome = domain.complete(job, lease_id=job.lease_id, result=result, now=at(9))
    assert outcome.job.state is JobState.succeeded and outcome.job.finished_at == at(9)
    assert types(outcome) == [TrainingCompleted] and outcome.events[0].version == "1.1.0"
    assert outcome.live[0]["state"] == "succeeded"
    with pytest.raises(domain.StaleLease):
        domain.complete(outcome.job, lease_id=job.lease_id, result=result, now=at(10))


# -- failures, back-off, dead letters ----------------------------------------------------------------


def test_backoff_doubles_per_failure_and_is_capped():
    assert [POLICY.backoff(n).total_seconds() for n in (1, 2, 3, 4, 5)] == [2.0, 4.0, 8.0, 10.0, 10.0]


def test_failed_attempts_retry_with_backoff_then_the_job_is_dead_lettered():
    job = new_job(max_attempts=3)
    now = 0.0
    retries = []
    for attempt in (1, 2):
        job, _, _ = claimed(job, at(now))
        assert job.attempt == attempt
        outcome = domain.fail(job, lease_id=job.lease_id, reason="loss became nan", now=at(now + 1), policy=POLICY)
        job = outcome.job
        assert job.state is JobState.queued and job.failures == attempt and job.lease_id is None
        event = outcome.events[0]
        assert event.final is False and event.retry_at == job.next_attempt_at
        retries.append((job.next_attempt_at - at(now + 1)).total_seconds())
        assert outcome.dead_letter is None and outcome.live[0]["state"] == "queued"
        now = (job.next_attempt_at - T0).total_seconds()
    assert retries == [2.0, 4.0]
    job, _, _ = claimed(job, at(now))
    outcome = domain.fail(job, lease_id=job.lease_id, reason="loss became nan", now=at(now + 1), policy=POLICY)
    assert outcome.job.state is JobState.failed and outcome.job.attempt == 3 and outcome.job.failures == 3
    assert outcome.events[0].final is True and outcome.events[0].retry_at is None
    assert outcome.dead_letter == "loss became nan"
    assert outcome.live[0]["state"] == "failed"
    assert domain.dead_letter_message(outcome.job).attempt == 3


def test_fail_with_a_stale_lease_is_refused():
    job, _, _ = claimed(new_job())
    with pytest.raises(domain.StaleLease):
        domain.fail(job, lease_id=uuid4(), reason="x", now=at(1), policy=POLICY)


def test_release_requeues_at_once_without_spending_an_attempt():
    job, _, _ = claimed(new_job(max_attempts=1))
    outcome = domain.release(job, lease_id=job.lease_id, reason="worker shutting down", now=at(4))
    assert outcome.job.state is JobState.queued and outcome.job.failures == 0 and outcome.job.next_attempt_at == at(4)
    assert outcome.events[0].final is False
    job, claim, _ = claimed(outcome.job, at(4))
    assert job.attempt == 2  # the one allowed failure is still available


# -- the tick ----------------------------------------------------------------------------------------


def test_the_tick_requeues_running_jobs_whose_heartbeat_expired():
    job, _, _ = claimed(new_job())
    assert domain.expire(job, now=at(15), policy=POLICY) is None
    outcome = domain.expire(job, now=at(15.001), policy=POLICY)
    assert outcome.job.state is JobState.queued and outcome.job.failures == 1
    assert outcome.job.next_attempt_at == at(15.001) + timedelta(seconds=2)
    assert outcome.events[0].reason == domain.HEARTBEAT_LOST


def test_the_tick_dead_letters_an_expired_last_attempt():
    job, _, _ = claimed(new_job(max_attempts=1))
    outcome = domain.expire(job, now=at(20), policy=POLICY)
    assert outcome.job.state is JobState.failed and outcome.dead_letter == domain.HEARTBEAT_LOST


def test_the_tick_dispatches_due_retries_once():
    job, _, _ = claimed(new_job())
    job = domain.fail(job, lease_id=job.lease_id, reason="x", now=at(1), policy=POLICY).job
    assert domain.dispatch_due(job, now=at(2.9), policy=POLICY) is None
    outcome = domain.dispatch_due(job, now=at(3), policy=POLICY)
    assert outcome.dispatch.attempt == 2 and outcome.job.next_attempt_at is None
    assert domain.dispatch_due(outcome.job, now=at(4), policy=POLICY) is None  # the message is out


def test_the_tick_sends_again_a_job_message_nobody_claimed():
    job = new_job()
    assert domain.dispatch_due(job, now=at(599), policy=POLICY) is None
    outcome = domain.dispatch_due(job, now=at(600), policy=POLICY)
    assert outcome.dispatch.attempt == 1 and outcome.job.dispatched_at == at(600)


def test_the_tick_leaves_running_and_finished_jobs_alone():
    job, _, _ = claimed(new_job())
    assert domain.dispatch_due(job, now=at(10_000), policy=POLICY) is None
    done = replace(job, state=JobState.succeeded)
    assert domain.expire(done, now=at(10_000), policy=POLICY) is None


# -- cancellation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("running", [False, True])
def test_queued_and_running_jobs_can_be_cancelled_once(running):
    job = claimed(new_job())[0] if running else new_job()
    outcome = domain.cancel(job, reason="cancelled by bob", now=at(2))
    assert outcome.job.state is JobState.cancelled and outcome.job.cancel_reason == "cancelled by bob"
    assert types(outcome) == [TrainingCancelled]
    with pytest.raises(Conflict) as again:
        domain.cancel(outcome.job, reason="again", now=at(3))
    assert again.value.status == 409
