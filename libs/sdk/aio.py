"""``AsyncCairn``: the same API for asyncio code (``await cairn.models.get("digits-cnn")``).

The areas are the synchronous ones, driven by an async client: each of their methods returns an
awaitable of what the synchronous method returns. The methods that move files or follow streams are
async versions of their own here: ``artifacts.upload``/``download``, ``training.events`` (an async
iterator) and ``wait``, ``audit.iter`` and ``search``."""
from __future__ import annotations

import asyncio
import os
from typing import Any, AsyncIterator, Iterable

import httpx

from libs.sdk import transfer
from libs.sdk.access import AsyncKeysAPI, PermissionsAPI
from libs.sdk.client import (
    RETRY_STATUSES,
    backoff,
    base_url,
    clean_request,
    default_headers,
    replayable,
    retry_after,
    search_missing,
    segment,
)
from libs.sdk.errors import CairnAPIError, CairnIntegrityError
from libs.sdk.resources import (
    TERMINAL_STATES,
    ArtifactsAPI,
    AuditAPI,
    EvaluationAPI,
    LifecycleAPI,
    ModelsAPI,
    TrainingAPI,
    VersionsAPI,
)
from libs.sdk.secret import Secret, key_id_of, plain
from libs.sdk.sse import EventParser
from libs.sdk.types import Artifact, Downloaded, ProgressCallback, SearchPage, TrainingEvent, TrainingJob

class AsyncArtifactsAPI(ArtifactsAPI):
    async def upload(  # type: ignore[override]
        self, model: str, version: str, path: str, *, progress: ProgressCallback | None = None,
        hash_progress: ProgressCallback | None = None, chunk_size: int = transfer.CHUNK,
    ) -> Artifact:
        size = transfer.file_size(path)
        # Hashing reads the whole file: off the event loop.
        digest = await asyncio.to_thread(transfer.sha256_of, path, progress=hash_progress, chunk_size=chunk_size)
        headers = {"content-type": "application/octet-stream", "content-length": str(size),
                   "x-content-sha256": digest}

        async def body():
            chunks = transfer.read_chunks(path, size, progress=progress, chunk_size=chunk_size)
            while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                yield chunk

        return await self._c.json("PUT", f"/models/{segment(model)}/versions/{segment(version)}/artifact",
                                  content=body(), headers=headers, timeout=httpx.Timeout(300.0, connect=10.0))

    async def download(  # type: ignore[override]
        self, model: str, version: str | None = None, *, dest: str | None = None,
        progress: ProgressCallback | None = None, chunk_size: int = transfer.CHUNK,
    ) -> Downloaded:
        link = await self.link(model, version)
        url = link["download_url"]
        if url.startswith("/"):
            url = self._c.url + url
        target = transfer.target_path(dest, link["filename"])
        async with self._c.plain_client(httpx.Timeout(300.0, connect=10.0)) as plain:
            try:
                async with plain.stream("GET", url) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise CairnAPIError.from_response(response)
                    with transfer.VerifiedFile(target, expected_sha256=link["sha256"], expected_size=link["size"],
                                               progress=progress) as file:
                        async for chunk in response.aiter_bytes(chunk_size):
                            file.write(chunk)
                        file.commit()
            except httpx.HTTPError as exc:
                raise CairnIntegrityError(f"the download of {link['filename']} was cut off before its end "
                                          f"({type(exc).__name__}); nothing was written") from exc
        return {"path": str(target), "model_id": str(link["model_id"]), "version": link["version"],
                "sha256": link["sha256"], "size": link["size"]}


class AsyncTrainingAPI(TrainingAPI):
    async def events(self, job_id: str, *, last_event_id: str | None = None,  # type: ignore[override]
                     reconnects: int = 5) -> AsyncIterator[TrainingEvent]:
        cursor = last_event_id
        failures = 0
        while True:
            headers = {"accept": "text/event-stream", **({"last-event-id": cursor} if cursor else {})}
            try:
                async with self._c.http.stream("GET", f"/api/v1/training-jobs/{segment(job_id)}/events",
                                               headers=headers, timeout=httpx.Timeout(10.0, read=90.0)) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise CairnAPIError.from_response(response)
                    parser = EventParser()
                    async for line in response.aiter_lines():
                        event = parser.feed(line)
                        if event is None:
                            continue
                        failures = 0
                        cursor = event["id"] or cursor
                        yield event
                        if event["data"].get("state") in TERMINAL_STATES:
                            return
                return
            except (httpx.TransportError, httpx.StreamError) as exc:
                failures += 1
                if failures > reconnects:
                    raise CairnAPIError(0, "event stream lost", f"{type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(min(0.5 * 2 ** failures, 5.0))

    async def wait(self, job_id: str, *, on_event: Any = None) -> TrainingJob:  # type: ignore[override]
        async for event in self.events(job_id):
            if on_event is not None:
                on_event(event)
        return await self.get(job_id)


class AsyncAuditAPI(AuditAPI):
    async def iter(self, **filters: Any) -> AsyncIterator[dict[str, Any]]:  # type: ignore[override]
        cursor = filters.pop("cursor", None)
        while True:
            page = await self.list(cursor=cursor, **filters)
            for entry in page["entries"]:
                yield entry
            cursor = page.get("next_cursor")
            if not cursor:
                return


class AsyncCairn:
    """``async with AsyncCairn() as cairn: ...``; configuration as ``Cairn``."""

    def __init__(self, url: str | None = None, api_key: str | Secret | None = None, *, timeout: float = 60.0,
                 retries: int = 2, transport: httpx.AsyncBaseTransport | None = None, verify: bool = True) -> None:
        self.url = base_url(url)
        self.retries = max(0, retries)
        self._api_key = plain(api_key) if api_key is not None else os.environ.get("CAIRN_API_KEY")
        self._timeout = httpx.Timeout(timeout, connect=10.0)
        self._transport, self._verify = transport, verify
        self.http = httpx.AsyncClient(base_url=self.url, headers=default_headers(self._api_key),
                                      timeout=self._timeout, transport=transport, verify=verify,
                                      follow_redirects=False)
        self.models = ModelsAPI(self)  # type: ignore[arg-type]
        self.versions = VersionsAPI(self)  # type: ignore[arg-type]
        self.artifacts = AsyncArtifactsAPI(self)  # type: ignore[arg-type]
        self.lifecycle = LifecycleAPI(self)  # type: ignore[arg-type]
        self.training = AsyncTrainingAPI(self)  # type: ignore[arg-type]
        self.evaluation = EvaluationAPI(self)  # type: ignore[arg-type]
        self.audit = AsyncAuditAPI(self)  # type: ignore[arg-type]
        self.permissions = PermissionsAPI(self)  # type: ignore[arg-type]
        self.keys = AsyncKeysAPI(self)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"AsyncCairn(url={self.url!r}, api_key={'set' if self._api_key else 'unset'})"

    async def __aenter__(self) -> "AsyncCairn":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    @property
    def key_id(self) -> str | None:
        return key_id_of(self._api_key)

    def use_api_key(self, api_key: str | Secret) -> None:
        """Send another key from now on (``keys.rotate`` of this client's own key calls it)."""
        self._api_key = plain(api_key)
        self.http.headers["authorization"] = f"Bearer {self._api_key}"

    def plain_client(self, timeout: httpx.Timeout | None = None) -> httpx.AsyncClient:
        """No credentials: for signed or presigned links (see ``Cairn.plain_client``)."""
        return httpx.AsyncClient(timeout=timeout or self._timeout, transport=self._transport, verify=self._verify,
                                 headers={"user-agent": default_headers(None)["user-agent"]})

    async def request(self, method: str, path: str, *, json: Any = None, params: Any = None,
                      headers: dict[str, str] | None = None, content: Any = None,
                      timeout: httpx.Timeout | None = None) -> httpx.Response:
        """As ``Cairn.request``: raises ``CairnAPIError`` on ≥ 400, retries what is safe to repeat."""
        kwargs = clean_request(json, params, headers, content, timeout)
        attempts = 1 + (self.retries if replayable(method, headers, content) else 0)
        for attempt in range(attempts):
            last = attempt + 1 == attempts
            try:
                response = await self.http.request(method, f"/api/v1{path}", **kwargs)
            except httpx.TransportError as exc:
                if not last:
                    await asyncio.sleep(backoff(attempt))
                    continue
                raise CairnAPIError(0, "gateway unreachable", f"{type(exc).__name__}: {exc} ({self.url})",
                                    method=method, url=f"{self.url}/api/v1{path}") from exc
            if response.status_code in RETRY_STATUSES and not last:
                await asyncio.sleep(retry_after(response) or backoff(attempt))
                continue
            if response.status_code >= 400:
                raise CairnAPIError.from_response(response)
            return response
        raise AssertionError("unreachable")

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def text(self, method: str, path: str, **kwargs: Any) -> str:
        return (await self.request(method, path, **kwargs)).text

    async def me(self) -> dict[str, Any]:
        return await self.json("GET", "/me")

    async def search(self, q: str | None = None, *, framework: str | None = None, task: str | None = None,
                     type: str | None = None, tags: Iterable[str] = (), stage: str | None = None,
                     metrics: Iterable[str] = (), sort_by: str | None = None, order: str | None = None,
                     page: int | None = None, page_size: int | None = None) -> SearchPage:
        params = {"q": q, "framework": framework, "task": task, "type": type, "tag": list(tags), "stage": stage,
                  "metric": list(metrics), "sort_by": sort_by, "order": order, "page": page, "page_size": page_size}
        try:
            return await self.json("GET", "/models/search", params=params)
        except CairnAPIError as exc:
            raise search_missing(exc, self.url) from exc


__all__ = ["AsyncCairn"]