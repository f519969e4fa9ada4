"""The pure event → projection → document mapping of the search-indexer."""
from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta, timezone

import orjson

from services.search_indexer import domain
from services.search_indexer.domain import ModelView, apply, document

T0 = datetime(2026, 6, 15, 10, 0, tzinfo=timezone.utc)
MODEL = str(uuid.uuid4())


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def registered(revision: int = 1, **fields) -> dict:
    return {"model_id": MODEL, "name": "bert-base-chinese", "type": "transformer", "framework": "pytorch",
            "task": "text-classification", "description": "BERT for Chinese", "tags": {"language": "chinese"},
            "owner": "alice", "created_at": T0.isoformat(), "updated_at": T0.isoformat(), "revision": revision,
            **fields}


def created(version_id: str, version: str, minutes: float, metrics=None, tags=None) -> dict:
    return {"model_id": MODEL, "version_id": version_id, "version": version, "version_type": "release",
            "metrics": metrics or {}, "tags": tags or [], "created_by": "alice",
            "created_at": at(minutes).isoformat()}


def stage(version_id: str, version: str, to_stage: str, env: str = "production") -> dict:
    return {"model_id": MODEL, "version_id": version_id, "version": version, "environment": env,
            "from_stage": "draft", "to_stage": to_stage}


def run(events) -> ModelView:
    view = ModelView(model_id=MODEL)
    for event_type, data, when in events:
        view = apply(view, event_type, data, when)
    return view


V1, V2 = str(uuid.uuid4()), str(uuid.uuid4())


def test_a_model_without_versions_is_found_without_a_version():
    doc = document(run([("ModelRegistered", registered(), at(0))]))
    assert doc is not None and doc.name == "bert-base-chinese"
    assert (doc.version, doc.status, doc.metrics) == (None, None, {})
    assert doc.tag_terms() == ["language", "language:chinese"]


def test_the_production_version_represents_the_model_else_the_newest():
    events = [("ModelRegistered", registered(), at(0)),
              ("VersionCreated", created(V1, "1.0.0", 1, {"accuracy": 0.9}), at(1)),
              ("VersionCreated", created(V2, "1.1.0", 2, {"accuracy": 0.97}), at(2))]
    doc = document(run(events))
    assert (doc.version, doc.status, doc.metrics) == ("1.1.0", "draft", {"accuracy": 0.97})
    doc = document(run([*events, ("VersionPromoted", stage(V1, "1.0.0", "production"), at(3))]))
    assert (doc.version, doc.status, doc.metrics) == ("1.0.0", "production", {"accuracy": 0.9})
    doc = document(run([*events, ("VersionPromoted", stage(V2, "1.1.0", "staging", "staging"), at(3))]))
    assert (doc.version, doc.status) == ("1.1.0", "staging")


def test_events_in_any_order_give_the_same_document():
    events = [("ModelRegistered", registered(), at(0)),
              ("VersionCreated", created(V1, "1.0.0", 1, {"accuracy": 0.9}, ["stable"]), at(1)),
              ("VersionMetricsRecorded", {"model_id": MODEL, "version_id": V1, "version": "1.0.0",
                                          "metrics": {"accuracy": 0.93, "f1": 0.9}, "source": "evaluation"}, at(2)),
              ("VersionTagged", {"model_id": MODEL, "version_id": V1, "version": "1.0.0", "tags": ["stable", "gold"],
                                 "added": ["gold"], "removed": []}, at(3)),
              ("VersionPromoted", stage(V1, "1.0.0", "staging"), at(4)),
              ("VersionPromoted", stage(V1, "1.0.0", "production"), at(5)),
              ("ModelUpdated", registered(2, description="better words", changed=["description"]), at(6))]
    expected = document(run(events))
    assert expected.metrics == {"accuracy": 0.93, "f1": 0.9}
    assert expected.version_tags == ("stable", "gold") and expected.status == "production"
    assert expected.description == "better words"
    backwards = document(run(list(reversed(events))))
    assert backwards == expected
    twice = document(run([e for e in events for _ in range(2)]))
    assert twice == expected


def test_versions_known_before_their_creation_stay_hidden():
    view = run([("ModelRegistered", registered(), at(0)),
                ("VersionPromoted", stage(V1, "1.0.0", "staging"), at(2))])
    assert document(view).version is None
    view = apply(view, "VersionCreated", created(V1, "1.0.0", 1), at(1))
    assert (document(view).version, document(view).status) == ("1.0.0", "staging")


def test_no_document_before_registration_or_after_deletion():
    view = run([("VersionCreated", created(V1, "1.0.0", 1), at(1))])
    assert document(view) is None
    view = apply(view, "ModelRegistered", registered(), at(0))
    assert document(view).version == "1.0.0"
    deleted = apply(view, "ModelDeleted", {"model_id": MODEL, "name": "x", "deleted_at": at(3).isoformat()}, at(3))
    assert document(deleted) is None
    assert document(apply(deleted, "ModelUpdated", registered(5, changed=["description"]), at(4))) is None


def test_deleted_version_no_longer_represents_the_model():
    view = run([("ModelRegistered", registered(), at(0)),
                ("VersionCreated", created(V1, "1.0.0", 1), at(1)),
                ("VersionCreated", created(V2, "1.1.0", 2), at(2)),
                ("VersionDeleted", {"model_id": MODEL, "version_id": V2, "version": "1.1.0"}, at(3))])
    assert document(view).version == "1.0.0"


def test_an_older_model_revision_does_not_overwrite_a_newer_one():
    view = run([("ModelUpdated", registered(3, name="new-name", changed=["name"]), at(2)),
                ("ModelRegistered", registered(1), at(0))])
    assert document(view).name == "new-name"


def test_archived_after_production_in_the_same_environment_is_archived():
    view = run([("ModelRegistered", registered(), at(0)),
                ("VersionCreated", created(V1, "1.0.0", 1), at(1)),
                ("VersionPromoted", stage(V1, "1.0.0", "production"), at(2)),
                ("VersionArchived", stage(V1, "1.0.0", "archived"), at(3))])
    assert document(view).status == "archived"


def test_projection_round_trips_through_json():
    view = run([("ModelRegistered", registered(), at(0)),
                ("VersionCreated", created(V1, "1.0.0", 1, {"accuracy": 0.5}, ["a"]), at(1)),
                ("VersionPromoted", stage(V1, "1.0.0", "staging"), at(2))])
    assert ModelView.from_json(view.to_json()) == view
    # the hand-written to_json is exactly what dataclasses.asdict gives, and JSON round-trips it
    assert view.to_json() == dataclasses.asdict(view)
    assert ModelView.from_json(orjson.loads(orjson.dumps(view.to_json()))) == view
    assert set(domain.HANDLED) >= {"ModelRegistered", "VersionCreated", "EvaluationCompleted", "VersionPromoted"}
