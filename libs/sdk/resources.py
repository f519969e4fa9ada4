"""One class per area of the API; ``Cairn`` holds one of each (``cairn.models``, ``cairn.versions``...)."""
from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import httpx

from libs.sdk import transfer
from libs.sdk.errors import CairnAPIError, CairnIntegrityError
from libs.sdk.sse import parse_events
from libs.sdk.types import (
    Alias,
    Artifact,
    AuditPage,
    Downloaded,
    DownloadLink,
    Model,
    ModelPage,
    ProgressCallback,
    TrainingEvent,
    TrainingJob,
    Version,
    VersionPage,
)

if TYPE_CHECKING:
    from libs.sdk.client import Cairn

TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


def _seg(value: str) -> str:
    from libs.sdk.client import segment

    return segment(value)


def _idem(key: str | None) -> dict[str, str]:
    """An Idempotency-Key for a create: the caller's, or a fresh one, so the client's own retries (and a
    response lost on the way back) never create twice; the gateway replays the first answer."""
    return {"idempotency-key": key or str(uuid.uuid4())}


def _if_match(revision: int | str | None) -> dict[str, str] | None:
    if revision is None:
        return None
    text = str(revision)
    return {"if-match": text if text.startswith('"') else f'"{text}"'}


def _body(**fields: Any) -> dict[str, Any]:
    """A JSON body with only the fields the caller gave; the server applies its defaults to the rest."""
    return {k: v for k, v in fields.items() if v is not None}


class _Area:
    def __init__(self, client: "Cairn") -> None:
        self._c = client


class ModelsAPI(_Area):
    def register(self, name: str, type: str, *, framework: str | None = None, task: str | None = None,
                 description: str | None = None, metadata: dict[str, Any] | None = None,
                 tags: dict[str, str] | None = None, owner: str | None = None,
                 idempotency_key: str | None = None) -> Model:
        """Register a model (ModelRegistered). ``metadata`` is typed by ``type`` (see ``types()``)."""
        body = _body(name=name, type=type, framework=framework, task=task, description=description,
                     metadata=metadata, tags=tags, owner=owner)
        return self._c.json("POST", "/models", json=body, headers=_idem(idempotency_key))

    def get(self, model: str) -> Model:
        return self._c.json("GET", f"/models/{_seg(model)}")

    def list(self, *, type: str | None = None, framework: str | None = None, task: str | None = None,
             owner: str | None = None, q: str | None = None, page: int | None = None,
             page_size: int | None = None, **filters: Any) -> ModelPage:
        params = {"type": type, "framework": framework, "task": task, "owner": owner, "q": q, "page": page,
                  "page_size": page_size, **filters}
        return self._c.json("GET", "/models", params=params)

    def update(self, model: str, *, description: str | None = None, task: str | None = None,
               framework: str | None = None, owner: str | None = None, metadata: dict[str, Any] | None = None,
               tags: dict[str, str | None] | None = None, if_revision: int | None = None) -> Model:
        """Change fields; ``metadata`` and ``tags`` are JSON merge patches (a ``None`` value removes a key).
        With ``if_revision`` the update is refused (412) if someone changed the model since."""
        body = _body(description=description, task=task, framework=framework, owner=owner, metadata=metadata,
                     tags=tags)
        return self._c.json("PATCH", f"/models/{_seg(model)}", json=body, headers=_if_match(if_revision))

    def delete(self, model: str, *, if_revision: int | None = None) -> None:
        return self._c.json("DELETE", f"/models/{_seg(model)}", headers=_if_match(if_revision))

    def types(self) -> dict[str, Any]:
        """The typed metadata each model type accepts, as JSON Schema."""
        return self._c.json("GET", "/model-types")


class VersionsAPI(_Area):
    def create(self, model: str, version: str | None = None, *, bump: str | None = None,
               prerelease: str | None = None, change_log: str | None = None,
               metrics: dict[str, float] | None = None, training_data: dict[str, Any] | None = None,
               dependencies: list[dict[str, str]] | None = None, tags: list[str] | None = None,
               lineage: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None,
               idempotency_key: str | None = None) -> Version:
        """An explicit semver, or a ``bump`` (major, minor, patch) with an optional ``prerelease``
        (alpha, beta, rc); with neither, the server bumps the patch. Emits VersionCreated."""
        body = _body(version=version, bump=bump, prerelease=prerelease, change_log=change_log, metrics=metrics,
                     training_data=training_data, dependencies=dependencies, tags=tags, lineage=lineage,
                     metadata=metadata)
        return self._c.json("POST", f"/models/{_seg(model)}/versions", json=body, headers=_idem(idempotency_key))

    def list(self, model: str, *, tag: str | None = None, page: int | None = None,
             page_size: int | None = None) -> VersionPage:
        return self._c.json("GET", f"/models/{_seg(model)}/versions",
                            params={"tag": tag, "page": page, "page_size": page_size})

    def get(self, model: str, version: str = "latest") -> Version:
        """By semver, alias or ``latest``."""
        return self._c.json("GET", f"/models/{_seg(model)}/versions/{_seg(version)}")

    def delete(self, model: str, version: str, *, reason: str | None = None) -> None:
        return self._c.json("DELETE", f"/models/{_seg(model)}/versions/{_seg(version)}", params={"reason": reason})

    def tag(self, model: str, version: str, *, add: Iterable[str] = (), remove: Iterable[str] = ()) -> Version:
        return self._c.json("POST", f"/models/{_seg(model)}/versions/{_seg(version)}/tags",
                            json={"add": list(add), "remove": list(remove)})

    def record_metrics(self, model: str, version: str, metrics: dict[str, float], *, source: str = "sdk") -> Version:
        return self._c.json("POST", f"/models/{_seg(model)}/versions/{_seg(version)}/metrics",
                            json={"metrics": metrics, "source": source})

    def aliases(self, model: str) -> list[Alias]:
        return self._c.json("GET", f"/models/{_seg(model)}/aliases")

    def set_alias(self, model: str, alias: str, version: str) -> Alias:
        """Point ``alias`` at ``version`` (moves atomically if it pointed elsewhere)."""
        return self._c.json("PUT", f"/models/{_seg(model)}/aliases/{_seg(alias)}", json={"version": version})

    def remove_alias(self, model: str, alias: str) -> None:
        return self._c.json("DELETE", f"/models/{_seg(model)}/aliases/{_seg(alias)}")

    def retention(self, model: str) -> dict[str, Any]:
        return self._c.json("GET", f"/models/{_seg(model)}/retention")

    def set_retention(self, model: str, keep_last: int | None) -> dict[str, Any]:
        return self._c.json("PUT", f"/models/{_seg(model)}/retention", json={"keep_last": keep_last})


class ArtifactsAPI(_Area):
    def upload(self, model: str, version: str, path: str, *, progress: ProgressCallback | None = None,
               hash_progress: ProgressCallback | None = None, chunk_size: int = transfer.CHUNK) -> Artifact:
        """Stream a weights file to the version. Its sha256 is computed first and sent as
        ``X-Content-SHA256``, so the server refuses the upload if a single byte changed on the way."""
        size = transfer.file_size(path)
        digest = transfer.sha256_of(path, progress=hash_progress, chunk_size=chunk_size)
        headers = {"content-type": "application/octet-stream", "content-length": str(size),
                   "x-content-sha256": digest}
        body = transfer.read_chunks(path, size, progress=progress, chunk_size=chunk_size)
        # No overall deadline: a large file on a slow link may take long; only a stalled one fails.
        return self._c.json("PUT", f"/models/{_seg(model)}/versions/{_seg(version)}/artifact", content=body,
                            headers=headers, timeout=httpx.Timeout(300.0, connect=10.0))

    def verify(self, model: str, version: str) -> dict[str, Any]:
        """Ask the server to re-hash the stored artifact against its recorded sha256."""
        return self._c.json("POST", f"/models/{_seg(model)}/versions/{_seg(version)}/verify")

    def link(self, model: str, version: str | None = None, *, expires_in: int | None = None) -> DownloadLink:
        """An expiring download link (signed by the gateway, or presigned by S3)."""
        return self._c.json("GET", f"/models/{_seg(model)}/download",
                            params={"version": version, "expires_in": expires_in})

    def download(self, model: str, version: str | None = None, *, dest: str | None = None,
                 progress: ProgressCallback | None = None, chunk_size: int = transfer.CHUNK) -> Downloaded:
        """Download a version's weights (default: the newest with an artifact) through its signed link.
        The bytes are hashed while they arrive and written to ``dest`` only if the sha256 and size match
        the registry's; otherwise ``CairnIntegrityError`` and nothing is left behind. ``dest`` may be a
        directory (the server's file name is used) or a file path; default: the file name in the cwd."""
        link = self.link(model, version)
        url = link["download_url"]
        if url.startswith("/"):
            url = self._c.url + url
        target = transfer.target_path(dest, link["filename"])
        with self._c.plain_client(httpx.Timeout(300.0, connect=10.0)) as plain:
            try:
                with plain.stream("GET", url) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise CairnAPIError.from_response(response)
                    transfer.save_verified(response.iter_bytes(chunk_size), target,
                                           expected_sha256=link["sha256"], expected_size=link["size"],
                                           progress=progress)
            except httpx.HTTPError as exc:
                # The server aborts a download whose bytes fail its own hash check, and a network cut
                # looks the same from here: either way nothing was written.
                raise CairnIntegrityError(f"the download of {link['filename']} was cut off before its end "
                                          f"({type(exc).__name__}); nothing was written") from exc
        return {"path": str(target), "model_id": str(link["model_id"]), "version": link["version"],
                "sha256": link["sha256"], "size": link["size"]}


class LifecycleAPI(_Area):
    def _post(self, model: str, version: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._c.json("POST", f"/models/{_seg(model)}/versions/{_seg(version)}/{action}", json=body)

    def transition(self, model: str, version: str, to_stage: str, *, environment: str = "production",
                   reason: str = "") -> dict[str, Any]:
        """Move a version to a stage: draft → staging → production → archived (or deprecated)."""
        return self._post(model, version, "transitions",
                          {"environment": environment, "to_stage": to_stage, "reason": reason})

    def promote(self, model: str, version: str, *, to_stage: str = "staging", environment: str = "production",
                reason: str = "") -> dict[str, Any]:
        return self.transition(model, version, to_stage, environment=environment, reason=reason)

    def publish(self, model: str, version: str, *, environment: str | None = None, strategy: str | None = None,
                steps: list[int] | None = None, step_interval_s: float | None = None,
                reason: str | None = None) -> dict[str, Any]:
        """Make a staged version live, at once or as a gradual rollout (``strategy="gradual"``, ``steps``)."""
        return self._post(model, version, "publish", _body(environment=environment, strategy=strategy, steps=steps,
                                                           step_interval_s=step_interval_s, reason=reason))

    def unpublish(self, model: str, version: str, *, environment: str | None = None,
                  reason: str | None = None) -> dict[str, Any]:
        return self._post(model, version, "unpublish", _body(environment=environment, reason=reason))

    def archive(self, model: str, version: str, *, environment: str = "production", reason: str = "") -> dict[str, Any]:
        return self._post(model, version, "archive", {"environment": environment, "reason": reason})

    def deprecate(self, model: str, version: str, *, environment: str | None = None,
                  reason: str | None = None) -> dict[str, Any]:
        return self._post(model, version, "deprecate", _body(environment=environment, reason=reason))

    def rollback(self, model: str, *, target_version: str | None = None, environment: str | None = None,
                 strategy: str | None = None, reason: str | None = None, steps: list[int] | None = None,
                 step_interval_s: float | None = None, wait_s: float | None = None) -> dict[str, Any]:
        """Roll production back (to ``target_version``, or the previous production version). The answer is
        the outcome, or ``{"status": "pending", "command_id": ...}`` if it is still running (see ``command``)."""
        body = _body(target_version=target_version, environment=environment, strategy=strategy, reason=reason,
                     steps=steps, step_interval_s=step_interval_s, wait_s=wait_s)
        return self._c.json("POST", f"/models/{_seg(model)}/rollback", json=body)

    def command(self, command_id: str) -> dict[str, Any]:
        return self._c.json("GET", f"/commands/{_seg(command_id)}")

    def production(self, model: str, *, environment: str | None = None) -> dict[str, Any]:
        """What is live: version, artifact and traffic weights (the deployer's lookup)."""
        return self._c.json("GET", f"/models/{_seg(model)}/production", params={"environment": environment})

    def stages(self, model: str, *, environment: str | None = None) -> dict[str, Any]:
        return self._c.json("GET", f"/models/{_seg(model)}/stages", params={"environment": environment})

    def deployments(self, model: str, **params: Any) -> dict[str, Any]:
        return self._c.json("GET", f"/models/{_seg(model)}/deployments", params=params)

    def rollouts(self, model: str, **params: Any) -> dict[str, Any]:
        return self._c.json("GET", f"/models/{_seg(model)}/rollouts", params=params)

    def advance_rollout(self, model: str, rollout_id: str) -> dict[str, Any]:
        return self._c.json("POST", f"/models/{_seg(model)}/rollouts/{_seg(rollout_id)}/advance")

    def abort_rollout(self, model: str, rollout_id: str, *, reason: str | None = None) -> dict[str, Any]:
        return self._c.json("POST", f"/models/{_seg(model)}/rollouts/{_seg(rollout_id)}/abort",
                            json=_body(reason=reason))

    def policy(self, model: str) -> dict[str, Any]:
        return self._c.json("GET", f"/models/{_seg(model)}/promotion-policy")

    def set_policy(self, model: str, policy: dict[str, Any]) -> dict[str, Any]:
        return self._c.json("PUT", f"/models/{_seg(model)}/promotion-policy", json=policy)


class TrainingAPI(_Area):
    def start(self, model: str, dataset: str, *, epochs: int | None = None,
              hyperparameters: dict[str, Any] | None = None, pool: str | None = None,
              dataset_seed: int | None = None, max_attempts: int | None = None,
              parent_version: str | None = None, bump: str | None = None,
              idempotency_key: str | None = None) -> TrainingJob:
        """Queue a training job (TrainingRequested); ``epochs`` is a shortcut into ``hyperparameters``."""
        hp = dict(hyperparameters or {})
        if epochs is not None:
            hp["epochs"] = epochs
        body = _body(dataset=dataset, hyperparameters=hp or None, pool=pool, dataset_seed=dataset_seed,
                     max_attempts=max_attempts, parent_version=parent_version, bump=bump)
        return self._c.json("POST", f"/models/{_seg(model)}/training-jobs", json=body,
                            headers=_idem(idempotency_key))

    def get(self, job_id: str) -> TrainingJob:
        return self._c.json("GET", f"/training-jobs/{_seg(job_id)}")

    def list(self, model: str, **params: Any) -> dict[str, Any]:
        return self._c.json("GET", f"/models/{_seg(model)}/training-jobs", params=params)

    def cancel(self, job_id: str, *, reason: str | None = None) -> TrainingJob:
        return self._c.json("POST", f"/training-jobs/{_seg(job_id)}/cancel", json=_body(reason=reason))

    def events(self, job_id: str, *, last_event_id: str | None = None, reconnects: int = 5) -> Iterator[TrainingEvent]:
        """The job's live events (Server-Sent Events): what happened so far, then each new one, until
        the job ends. A dropped connection resumes after the last event seen (``Last-Event-ID``)."""
        cursor = last_event_id
        failures = 0
        while True:
            headers = {"accept": "text/event-stream"}
            if cursor:
                headers["last-event-id"] = cursor
            try:
                with self._c.http.stream("GET", f"/api/v1/training-jobs/{_seg(job_id)}/events", headers=headers,
                                         timeout=httpx.Timeout(10.0, read=90.0)) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise CairnAPIError.from_response(response)
                    for event in parse_events(response.iter_lines()):
                        failures = 0
                        cursor = event["id"] or cursor
                        yield event
                        if event["data"].get("state") in TERMINAL_STATES:
                            return
                # The server ends the stream with the job; an end without a terminal event means the
                # job was already over when we (re)connected past its last event.
                return
            except (httpx.TransportError, httpx.StreamError) as exc:
                failures += 1
                if failures > reconnects:
                    raise CairnAPIError(0, "event stream lost", f"{type(exc).__name__}: {exc}") from exc
                time.sleep(min(0.5 * 2 ** failures, 5.0))

    def wait(self, job_id: str, *, on_event: Any = None) -> TrainingJob:
        """Follow the job's events until it ends, then return the job as the scheduler records it."""
        for event in self.events(job_id):
            if on_event is not None:
                on_event(event)
        return self.get(job_id)


class EvaluationAPI(_Area):
    def evaluate(self, model: str, version: str, *, dataset: str | None = None,
                 dataset_seed: int | None = None) -> dict[str, Any]:
        """Request a (re-)evaluation (EvaluationRequested); the result arrives as EvaluationCompleted."""
        return self._c.json("POST", f"/models/{_seg(model)}/versions/{_seg(version)}/evaluate",
                            json=_body(dataset=dataset, dataset_seed=dataset_seed))

    def list(self, model: str, version: str) -> Any:
        return self._c.json("GET", f"/models/{_seg(model)}/versions/{_seg(version)}/evaluations")

    def get(self, evaluation_id: str) -> dict[str, Any]:
        return self._c.json("GET", f"/evaluations/{_seg(evaluation_id)}")

    def compare(self, model_1: str, version_1: str, model_2: str, version_2: str, *,
                metrics: list[str] | None = None, html: bool = False) -> Any:
        """Metric deltas, parameter diff and layer-by-layer structure between two versions. With
        ``html=True`` the readable report (a string) instead of JSON."""
        body = _body(model_1={"model_id": model_1, "version": version_1},
                     model_2={"model_id": model_2, "version": version_2}, metrics=metrics)
        if html:
            return self._c.text("POST", "/models/compare", json=body, params={"format": "html"},
                                headers={"accept": "text/html"})
        return self._c.json("POST", "/models/compare", json=body)

    def comparison(self, comparison_id: str) -> dict[str, Any]:
        return self._c.json("GET", f"/comparisons/{_seg(comparison_id)}")


class AuditAPI(_Area):
    def list(self, *, model_id: str | None = None, actor: str | None = None, event_type: str | None = None,
             since: str | None = None, until: str | None = None, order: str | None = None,
             cursor: str | None = None, page_size: int | None = None) -> AuditPage:
        """One page of the audit log, newest first unless ``order="asc"``; times are RFC 3339."""
        params = {"model_id": model_id, "actor": actor, "event_type": event_type, "since": since, "until": until,
                  "order": order, "cursor": cursor, "page_size": page_size}
        return self._c.json("GET", "/audit", params=params)

    def iter(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every matching entry, following ``next_cursor`` page by page."""
        cursor = filters.pop("cursor", None)
        while True:
            page = self.list(cursor=cursor, **filters)
            yield from page["entries"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def verify(self) -> dict[str, Any]:
        """Recompute the hash chain; names the first broken link if any."""
        return self._c.json("GET", "/audit/verify")
