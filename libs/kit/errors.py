"""One error base for the whole project, rendered as RFC 9457 problem+json in one place (libs.kit.http).

Domain code raises these; it knows nothing of HTTP beyond the status each kind maps to.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class FieldError:
    """One thing wrong with one field of the input, named by its dotted path (``body.metadata.d_model``)."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


@dataclass
class CairnError(Exception):
    """Base of every error a client may see. ``code`` is stable and machine-readable."""

    detail: str
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __post_init__(self) -> None:
        super().__init__(self.detail)

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://cairn.dev/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        body.update(self.extra)
        return body


def _kind(status: int, code: str, title: str):
    def decorate(cls):
        cls.status, cls.code, cls.title = status, code, title
        return cls

    return decorate


@_kind(400, "bad_request", "Bad request")
class BadRequest(CairnError):
    """The request cannot be read at all (malformed JSON, bad header)."""


@_kind(401, "unauthenticated", "Authentication required")
class Unauthenticated(CairnError):
    """No credentials, or credentials that are not valid."""


@_kind(403, "forbidden", "Forbidden")
class Forbidden(CairnError):
    """The principal is known but its role does not allow this action."""


@_kind(404, "not_found", "Not found")
class NotFound(CairnError):
    """The named resource does not exist (or was deleted)."""


@_kind(409, "conflict", "Conflict")
class Conflict(CairnError):
    """The request clashes with current state: a duplicate name, an illegal transition."""


@_kind(410, "gone", "Gone")
class Gone(CairnError):
    """The resource existed but is no longer available (an expired link)."""


@_kind(412, "precondition_failed", "Precondition failed")
class PreconditionFailed(CairnError):
    """An ``If-Match`` revision no longer matches."""


@_kind(413, "payload_too_large", "Payload too large")
class PayloadTooLarge(CairnError):
    """The body is larger than the configured limit."""


@_kind(415, "unsupported_media_type", "Unsupported media type")
class UnsupportedMediaType(CairnError):
    """The body is not in a media type this endpoint reads."""


@_kind(422, "validation_failed", "Validation failed")
class ValidationFailed(CairnError):
    """The request is well-formed but some fields are wrong; ``errors`` names each one."""


@_kind(429, "rate_limited", "Too many requests")
class RateLimited(CairnError):
    """The principal exceeded its request budget."""


@_kind(502, "upstream_unavailable", "Upstream unavailable")
class UpstreamUnavailable(CairnError):
    """The gateway could not reach the owning service."""


@_kind(503, "not_ready", "Service not ready")
class NotReady(CairnError):
    """A dependency (database, broker, Redis) is not answering yet."""
