"""Background work of the evaluation service, outside every transaction and every consumer.

- :class:`RunExecutor` computes one claimed run: find the version's weights, read them (verified),
  measure them in a thread (``asyncio.to_thread``), then finish the run in one transaction with its
  event. A run that cannot work (:class:`~services.evaluation.domain.Unevaluable`) ends as
  EvaluationFailed; a transient failure (object store or version service down) is retried with
  back-off up to ``max_attempts``.
- :class:`EvaluationWorker` claims queued runs (``FOR UPDATE SKIP LOCKED``, with a lease renewed while
  computing, so several instances share the queue and a crashed one's runs are taken over). It wakes
  on NOTIFY at commit, with a poll as a safety net.
- :class:`MetricsSync` stores the metrics of completed runs on their version through the version
  service's internal API, retrying with back-off. The EvaluationCompleted event stays the source of truth.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from datetime import datetime, timezone
from uuid import UUID, uuid4

from prometheus_client import Counter, Histogram

from libs.kit.db import connect
from libs.kit.errors import NotReady
from libs.storage.cas import BlobCorrupted, ContentAddressedStore
from libs.storage.port import ObjectNotFound
from services.evaluation import domain, store
from services.evaluation.clients import Upstreams
from services.evaluation.domain import Unevaluable
from services.evaluation.handlers import finish_completed, finish_failed, resolve_version
from services.evaluation.measure import measure
from services.evaluation.settings import EvaluationSettings

log = logging.getLogger(__name__)

EVALUATIONS = Counter("cairn_evaluations_total", "Evaluations finished, by outcome", ["outcome"])
EVALUATION_SECONDS = Histogram(
    "cairn_evaluation_seconds", "Time to compute one evaluation (weights read, measured, described)",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
METRICS_SYNCED = Counter("cairn_evaluation_metrics_sync_total", "Metrics pushes to the version service", ["outcome"])


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


class RunExecutor:
    def __init__(self, runtime, settings: EvaluationSettings, upstreams: Upstreams) -> None:
        self.rt = runtime
        self.settings = settings
        self.upstreams = upstreams
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:8]}"
        self.cas: ContentAddressedStore | None = None  # opened at start
        self.on_completed = lambda: None  # the app points this at MetricsSync.wake
        self._compute = asyncio.Semaphore(settings.max_concurrent_evaluations)

    async def execute(self, run: store.Run) -> None:
        """Compute a run this owner has claimed and finish it. Never raises for the run's own problems."""
        pool, s = self.rt.pool, self.settings
        if run.attempts > s.max_attempts:  # claimed again after crashes (lease ran out) too often
            last = run.last_error or "the evaluating process stopped before finishing"
            await finish_failed(pool, run, self.owner, f"gave up after {s.max_attempts} attempts: {last}")
            EVALUATIONS.labels("failed").inc()
            return
        renewal = asyncio.create_task(self._keep_lease(run))
        version: store.VersionRow | None = None
        started = time.perf_counter()
        try:
            version = await self._version_of(run)
            weights = await self._read_weights(version)
            async with self._compute:
                measurement = await asyncio.to_thread(
                    measure, weights, dataset=run.requested_dataset, dataset_seed=run.requested_seed,
                    device=s.device, latency_runs=s.latency_runs,
                )
        except Unevaluable as exc:
            log.info("evaluation failed", extra={"evaluation_id": str(run.id), "reason": str(exc)})
            await finish_failed(pool, run, self.owner, str(exc), version)
            EVALUATIONS.labels("failed").inc()
            return
        except asyncio.CancelledError:
            # shutting down: give the run back now instead of waiting for the lease to run out
            with contextlib.suppress(Exception):
                await asyncio.shield(store.requeue(pool, run, self.owner, delay_s=0.0, error="interrupted", refund=True))
            raise
        except Exception as exc:  # transient: storage or an upstream is down, or the database hiccupped
            log.warning("evaluation attempt failed", exc_info=True,
                        extra={"evaluation_id": str(run.id), "attempt": run.attempts})
            if run.attempts >= s.max_attempts:
                await finish_failed(pool, run, self.owner,
                                    f"gave up after {run.attempts} attempts: {_error_text(exc)}", version)
                EVALUATIONS.labels("failed").inc()
            else:
                await store.requeue(pool, run, self.owner, delay_s=domain.retry_delay_s(run.attempts),
                                    error=_error_text(exc))
                EVALUATIONS.labels("retried").inc()
            return
        finally:
            renewal.cancel()
        EVALUATION_SECONDS.observe(time.perf_counter() - started)
        if await finish_completed(pool, run, self.owner, measurement, version):
            EVALUATIONS.labels("completed").inc()
            self.on_completed()

    async def evaluate_now(self, version: store.VersionRow, *, actor: str, traceparent: str | None) -> store.Run:
        """Evaluate a version for a caller who waits (a comparison): take over a queued run of it, wait for
        one running elsewhere, or start one here. Returns the finished run."""
        pool, s = self.rt.pool, self.settings
        active = await store.active_run(pool, version.model_id, version.version)
        run = await store.claim_one(pool, active.id, self.owner, s.lease_s) if active else None
        if active is None:
            run = await store.insert_run(
                pool, evaluation_id=uuid4(), model_id=version.model_id, version=version.version, version_id=version.id,
                trigger=domain.TRIGGER_COMPARE, trigger_event_id=None, dataset=None, dataset_seed=None,
                priority=domain.PRIORITY[domain.TRIGGER_COMPARE], actor=actor, traceparent=traceparent,
                now=datetime.now(timezone.utc), lease_owner=self.owner, lease_s=s.lease_s,
            )
        target = run.id if run is not None else active.id  # type: ignore[union-attr]
        if run is not None:
            await self.execute(run)
        return await self._wait_finished(target)

    async def _wait_finished(self, evaluation_id: UUID) -> store.Run:
        deadline = time.monotonic() + self.settings.compare_wait_s
        delay = 0.05
        while True:
            run = await store.get_run(self.rt.pool, evaluation_id)
            if run is not None and run.state in (domain.COMPLETED, domain.FAILED):
                return run
            if time.monotonic() > deadline:
                raise NotReady(f"evaluation {evaluation_id} is still {run.state if run else 'queued'}; try again later")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _keep_lease(self, run: store.Run) -> None:
        interval = max(self.settings.lease_s / 3, 0.2)
        while True:
            await asyncio.sleep(interval)
            try:
                if not await store.renew_lease(self.rt.pool, run.id, self.owner, self.settings.lease_s):
                    return
            except Exception:  # noqa: BLE001 - a missed renewal is retried at the next tick
                log.warning("lease renewal failed", exc_info=True, extra={"evaluation_id": str(run.id)})

    async def _version_of(self, run: store.Run) -> store.VersionRow:
        version = await store.get_version(self.rt.pool, run.version_id) if run.version_id else None
        if version is None:
            version = await resolve_version(self.rt.pool, self.upstreams, run.model_id, run.version)
        if version is None:
            raise Unevaluable(f"version {run.version} of model {run.model_id} does not exist")
        if version.deleted_at is not None:
            raise Unevaluable(f"version {run.version} was deleted")
        if not version.artifact_sha256:
            raise Unevaluable(f"version {run.version} has no stored weights")
        return version

    async def _read_weights(self, version: store.VersionRow) -> bytes:
        assert self.cas is not None, "RunExecutor.cas is opened at start"
        size = version.artifact_size or 0
        if size > self.settings.max_artifact_bytes:
            raise Unevaluable(f"weights are {size} bytes; this service evaluates at most {self.settings.max_artifact_bytes}")
        chunks: list[bytes] = []
        try:
            async for chunk in self.cas.open_verified(version.artifact_sha256, expected_size=version.artifact_size):
                chunks.append(chunk)
        except ObjectNotFound:
            raise Unevaluable(f"weights {version.artifact_sha256} are not in the object store") from None
        except BlobCorrupted as exc:
            raise Unevaluable(f"stored weights are damaged: {exc}") from None
        return b"".join(chunks)


class _Loop:
    """A background task that wakes on ``wake()`` or every ``interval`` seconds."""

    name = "loop"

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def wake(self) -> None:
        self._wake.set()

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    def start(self, count: int = 1) -> None:
        self._tasks = [asyncio.create_task(self._run(), name=f"{self.name}-{i}") for i in range(count)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _run(self) -> None:
        while True:
            try:
                self._wake.clear()
                if await self.step():
                    continue  # there may be more
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(f"{self.name} failed; retrying")
                await asyncio.sleep(1.0)

    async def step(self) -> bool:
        """Do one unit of work; True if there was some."""
        raise NotImplementedError


class EvaluationWorker(_Loop):
    name = "evaluation-worker"

    def __init__(self, runtime, settings: EvaluationSettings, executor: RunExecutor) -> None:
        super().__init__(settings.poll_interval_s)
        self.rt = runtime
        self.settings = settings
        self.executor = executor
        self._listener = None

    async def start_listening(self) -> None:
        """LISTEN for queued runs on a dedicated connection; the poll covers a lost connection."""
        try:
            self._listener = await connect(self.rt.dsn)
            await self._listener.add_listener(store.RUNS_CHANNEL, lambda *_: self.wake())
        except Exception:  # noqa: BLE001 - polling still finds the work
            log.warning("cannot LISTEN for evaluation runs; polling only", exc_info=True)

    async def stop(self) -> None:
        await super().stop()
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None

    async def step(self) -> bool:
        run = await store.claim_next(self.rt.pool, self.executor.owner, self.settings.lease_s)
        if run is None:
            return False
        await self.executor.execute(run)
        return True


class MetricsSync(_Loop):
    name = "metrics-sync"
    BATCH = 10
    CLAIM_S = 60.0

    def __init__(self, runtime, settings: EvaluationSettings, upstreams: Upstreams) -> None:
        super().__init__(1.0)
        self.rt = runtime
        self.settings = settings
        self.upstreams = upstreams

    async def step(self) -> bool:
        rows = await store.claim_sync(self.rt.pool, lease_s=self.CLAIM_S, limit=self.BATCH)
        for row in rows:
            await self._push(row)
        return bool(rows)

    async def _push(self, row) -> None:
        pool, attempt = self.rt.pool, row["sync_attempts"] + 1
        result = await self.upstreams.push_metrics(row["model_id"], row["version"], row["metrics"] or {})
        if result.ok:
            await store.sync_done(pool, row["id"])
            METRICS_SYNCED.labels("done").inc()
        elif result.retry and attempt < self.settings.metrics_sync_attempts:
            await store.sync_retry(pool, row["id"], result.detail, domain.retry_delay_s(attempt, base=0.5, cap=30.0))
            METRICS_SYNCED.labels("retried").inc()
        else:
            log.warning("metrics not stored on the version", extra={"evaluation_id": str(row["id"]), "error": result.detail})
            await store.sync_failed(pool, row["id"], result.detail)
            METRICS_SYNCED.labels("failed").inc()
