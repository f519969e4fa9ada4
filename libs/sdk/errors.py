"""What the SDK raises. Every refusal from the gateway is an RFC 9457 problem; ``CairnAPIError`` keeps
its fields so callers can act on ``status``, ``code`` and the per-field ``errors``."""
from __future__ import annotations

from typing import Any

import httpx

PROBLEM_FIELDS = ("type", "title", "status", "code", "detail", "instance", "errors")


class CairnError(Exception):
    """Base of the SDK's own errors (configuration, integrity)."""


class CairnConfigError(CairnError):
    """The client cannot be built: no URL, or a malformed one."""


class CairnIntegrityError(CairnError):
    """Downloaded bytes did not match the sha256 (or size) the registry recorded."""


class CairnAPIError(CairnError):
    """The gateway answered with an error (an RFC 9457 problem, or something that is not one)."""

    def __init__(self, status: int, title: str, detail: str = "", *, type: str = "about:blank",
                 code: str | None = None, instance: str | None = None,
                 errors: list[dict[str, str]] | None = None, extra: dict[str, Any] | None = None,
                 method: str = "", url: str = "") -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.code = code
        self.instance = instance
        self.errors = list(errors or [])
        self.extra = dict(extra or {})
        self.method = method
        self.url = url
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.status} {self.title}" if self.status else self.title
        if self.detail and self.detail != self.title:
            text += f": {self.detail}"
        for error in self.errors:
            text += f"\n  - {error.get('field', '?')}: {error.get('message', '')}"
        return text

    @property
    def fields(self) -> list[str]:
        """The names of the fields the server refused (``body.name``, ``query.page_size``...)."""
        return [e["field"] for e in self.errors if "field" in e]

    @classmethod
    def from_response(cls, response: httpx.Response) -> "CairnAPIError":
        """Read the problem body; a non-problem body (a proxy's HTML page) still gives a useful error."""
        method, url = response.request.method, str(response.request.url.copy_with(query=None))
        body: Any = None
        try:
            body = response.json()
        except ValueError:
            pass
        if isinstance(body, dict) and "status" in body and "title" in body:
            extra = {k: v for k, v in body.items() if k not in PROBLEM_FIELDS}
            return cls(int(body["status"]), str(body["title"]), str(body.get("detail") or ""),
                       type=str(body.get("type", "about:blank")), code=body.get("code"),
                       instance=body.get("instance"), errors=body.get("errors"), extra=extra,
                       method=method, url=url)
        text = response.text[:500] if not isinstance(body, dict) else str(body)[:500]
        return cls(response.status_code, response.reason_phrase or "HTTP error", text, method=method, url=url)
