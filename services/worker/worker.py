"""The worker process: one Kafka consumer on the pool's job topic and one training at a time.

For each job message: claim it from the scheduler (409 → commit and move on). Otherwise every assigned
partition is PAUSED and the attempt runs while the loop keeps calling ``getmany`` (which returns nothing
for paused partitions): the consumer keeps polling and heartbeating, so its group membership stays alive
however long the job takes, and no rebalance happens. When the attempt is over the offset is committed
and the partitions are resumed. A job interrupted by SIGTERM is released to the scheduler and its offset
is not committed, so the message is delivered again; after SIGKILL the scheduler notices the missing
heartbeats and queues the job again, and the next attempt resumes from the last checkpoint.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path

import torch
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from libs.events import topics
from libs.events.envelope import InvalidEvent, decode
from libs.events.training import TrainingJobDispatched
from libs.kit.broker import ensure_topics
from libs.storage.factory import open_object_store, redact_url
from services.worker.clients import Refused, SchedulerClient, Unavailable, VersionClient
from services.worker.settings import WorkerSettings
from services.worker.training import Ack, Attempt

log = logging.getLogger(__name__)


def consumer_group(pool: str) -> str:
    return f"training-workers-{pool}"


def best_device() -> str:
    """What this worker can offer: CUDA (trained with automatic mixed precision) where present, else CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


class _Rebalances(ConsumerRebalanceListener):
    def __init__(self, worker: "Worker") -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked) -> None:
        if revoked:
            self.worker.revocations += 1
            log.warning("partitions revoked", extra={"partitions": sorted(tp.partition for tp in revoked),
                                                     "busy": self.worker.busy})

    async def on_partitions_assigned(self, assigned) -> None:
        self.worker.assignments += 1
        if self.worker.busy and assigned:
            self.worker.consumer.pause(*assigned)  # a job is running: take nothing new meanwhile
        log.info("partitions assigned", extra={"partitions": sorted(tp.partition for tp in assigned),
                                               "busy": self.worker.busy})


class Worker:
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.pool = settings.worker_pool
        self.name = settings.worker_name or f"worker-{self.pool}"
        self.topic = topics.training_jobs(self.pool)
        self.group = consumer_group(self.pool)
        self.busy = False
        self.stop_requested = False
        self.revocations = 0
        self.assignments = 0
        self.attempt: Attempt | None = None
        self.consumer: AIOKafkaConsumer = None  # type: ignore[assignment]
        self._touched = 0.0

    def _alive(self) -> None:
        """Touch the liveness file (``CAIRN_HEARTBEAT_FILE``): the loop is polling, idle or busy."""
        path = self.settings.heartbeat_file
        if not path or time.monotonic() - self._touched < 5.0:
            return
        self._touched = time.monotonic()
        try:
            Path(path).touch()
        except OSError as exc:
            log.warning("heartbeat file not touched", extra={"path": path, "error": str(exc)})

    # -- signals -----------------------------------------------------------------------------------

    def request_stop(self, signum: int) -> None:
        again = self.stop_requested
        self.stop_requested = True
        if self.attempt is not None:
            # The current epoch may finish (its checkpoint is then safe) within the grace period; a second
            # signal stops at the next batch.
            self.attempt.flags.shutdown(0.0 if again else self.settings.worker_stop_grace_s)
        log.info("stop requested", extra={"signal": signal.Signals(signum).name, "busy": self.busy})

    # -- main loop ---------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig)
        s = self.settings
        if s.worker_torch_threads:
            torch.set_num_threads(s.worker_torch_threads)
        token = s.internal_token.get_secret_value()
        self.store = open_object_store(s.object_store_url)
        self.scheduler = SchedulerClient(s.training_scheduler_url, token, worker=self.name, timeout=s.worker_http_timeout_s)
        self.versions = VersionClient(s.version_url, token, actor=f"worker:{self.name}", timeout=s.worker_http_timeout_s)
        self.device = best_device()
        await ensure_topics(s.kafka_bootstrap, [self.topic], s.topic_partitions)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap,
            group_id=self.group,
            client_id=self.name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=1,
            session_timeout_ms=s.worker_session_timeout_ms,
            heartbeat_interval_ms=max(100, min(1000, s.worker_session_timeout_ms // 3)),
            max_poll_interval_ms=s.worker_max_poll_interval_ms,
            rebalance_timeout_ms=s.worker_session_timeout_ms,
            metadata_max_age_ms=5_000,
        )
        self.consumer.subscribe([self.topic], listener=_Rebalances(self))
        await self.consumer.start()
        log.info("worker started", extra={
            "worker": self.name, "pool": self.pool, "topic": self.topic, "group": self.group, "device": self.device,
            "cuda": torch.cuda.is_available(), "torch_threads": torch.get_num_threads(),
            "object_store": redact_url(s.object_store_url),
        })
        try:
            while not self.stop_requested:
                self._alive()
                try:
                    batch = await self.consumer.getmany(timeout_ms=s.worker_poll_ms, max_records=1)
                except KafkaError as exc:
                    log.warning("poll failed; retrying", extra={"error": str(exc)})
                    await asyncio.sleep(1.0)
                    continue
                for tp, records in batch.items():
                    for record in records:
                        if self.stop_requested:
                            break  # not committed: delivered again to whoever takes the partition
                        await self._handle(tp, record)
        finally:
            await self.consumer.stop()
            await self.scheduler.close()
            await self.versions.close()
            await self.store.close()
            log.info("worker stopped", extra={"worker": self.name, "revocations": self.revocations})
        return 0

    async def _handle(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        try:
            message = decode(list(record.headers or ()), record.value).data
            if not isinstance(message, TrainingJobDispatched):
                raise InvalidEvent(f"expected TrainingJobDispatched, got {type(message).__name__}")
        except InvalidEvent as exc:
            log.error("not a job message; skipped", extra={"offset": record.offset, "partition": tp.partition,
                                                           "error": str(exc)})
            await self._commit(tp, record)
            return
        ctx = {"job_id": str(message.job_id), "message_attempt": message.attempt, "partition": tp.partition,
               "offset": record.offset}
        log.info("job message", extra=ctx)
        self._pause()
        try:
            ack = await self._while_polling(self._process(message, ctx))
        except Exception:
            log.exception("job handling crashed; the message stays uncommitted", extra=ctx)
            ack = Ack.KEEP
        finally:
            self.attempt = None
        if ack is Ack.COMMIT:
            await self._commit(tp, record)
        if not self.stop_requested:
            self._resume()

    async def _process(self, message: TrainingJobDispatched, ctx: dict) -> Ack:
        try:
            claim = await self.scheduler.claim(message.job_id, attempt=message.attempt, device=self.device,
                                               stop=lambda: self.stop_requested)
        except Refused as exc:
            log.info("claim refused; skipping the message", extra={**ctx, "status": exc.status, "reason": str(exc)})
            return Ack.COMMIT
        except Unavailable as exc:
            log.warning("claim not made before shutdown", extra={**ctx, "error": str(exc)})
            return Ack.KEEP
        s = self.settings
        self.attempt = Attempt(claim, worker=self.name, scheduler=self.scheduler, versions=self.versions,
                               store=self.store, heartbeat_s=s.worker_heartbeat_s, report_retry_s=s.worker_report_retry_s)
        if self.stop_requested:
            self.attempt.flags.shutdown(0.0)
        log.info("job claimed", extra={**ctx, "attempt": claim["attempt"], "device": claim["device"],
                                       "resume": claim["resume"], "resumed_from_epoch": claim["resumed_from_epoch"]})
        return await self.attempt.execute()

    async def _while_polling(self, work) -> Ack:
        """Run ``work`` while calling ``getmany`` on the paused consumer: polls keep the membership alive."""
        task = asyncio.ensure_future(work)
        while not task.done():
            self._alive()
            try:
                stray = await self.consumer.getmany(timeout_ms=self.settings.worker_poll_ms)
            except KafkaError as exc:
                log.warning("poll failed while busy", extra={"error": str(exc)})
                await asyncio.wait({task}, timeout=1.0)
                continue
            for tp, records in stray.items():  # a partition assigned and fetched before it was paused
                self.consumer.seek(tp, records[0].offset)
                self.consumer.pause(tp)
        return task.result()

    def _pause(self) -> None:
        self.busy = True
        self.consumer.pause(*self.consumer.assignment())

    def _resume(self) -> None:
        self.busy = False
        self.consumer.resume(*self.consumer.assignment())

    async def _commit(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        if tp not in self.consumer.assignment():
            log.info("partition moved to another worker; not committing", extra={"partition": tp.partition,
                                                                                 "offset": record.offset})
            return
        try:
            await self.consumer.commit({tp: record.offset + 1})
        except KafkaError as exc:
            log.warning("commit failed", extra={"partition": tp.partition, "offset": record.offset, "error": str(exc)})
