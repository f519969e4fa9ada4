"""``Cairn``: a synchronous client of the public gateway API (``/api/v1``).

    from libs.sdk import Cairn
    with Cairn() as cairn:                      # CAIRN_URL, CAIRN_API_KEY from the environment
        model = cairn.models.register("digits-cnn", "classification")
        cairn.versions.create(model["name"], "1.0.0")
        cairn.artifacts.upload(model["name"], "1.0.0", "weights.pt", progress=print)
        cairn.artifacts.download(model["name"], dest="weights.pt")

Every method answers the gateway's JSON; every refusal raises ``CairnAPIError`` with the problem's
fields. The API key is sent only to the gateway: never to a download link's host, never in ``repr``."""
from __future__ import annotations

import os
import time
from typing import Any, Iterable
from urllib.parse import quote

import httpx

from libs.sdk.access import KeysAPI, PermissionsAPI
from libs.sdk.errors import CairnAPIError, CairnConfigError
from libs.sdk.resources import (
    ArtifactsAPI,
    AuditAPI,
    EvaluationAPI,
    LifecycleAPI,
    ModelsAPI,
    TrainingAPI,
    VersionsAPI,
)
from libs.sdk.secret import Secret, key_id_of, plain
from libs.sdk.types import SearchPage

DEFAULT_URL = "http://127.0.0.1:8080"  # where `make run` puts the gateway
USER_AGENT = "cairn-sdk/1"
#: Answers worth another try: rate limited, or the gateway could not reach a service for a moment.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Methods whose repetition has no second effect. A POST joins them when it carries an Idempotency-Key.
REPLAYABLE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})
MAX_RETRY_WAIT_S = 30.0


def segment(value: str) -> str:
    """One path segment: a model name, a version (``1.0.0+build``) or an alias, escaped whole."""
    if not value:
        raise ValueError("an empty path segment (model, version, alias or id) was given")
    return quote(str(value), safe="")


class Cairn:
    """The client. ``url`` and ``api_key`` default to ``CAIRN_URL`` and ``CAIRN_API_KEY``."""

    def __init__(self, url: str | None = None, api_key: str | Secret | None = None, *, timeout: float = 60.0,
                 retries: int = 2, transport: httpx.BaseTransport | None = None, verify: bool = True) -> None:
        base = self.url = base_url(url)
        self.retries = max(0, retries)
        self._api_key = plain(api_key) if api_key is not None else os.environ.get("CAIRN_API_KEY")
        headers = default_headers(self._api_key)
        self._timeout = httpx.Timeout(timeout, connect=10.0)
        self._verify = verify
        self._transport = transport
        self.http = httpx.Client(base_url=base, headers=headers, timeout=self._timeout, transport=transport,
                                 verify=verify, follow_redirects=False)
        self.models = ModelsAPI(self)
        self.versions = VersionsAPI(self)
        self.artifacts = ArtifactsAPI(self)
        self.lifecycle = LifecycleAPI(self)
        self.training = TrainingAPI(self)
        self.evaluation = EvaluationAPI(self)
        self.audit = AuditAPI(self)
        self.permissions = PermissionsAPI(self)
        self.keys = KeysAPI(self)

    def __repr__(self) -> str:
        return f"Cairn(url={self.url!r}, api_key={'set' if self._api_key else 'unset'})"

    def __enter__(self) -> "Cairn":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    @property
    def has_api_key(self) -> bool:
        return bool(self._api_key)

    @property
    def key_id(self) -> str | None:
        """The id of the key this client sends (not secret), or None."""
        return key_id_of(self._api_key)

    def use_api_key(self, api_key: str | Secret) -> None:
        """Send another key from now on (``keys.rotate`` of this client's own key calls it)."""
        self._api_key = plain(api_key)
        self.http.headers["authorization"] = f"Bearer {self._api_key}"

    def plain_client(self, timeout: httpx.Timeout | None = None) -> httpx.Client:
        """A client with no credentials, for links that carry their own authorisation (signed or presigned
        URLs, possibly on another host): the API key must not travel there."""
        return httpx.Client(timeout=timeout or self._timeout, transport=self._transport, verify=self._verify,
                            headers={"user-agent": USER_AGENT})

    # -- plumbing ----------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, json: Any = None, params: Any = None,
                headers: dict[str, str] | None = None, content: Any = None,
                timeout: httpx.Timeout | None = None) -> httpx.Response:
        """Send one request to ``/api/v1{path}``; an answer of 400 or more raises ``CairnAPIError``.

        A request that can be repeated safely (GET, PUT, DELETE, or a POST with an Idempotency-Key, and a
        body that is not a one-shot stream) is tried again, up to ``retries`` times, when the gateway
        cannot be reached or answers 429, 502, 503 or 504; a 429 waits as long as the server asks."""
        kwargs = clean_request(json, params, headers, content, timeout)
        attempts = 1 + (self.retries if replayable(method, headers, content) else 0)
        for attempt in range(attempts):
            last = attempt + 1 == attempts
            try:
                response = self.http.request(method, f"/api/v1{path}", **kwargs)
            except httpx.TransportError as exc:
                if not last:
                    time.sleep(backoff(attempt))
                    continue
                raise CairnAPIError(0, "gateway unreachable", f"{type(exc).__name__}: {exc} ({self.url})",
                                    method=method, url=f"{self.url}/api/v1{path}") from exc
            if response.status_code in RETRY_STATUSES and not last:
                time.sleep(retry_after(response) or backoff(attempt))
                continue
            if response.status_code >= 400:
                raise CairnAPIError.from_response(response)
            return response
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return _decoded(self.request(method, path, **kwargs))

    def text(self, method: str, path: str, **kwargs: Any) -> str:
        return self.request(method, path, **kwargs).text

    # -- small areas -------------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        """The calling key: id, name, role and permissions."""
        return self.json("GET", "/me")

    def search(self, q: str | None = None, *, framework: str | None = None, task: str | None = None,
               type: str | None = None, tags: Iterable[str] = (), stage: str | None = None,
               metrics: Iterable[str] = (), sort_by: str | None = None, order: str | None = None,
               page: int | None = None, page_size: int | None = None) -> SearchPage:
        """Models by text (typos forgiven) and filters; ``metrics`` like ``["accuracy>=0.9"]``."""
        params = {"q": q, "framework": framework, "task": task, "type": type, "tag": list(tags), "stage": stage,
                  "metric": list(metrics), "sort_by": sort_by, "order": order, "page": page, "page_size": page_size}
        try:
            return self.json("GET", "/models/search", params=params)
        except CairnAPIError as exc:
            raise search_missing(exc, self.url) from exc


def replayable(method: str, headers: dict[str, str] | None, content: Any) -> bool:
    """May this request be sent again without a second effect? Not if its body is a one-shot stream."""
    safe = method.upper() in REPLAYABLE_METHODS or "idempotency-key" in {k.lower() for k in headers or {}}
    return safe and (content is None or isinstance(content, (bytes, str)))


def search_missing(exc: CairnAPIError, url: str) -> CairnAPIError:
    """An older gateway takes "search" for a model name (404); say what is really missing."""
    if exc.status in (404, 405) and not exc.errors:
        return CairnAPIError(
            exc.status, "Search not available",
            f"this gateway ({url}) has no GET /api/v1/models/search; upgrade it ({exc.detail})",
            type=exc.type, code=exc.code, instance=exc.instance, method=exc.method, url=exc.url)
    return exc


def base_url(url: str | None) -> str:
    base = (url or os.environ.get("CAIRN_URL") or DEFAULT_URL).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise CairnConfigError(f"CAIRN_URL must start with http:// or https://, got {base!r}")
    return base


def default_headers(api_key: str | None) -> dict[str, str]:
    headers = {"user-agent": USER_AGENT, "accept": "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


def clean_request(json: Any, params: Any, headers: dict[str, str] | None, content: Any,
                  timeout: httpx.Timeout | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"params": _clean(params), "headers": headers}
    if json is not None:
        kwargs["json"] = json
    if content is not None:
        kwargs["content"] = content
    if timeout is not None:
        kwargs["timeout"] = timeout
    return kwargs


def _decoded(response: httpx.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


def backoff(attempt: int) -> float:
    return min(0.25 * 2 ** attempt, 5.0)


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked to wait (``Retry-After``, or the problem's ``retry_after_s``), capped."""
    value: Any = response.headers.get("retry-after")
    if value is None and response.headers.get("content-type", "").startswith("application/problem+json"):
        try:
            value = response.json().get("retry_after_s")
        except ValueError:
            value = None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_WAIT_S) if value is not None else None
    except (TypeError, ValueError):
        return None


def _clean(params: Any) -> Any:
    """Drop unset query parameters, so the server's defaults apply."""
    if not isinstance(params, dict):
        return params
    return {k: v for k, v in params.items() if v is not None and v != [] and v != ()}
