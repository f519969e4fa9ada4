"""The deployer itself: event handling is pure bookkeeping (``LiveState``); I/O is the Kafka consumer
and the artifact download, which verifies the sha256 the event announced before "deploying"."""
from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
import orjson
from aiokafka import AIOKafkaConsumer

from libs.events import topics

log = logging.getLogger("deployer")


@dataclass
class Deployment:
    model_id: str
    environment: str
    version: str
    sha256: str | None
    path: Path | None = None
    verified: bool = False


@dataclass
class LiveState:
    """What is live per (model, environment), and the history of events that changed it."""

    live: dict[tuple[str, str], Deployment] = field(default_factory=dict)
    weights: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    seen: list[dict[str, Any]] = field(default_factory=list)
    _ids: set[str] = field(default_factory=set)

    def apply(self, event_id: str, event_type: str, body: dict[str, Any]) -> Deployment | None:
        """Record one lifecycle event; returns a deployment to perform, if any. Duplicates are ignored."""
        if event_id in self._ids:
            return None
        self._ids.add(event_id)
        self.seen.append({"id": event_id, "type": event_type, **body})
        slot = (body.get("model_id", ""), body.get("environment", ""))
        if event_type == "VersionPromoted" and body.get("to_stage") == "production":
            deployment = Deployment(slot[0], slot[1], body["version"], body.get("artifact_sha256"))
            self.live[slot] = deployment
            self.weights[slot] = {body["version"]: 100}
            return deployment
        if event_type == "VersionDemoted" and self.live.get(slot) and self.live[slot].version == body.get("version"):
            del self.live[slot]
            self.weights.pop(slot, None)
        if event_type == "RolloutUpdated":
            self.weights[slot] = dict(body["weights"])
        return None

    def events_of(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.seen if e["type"] == event_type]


class Deployer:
    """Consumes lifecycle events; for each version going live, fetches an expiring link from the
    gateway, downloads the weights into ``workdir`` and checks their sha256 against the event."""

    def __init__(self, *, bootstrap: str, gateway: str, api_key: str, workdir: Path, group_id: str | None = None,
                 fetch_max_wait_ms: int = 20) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.bootstrap = bootstrap
        self.gateway = gateway.rstrip("/")
        self.api_key = api_key
        self.workdir = workdir
        self.group_id = group_id or f"deployer-{uuid.uuid4().hex[:8]}"
        self.state = LiveState()
        self._changed = asyncio.Condition()
        self._task: asyncio.Task | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.ready = asyncio.Event()

    async def start(self) -> "Deployer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._consumer = AIOKafkaConsumer(
            topics.LIFECYCLE, bootstrap_servers=self.bootstrap, group_id=self.group_id,
            auto_offset_reset="latest", enable_auto_commit=False,
            # Tansu answers a fetch only when its wait runs out, even if records arrive meanwhile, so the
            # wait bounds how late a promotion is seen; 20 ms costs ~50 idle fetches a second
            fetch_max_wait_ms=self.fetch_max_wait_ms,
        )
        await self._consumer.start()
        # wait for the partition assignment so "latest" means "from now"
        while not self._consumer.assignment():
            await asyncio.sleep(0.05)
        for tp in self._consumer.assignment():
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._run())
        self.ready.set()
        return self

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer:
            await self._consumer.stop()

    async def _run(self) -> None:
        assert self._consumer is not None
        async with httpx.AsyncClient(base_url=self.gateway, timeout=60,
                                     headers={"authorization": f"Bearer {self.api_key}"}) as api:
            while True:
                batch = await self._consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for record in records:
                        await self._handle(api, record)
                if batch:
                    await self._consumer.commit()

    async def _handle(self, api: httpx.AsyncClient, record) -> None:
        headers = {k: v.decode() for k, v in record.headers or ()}
        try:
            body = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            return
        deployment = self.state.apply(headers.get("ce_id", ""), headers.get("ce_type", ""), body)
        async with self._changed:  # the event is in hand: waiters on the event need not wait for the download
            self._changed.notify_all()
        if deployment is not None:
            try:
                await self._deploy(api, deployment)
            except (httpx.HTTPError, OSError) as exc:  # a failed download must not stop the subscriber
                deployment.verified = False
                log.error("deploying %s %s failed: %s", deployment.model_id, deployment.version, exc)
        async with self._changed:
            self._changed.notify_all()

    async def _deploy(self, api: httpx.AsyncClient, d: Deployment) -> None:
        link = await api.get(f"/api/v1/models/{d.model_id}/download", params={"version": d.version, "expires_in": 300})
        if link.status_code != 200:
            log.error("no download link for %s %s: %s", d.model_id, d.version, link.text)
            return
        url = link.json()["download_url"]
        target = self.workdir / d.model_id / d.environment / f"{d.version}.pt"
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        async with httpx.AsyncClient(timeout=120) as plain, plain.stream("GET", url) as response:
            response.raise_for_status()
            with open(target, "wb") as out:
                async for chunk in response.aiter_bytes():
                    digest.update(chunk)
                    out.write(chunk)
        d.path = target
        d.verified = d.sha256 is not None and digest.hexdigest() == d.sha256
        log.info("deployed %s %s to %s (verified=%s)", d.model_id, d.version, d.environment, d.verified)

    async def wait_for(self, condition: Callable[[LiveState], Any], timeout: float = 30) -> Any:
        """Wait until ``condition(state)`` is truthy; returns its value."""
        async def check():
            async with self._changed:
                while not (value := condition(self.state)):
                    await self._changed.wait()
                return value

        return await asyncio.wait_for(check(), timeout)
