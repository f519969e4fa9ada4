"""Pure parts of the worker: epoch reports made JSON-safe, the metrics a version gets, stop flags, and the
attempt's view of a claim."""
from __future__ import annotations

import math
import time
from uuid import uuid4

from libs.ml.trainer import EpochReport, TrainingResult
from services.worker.training import Attempt, StopFlags, report_body, validation_metrics
from services.worker.worker import consumer_group


def report(epoch: int, val_loss: float, val_accuracy: float | None, sps: float = 100.0) -> EpochReport:
    return EpochReport(epoch=epoch, epochs=3, train_loss=1.0, val_loss=val_loss, val_accuracy=val_accuracy,
                       samples_per_second=sps, learning_rate=0.01, elapsed_s=1.0 * epoch)


def test_report_bodies_carry_no_nan_or_infinity():
    body = report_body(report(1, float("nan"), None, sps=float("inf")))
    assert body["val_loss"] is None and body["val_accuracy"] is None and body["samples_per_second"] == 0.0
    assert all(not isinstance(v, float) or math.isfinite(v) for v in body.values())


def test_the_version_gets_the_validation_metrics_of_the_best_epoch():
    history = [report(1, 0.9, 0.6), report(2, 0.3, 0.9), report(3, 0.5, 0.8)]
    result = TrainingResult(model=None, best_epoch=2, best_metric=0.3, monitor="val_loss", epochs_run=3,  # type: ignore[arg-type]
                            history=history, stopped_early=False, artifact=b"")
    assert validation_metrics(result) == {"val_loss": 0.3, "val_accuracy": 0.9}
    regression = TrainingResult(model=None, best_epoch=1, best_metric=0.2, monitor="val_loss", epochs_run=1,  # type: ignore[arg-type]
                                history=[report(1, 0.2, None)], stopped_early=False, artifact=b"")
    assert validation_metrics(regression) == {"val_loss": 0.2}


def test_stop_flags():
    flags = StopFlags()
    assert not flags.should_stop()
    flags.shutdown(60)
    assert not flags.should_stop()  # the current epoch may still finish
    flags.shutdown(0)  # a second signal, or the epoch is safe: stop now
    assert flags.should_stop()
    cancelled = StopFlags()
    cancelled.cancelled = True
    assert cancelled.should_stop()
    lost = StopFlags()
    lost.lease_lost = True
    assert lost.should_stop()


def test_heartbeats_are_well_inside_the_scheduler_timeout():
    claim = {"job_id": str(uuid4()), "model_id": str(uuid4()), "lease_id": str(uuid4()), "attempt": 2,
             "checkpoint_key": "checkpoints/training/x/latest.ckpt", "heartbeat_timeout_s": 6.0,
             "spec": {"dataset": "digits", "hyperparameters": {}, "model_type": "vision"}}
    attempt = Attempt(claim, worker="w", scheduler=None, versions=None, store=None, heartbeat_s=5.0,  # type: ignore[arg-type]
                      report_retry_s=1.0)
    assert attempt.heartbeat_s == 2.0 and attempt.attempt == 2
    assert time.monotonic() >= attempt.started


def test_one_consumer_group_per_pool():
    assert consumer_group("cpu") == "training-workers-cpu" and consumer_group("gpu") == "training-workers-gpu"
