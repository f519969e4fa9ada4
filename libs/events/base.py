"""Base class of every event body, and the registry that maps a CloudEvents ``type`` to its class."""
from __future__ import annotations

from typing import Any, Callable, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

_REGISTRY: dict[str, type["Event"]] = {}


class Event(BaseModel):
    """An immutable fact. Subclasses set ``event_type`` (the CloudEvents type users know, e.g. ModelRegistered),
    ``topic``, and ``class_version``; ``upcasters[n]`` turns a version-n body into version n+1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type: ClassVar[str]
    topic: ClassVar[str]
    class_version: ClassVar[int] = 1
    upcasters: ClassVar[dict[int, Upcaster]] = {}
    #: Example body for docs and contract tests.
    example: ClassVar[dict[str, Any]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "event_type" in cls.__dict__:
            if cls.event_type in _REGISTRY and _REGISTRY[cls.event_type] is not cls:
                raise TypeError(f"event type {cls.event_type} declared twice")
            _REGISTRY[cls.event_type] = cls

    def subject(self) -> str:
        """The aggregate this event is about; also the Kafka key. Most events are about a model."""
        model_id = getattr(self, "model_id", None)
        if model_id is None:
            raise NotImplementedError(f"{type(self).__name__} must define subject()")
        return str(model_id)

    @property
    def model_ref(self) -> UUID | None:
        return getattr(self, "model_id", None)

    @classmethod
    def dataschema(cls) -> str:
        return f"urn:cairn:event:{cls.event_type}:v{cls.class_version}"

    @classmethod
    def upcast(cls, body: dict[str, Any], from_version: int) -> dict[str, Any]:
        """Bring an older body up to ``class_version``, one step at a time."""
        for version in range(from_version, cls.class_version):
            body = cls.upcasters[version](body)
        return body


def event_class(type_name: str) -> type[Event] | None:
    return _REGISTRY.get(type_name)


def all_event_classes() -> list[type[Event]]:
    """The published catalog: events declared in ``libs.events`` (tests may declare private ones)."""
    published = [c for c in _REGISTRY.values() if c.__module__.startswith("libs.events.")]
    return sorted(published, key=lambda c: (c.topic, c.event_type))
