"""Pure rules of the search read model: how each event changes a model's projection, and which search
document (if any) a projection yields. No I/O; event times come in with the events.

Events may arrive in any order and more than once (four topics, redeliveries, replays from the audit
log), so every change is a merge that does not depend on order:

- model fields are replaced only by a higher ``revision``; ModelDeleted is a tombstone that stays;
- version facts (created, tags, each metric, the stage in each environment) are last-writer-wins by
  the event's time; VersionDeleted is a tombstone that stays;
- a version known only from a later event (its VersionCreated not seen yet) is kept but not shown.

The representative version of a model (the one its search row shows) is its newest version live in
production (environment ``production`` first, then any), else its newest version by creation time.
Its ``status`` is ``production`` when it is live in any environment, else the stage of its most
recent transition, else ``draft``."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from libs.search.port import SearchDocument

PRIMARY_ENVIRONMENT = "production"
MODEL_EVENTS = ("ModelRegistered", "ModelUpdated", "ModelDeleted")
VERSION_EVENTS = ("VersionCreated", "VersionTagged", "VersionMetricsRecorded", "VersionDeleted")
STAGE_EVENTS = ("VersionPromoted", "VersionDemoted", "VersionArchived", "VersionDeprecated")
EVALUATION_EVENTS = ("EvaluationCompleted",)
HANDLED = (*MODEL_EVENTS, *VERSION_EVENTS, *STAGE_EVENTS, *EVALUATION_EVENTS)


@dataclass(frozen=True)
class StageMark:
    stage: str
    at: str  # ISO time of the event that set it


@dataclass(frozen=True)
class VersionView:
    version_id: str
    version: str | None = None
    created_at: str | None = None
    created: bool = False  # VersionCreated seen
    deleted: bool = False
    tags: tuple[str, ...] = ()
    tags_at: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    metrics_at: dict[str, str] = field(default_factory=dict)  # per metric: time of the value kept
    stages: dict[str, StageMark] = field(default_factory=dict)

    def status(self) -> str:
        if any(m.stage == "production" for m in self.stages.values()):
            return "production"
        if not self.stages:
            return "draft"
        return max(self.stages.values(), key=lambda m: m.at).stage

    def live_in(self, environment: str) -> bool:
        mark = self.stages.get(environment)
        return mark is not None and mark.stage == "production"


@dataclass(frozen=True)
class ModelView:
    model_id: str
    registered: bool = False
    deleted: bool = False
    revision: int = 0
    fields: dict[str, Any] = field(default_factory=dict)  # name, type, framework, ... as in ModelState
    versions: dict[str, VersionView] = field(default_factory=dict)
    touched_at: str = ""  # time of the newest event applied

    def to_json(self) -> dict[str, Any]:
        """What ``dataclasses.asdict`` gives, written out: asdict deep-copies every value and was most of
        the indexer's CPU on models with long histories. The result is serialised at once, never mutated."""
        return {
            "model_id": self.model_id, "registered": self.registered, "deleted": self.deleted,
            "revision": self.revision, "fields": self.fields, "touched_at": self.touched_at,
            "versions": {key: _version_json(v) for key, v in self.versions.items()},
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> "ModelView":
        versions = {
            key: VersionView(**{**v, "tags": tuple(v["tags"]),
                                "stages": {env: StageMark(**m) for env, m in v["stages"].items()}})
            for key, v in data["versions"].items()
        }
        return ModelView(**{**data, "versions": versions})


def _version_json(v: VersionView) -> dict[str, Any]:
    return {
        "version_id": v.version_id, "version": v.version, "created_at": v.created_at, "created": v.created,
        "deleted": v.deleted, "tags": v.tags, "tags_at": v.tags_at, "metrics": v.metrics, "metrics_at": v.metrics_at,
        "stages": {env: {"stage": m.stage, "at": m.at} for env, m in v.stages.items()},
    }


def _iso(at: datetime | str) -> str:
    """Fixed-width UTC text, so that comparing two of them compares the times."""
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _merge_metrics(v: VersionView, metrics: dict[str, Any], at: str) -> VersionView:
    values, times = dict(v.metrics), dict(v.metrics_at)
    for name, value in metrics.items():
        if at >= times.get(name, ""):
            values[name], times[name] = float(value), at
    return replace(v, metrics=values, metrics_at=times)


def apply(view: ModelView, event_type: str, data: dict[str, Any], at: datetime) -> ModelView:
    """The projection after one event (``data`` is the event body as JSON). Unknown types change nothing."""
    when = _iso(at)
    touched = max(view.touched_at, when)
    if event_type in ("ModelRegistered", "ModelUpdated"):
        revision = int(data["revision"])
        if revision <= view.revision:
            return replace(view, touched_at=touched)
        keep = ("name", "type", "framework", "task", "description", "tags", "owner", "created_at", "updated_at")
        return replace(view, registered=True, revision=revision, fields={k: data.get(k) for k in keep},
                       touched_at=touched)
    if event_type == "ModelDeleted":
        return replace(view, deleted=True, touched_at=touched)
    if event_type not in HANDLED:
        return view
    version_id = str(data["version_id"])
    v = view.versions.get(version_id) or VersionView(version_id=version_id)
    if event_type == "VersionCreated":
        v = replace(v, version=data["version"], created_at=_iso(data["created_at"]), created=True)
        v = _merge_metrics(v, data.get("metrics") or {}, when)
        if when >= v.tags_at:
            v = replace(v, tags=tuple(data.get("tags") or ()), tags_at=when)
    elif event_type == "VersionTagged":
        if when >= v.tags_at:
            v = replace(v, tags=tuple(data["tags"]), tags_at=when)
    elif event_type in ("VersionMetricsRecorded", "EvaluationCompleted"):
        v = _merge_metrics(v, data.get("metrics") or {}, when)
    elif event_type == "VersionDeleted":
        v = replace(v, deleted=True)
    elif event_type in STAGE_EVENTS:
        env = data["environment"]
        mark = v.stages.get(env)
        if mark is None or when >= mark.at:
            v = replace(v, stages={**v.stages, env: StageMark(stage=data["to_stage"], at=when)})
    if v.version is None and data.get("version"):
        v = replace(v, version=data["version"])  # known before VersionCreated, still hidden until it comes
    return replace(view, versions={**view.versions, version_id: v}, touched_at=touched)


def representative(view: ModelView) -> VersionView | None:
    shown = [v for v in view.versions.values() if v.created and not v.deleted]
    if not shown:
        return None

    def newest(candidates: list[VersionView]) -> VersionView:
        return max(candidates, key=lambda v: (v.created_at or "", v.version or ""))

    for live in ([v for v in shown if v.live_in(PRIMARY_ENVIRONMENT)],
                 [v for v in shown if v.status() == "production"]):
        if live:
            return newest(live)
    return newest(shown)


def _time(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def document(view: ModelView) -> SearchDocument | None:
    """The search row of a model, or None when it must not be found (deleted, or not registered yet)."""
    if view.deleted or not view.registered:
        return None
    f = view.fields
    rep = representative(view)
    updated = _time(f["updated_at"])
    if view.touched_at:
        updated = max(updated, _time(view.touched_at))
    return SearchDocument(
        model_id=UUID(view.model_id), name=f["name"], type=f["type"], framework=f["framework"],
        owner=f["owner"], created_at=_time(f["created_at"]), updated_at=updated,
        description=f.get("description") or "", task=f.get("task"), model_tags=dict(f.get("tags") or {}),
        version=rep.version if rep else None, version_id=UUID(rep.version_id) if rep else None,
        status=rep.status() if rep else None, metrics=dict(rep.metrics) if rep else {},
        version_tags=tuple(rep.tags) if rep else (),
    )
