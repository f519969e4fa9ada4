"""One claimed attempt of a training job, from the claim to the report.

The trainer runs in a worker thread (``asyncio.to_thread``); its callbacks come back to the event loop:
every epoch's checkpoint is stored in the object store and then reported as progress (so a progress report
for epoch N means epoch N's checkpoint is safe), and a heartbeat task keeps the lease alive. ``should_stop``
turns true when the job is cancelled, when the lease is lost (the scheduler gave the job to another
attempt) or when the worker is shutting down.
"""
from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import torch

from libs.events.training import TrainingSpec
from libs.ml.datasets import load_dataset
from libs.ml.device import choose_device
from libs.ml.trainer import EpochReport, Hyperparameters, ResumeError, Trainer, TrainingCancelled, TrainingResult
from libs.ml.zoo import build_model
from libs.storage.port import ObjectNotFound, ObjectStore
from services.worker.clients import Refused, SchedulerClient, Unavailable, VersionClient

log = logging.getLogger(__name__)

PROGRESS_RETRY_S = 10.0


class Ack(enum.Enum):
    """What to do with the job message once the attempt is over."""

    COMMIT = "commit"  # done with it: succeeded, failed (reported), cancelled, lost to another attempt, refused
    KEEP = "keep"  # not finished here (shutdown): leave it uncommitted so it is delivered again


class StopFlags:
    """Why training should stop; read by the training thread before every batch."""

    def __init__(self) -> None:
        self.cancelled = False
        self.lease_lost = False
        self.shutdown_at: float | None = None  # monotonic deadline set by SIGTERM

    def should_stop(self) -> bool:
        return self.cancelled or self.lease_lost or (self.shutdown_at is not None and time.monotonic() >= self.shutdown_at)

    def shutdown(self, grace_s: float) -> None:
        deadline = time.monotonic() + grace_s
        self.shutdown_at = deadline if self.shutdown_at is None else min(self.shutdown_at, deadline)


def finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def report_body(report: EpochReport) -> dict[str, Any]:
    """An epoch report as the scheduler accepts it: JSON has no NaN or infinity."""
    return {
        "epoch": report.epoch,
        "epochs": report.epochs,
        "train_loss": report.train_loss,
        "val_loss": finite(report.val_loss),
        "val_accuracy": finite(report.val_accuracy),
        "samples_per_second": finite(report.samples_per_second) or 0.0,
        "learning_rate": report.learning_rate,
        "elapsed_s": finite(report.elapsed_s),
    }


def validation_metrics(result: TrainingResult) -> dict[str, float]:
    """The validation metrics of the epoch whose weights the result holds (the best one)."""
    best = next((r for r in result.history if r.epoch == result.best_epoch), result.history[-1] if result.history else None)
    if best is None:
        return {}
    metrics = {"val_loss": finite(best.val_loss), "val_accuracy": finite(best.val_accuracy)}
    return {k: v for k, v in metrics.items() if v is not None}


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


@dataclass
class Prepared:
    trainer: Trainer
    dataset_hash: str
    device: torch.device


class Attempt:
    def __init__(
        self,
        claim: dict[str, Any],
        *,
        worker: str,
        scheduler: SchedulerClient,
        versions: VersionClient,
        store: ObjectStore,
        heartbeat_s: float,
        report_retry_s: float,
    ) -> None:
        self.claim = claim
        self.job_id = UUID(claim["job_id"])
        self.model_id = str(claim["model_id"])
        self.lease_id = str(claim["lease_id"])
        self.attempt = int(claim["attempt"])
        self.spec = TrainingSpec.model_validate(claim["spec"])
        self.checkpoint_key = str(claim["checkpoint_key"])
        self.requested_by = str(claim.get("requested_by") or "system")
        self.worker = worker
        self.scheduler = scheduler
        self.versions = versions
        self.store = store
        self.heartbeat_s = min(heartbeat_s, float(claim.get("heartbeat_timeout_s") or heartbeat_s) / 3)
        self.report_retry_s = report_retry_s
        self.flags = StopFlags()
        self.started = time.monotonic()
        self._ctx = {"job_id": str(self.job_id), "attempt": self.attempt}

    # -- the whole attempt -------------------------------------------------------------------------

    async def execute(self) -> Ack:
        """Train, publish and report; the lease is kept alive by heartbeats until the report is made."""
        heartbeats = asyncio.create_task(self._heartbeats(), name=f"heartbeat-{self.job_id}")
        try:
            return await self._execute()
        finally:
            heartbeats.cancel()
            await asyncio.gather(heartbeats, return_exceptions=True)

    async def _execute(self) -> Ack:
        try:
            result, dataset_hash = await self._train()
        except TrainingCancelled as stopped:
            return await self._stopped(stopped)
        except Exception as exc:  # anything else fails the attempt; the scheduler decides about retries
            log.exception("training attempt failed", extra=self._ctx)
            return await self._report_failure(f"{type(exc).__name__}: {exc}")
        if self.flags.cancelled or self.flags.lease_lost:  # stopped while the last epoch finished
            return await self._stopped(TrainingCancelled("stopped after the last epoch",
                                                         epochs_completed=result.epochs_run, last_checkpoint=None))
        try:
            await self._publish(result, dataset_hash)
        except (Refused, Unavailable) as exc:
            log.error("could not turn the result into a version", extra={**self._ctx, "error": str(exc)})
            return await self._report_failure(f"publishing the version failed: {exc}")
        return Ack.COMMIT

    # -- training ----------------------------------------------------------------------------------

    def _prepare(self, hp: Hyperparameters) -> Prepared:
        device = choose_device(hp.device)
        dataset = load_dataset(self.spec.dataset, seed=self.spec.dataset_seed, for_model_type=self.spec.model_type)
        torch.manual_seed(hp.seed)  # initial weights are part of the reproducible run
        model = build_model(self.spec.model_type, self.spec.architecture)
        return Prepared(Trainer(model, dataset, hp), dataset.content_hash, device)

    async def _train(self) -> tuple[TrainingResult, str]:
        hp = Hyperparameters.model_validate(self.spec.hyperparameters)
        prepared = await asyncio.to_thread(self._prepare, hp)
        amp = hp.mixed_precision and prepared.device.type == "cuda"
        log.info("device chosen", extra={**self._ctx, "device": str(prepared.device), "mixed_precision": amp,
                                         "requested": hp.device})
        resume_from = await self._load_checkpoint() if self.claim.get("resume") else None
        try:
            result = await self._run(prepared.trainer, resume_from)
        except ResumeError as exc:  # a checkpoint this run cannot use: start over rather than fail
            log.warning("checkpoint unusable; training from scratch", extra={**self._ctx, "error": str(exc)})
            prepared = await asyncio.to_thread(self._prepare, hp)
            result = await self._run(prepared.trainer, None)
        return result, prepared.dataset_hash

    async def _run(self, trainer: Trainer, resume_from: bytes | None) -> TrainingResult:
        loop = asyncio.get_running_loop()
        return await asyncio.to_thread(
            trainer.run,
            resume_from=resume_from,
            on_checkpoint=self._on_checkpoint,
            should_stop=self.flags.should_stop,
            event_loop=loop,
        )

    async def _load_checkpoint(self) -> bytes | None:
        try:
            data = b"".join([chunk async for chunk in self.store.open(self.checkpoint_key)])
        except ObjectNotFound:
            log.warning("no checkpoint to resume from; training from scratch", extra=self._ctx)
            return None
        log.info("resuming from checkpoint", extra={**self._ctx, "bytes": len(data),
                                                    "epoch": self.claim.get("resumed_from_epoch")})
        return data

    async def _on_checkpoint(self, checkpoint: bytes, report: EpochReport) -> None:
        """Runs on the loop while the training thread waits: store the checkpoint, then report the epoch."""
        saved = False
        try:
            await self.store.put(self.checkpoint_key, _one_chunk(checkpoint))  # all-or-nothing on every store
            saved = True
        except Exception as exc:
            log.warning("checkpoint not stored", extra={**self._ctx, "epoch": report.epoch, "error": str(exc)})
        body = {**report_body(report), "checkpoint_epoch": report.epoch if saved else None}
        log.info("epoch done", extra={**self._ctx, **body})
        try:
            if await self.scheduler.progress(self.job_id, self.lease_id, body, retry_for=PROGRESS_RETRY_S):
                self.flags.cancelled = True
        except Refused as exc:
            self._lost(exc)
        except Unavailable as exc:
            log.warning("progress not reported", extra={**self._ctx, "error": str(exc)})
        if self.flags.shutdown_at is not None:
            self.flags.shutdown_at = 0.0  # shutting down and this epoch is safe: stop now

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                if await self.scheduler.heartbeat(self.job_id, self.lease_id):
                    if not self.flags.cancelled:
                        log.info("job cancelled; stopping", extra=self._ctx)
                    self.flags.cancelled = True
            except Refused as exc:
                self._lost(exc)
                return
            except Unavailable as exc:
                log.warning("heartbeat failed", extra={**self._ctx, "error": str(exc)})

    def _lost(self, exc: Refused) -> None:
        if not self.flags.lease_lost:
            log.warning("lease lost; stopping", extra={**self._ctx, "error": str(exc)})
        self.flags.lease_lost = True

    # -- outcomes ----------------------------------------------------------------------------------

    async def _stopped(self, stopped: TrainingCancelled) -> Ack:
        ctx = {**self._ctx, "epochs_completed": stopped.epochs_completed}
        if self.flags.cancelled:
            log.info("job cancelled; acknowledged", extra=ctx)
            return Ack.COMMIT
        if self.flags.lease_lost:
            log.info("attempt abandoned: the job belongs to another attempt now", extra=ctx)
            return Ack.COMMIT
        log.info("attempt interrupted by shutdown; releasing the job", extra=ctx)
        try:
            await self.scheduler.release(self.job_id, self.lease_id, f"worker {self.worker} shutting down",
                                         retry_for=min(self.report_retry_s, 5.0))
        except (Refused, Unavailable) as exc:
            log.warning("release failed; the scheduler reclaims the job when its lease expires",
                        extra={**ctx, "error": str(exc)})
        return Ack.KEEP

    async def _report_failure(self, reason: str) -> Ack:
        try:
            job = await self.scheduler.fail(self.job_id, self.lease_id, reason, retry_for=self.report_retry_s)
            log.info("attempt failure reported", extra={**self._ctx, "state": job.get("state"), "reason": reason[:300]})
        except Refused as exc:
            log.warning("failure report refused", extra={**self._ctx, "error": str(exc)})
        except Unavailable as exc:
            # The lease will expire and the scheduler counts the attempt as failed on its own.
            log.error("failure not reported", extra={**self._ctx, "error": str(exc)})
        return Ack.COMMIT

    async def _publish(self, result: TrainingResult, dataset_hash: str) -> None:
        """Version, artifact, completion; each step is safe to repeat after a crash."""
        metrics = validation_metrics(result)
        spec = self.spec
        body = {
            "bump": spec.bump,
            "change_log": (f"Trained by job {self.job_id} on {spec.dataset}: {result.epochs_run} epochs, "
                           f"best epoch {result.best_epoch}"),
            "metrics": metrics,
            "lineage": {
                "parent_version": spec.parent_version,
                "training_job_id": str(self.job_id),
                "dataset": spec.dataset,
                "dataset_hash": dataset_hash,
                "hyperparameters": spec.hyperparameters,
            },
            "metadata": {
                "trained_by": self.worker,
                "device": result.device,
                "epochs_run": result.epochs_run,
                "best_epoch": result.best_epoch,
                "stopped_early": result.stopped_early,
                "dataset_seed": spec.dataset_seed,
                "attempt": self.attempt,
            },
            "tags": [],
        }
        version, existed = await self.versions.create_version(self.model_id, body, actor=self.requested_by,
                                                              retry_for=self.report_retry_s)
        existing_artifact = version.get("artifact") if existed else None
        if existing_artifact:
            sha256, already = existing_artifact["sha256"], True
        else:
            sha256, already = await self.versions.put_artifact(self.model_id, version["version"], result.artifact,
                                                               actor=self.requested_by, retry_for=self.report_retry_s)
            if already:  # an earlier attempt uploaded between creating the version and reporting: use its bytes
                stored = await self.versions.get_version(self.model_id, version["version"], retry_for=self.report_retry_s)
                sha256 = (stored.get("artifact") or {}).get("sha256") or sha256
        if existed or already:
            log.info("version already made by an earlier attempt", extra={**self._ctx, "version": version["version"]})
        completion = {
            "version": version["version"],
            "version_id": str(version["version_id"]),
            "artifact_sha256": sha256,
            "metrics": metrics,
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early,
            "dataset_hash": dataset_hash,
            "duration_s": finite(result.history[-1].elapsed_s if result.history else None)
            or time.monotonic() - self.started,
        }
        try:
            await self.scheduler.complete(self.job_id, self.lease_id, completion, retry_for=self.report_retry_s)
        except Refused as exc:  # cancelled meanwhile, or the lease went to another attempt
            log.warning("completion refused", extra={**self._ctx, "error": str(exc), "version": version["version"]})
            return
        log.info("job succeeded", extra={**self._ctx, "version": version["version"], "metrics": metrics,
                                         "epochs_run": result.epochs_run})
        try:
            await self.store.delete(self.checkpoint_key)
        except Exception as exc:
            log.warning("checkpoint not deleted", extra={**self._ctx, "error": str(exc)})
