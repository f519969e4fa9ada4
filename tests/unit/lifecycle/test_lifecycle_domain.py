"""The lifecycle's pure rules: the stage machine, rollout steps and weights, the previous production
version of a history, and whether a rollback target is fit."""
from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from libs.kit.errors import Conflict, ValidationFailed
from services.lifecycle import domain
from services.lifecycle.domain import Deployment, Target

NOW = datetime(2026, 6, 15, 10, 0, tzinfo=timezone.utc)

LEGAL = {
    ("draft", "staging"), ("draft", "archived"), ("draft", "deprecated"),
    ("staging", "production"), ("staging", "archived"), ("staging", "deprecated"),
    ("production", "staging"), ("production", "archived"),
    ("archived", "staging"), ("archived", "deprecated"),
}
ALL_PAIRS = list(itertools.product(domain.STAGES, domain.STAGES))


def test_the_table_is_exactly_the_specified_machine():
    table = {(a, b) for a, targets in domain.TRANSITIONS.items() for b in targets}
    assert table == LEGAL
    assert domain.TRANSITIONS["deprecated"] == ()


@pytest.mark.parametrize("from_stage, to_stage", sorted(LEGAL))
def test_legal_transitions_pass(from_stage, to_stage):
    domain.check_transition(from_stage, to_stage)


@pytest.mark.parametrize("from_stage, to_stage", [p for p in ALL_PAIRS if p not in LEGAL])
def test_every_illegal_transition_is_refused_naming_the_allowed_targets(from_stage, to_stage):
    with pytest.raises(Conflict) as caught:
        domain.check_transition(from_stage, to_stage, version="1.0.0", environment="production")
    error = caught.value
    assert error.status == 409
    assert error.extra["from_stage"] == from_stage
    assert error.extra["to_stage"] == to_stage
    assert error.extra["allowed"] == list(domain.TRANSITIONS[from_stage])
    assert from_stage in error.detail and "1.0.0" in error.detail


def test_archived_to_production_is_only_for_rollbacks():
    with pytest.raises(Conflict) as caught:
        domain.check_transition("archived", "production")
    assert "rollback" in caught.value.detail
    assert "archived" in domain.ROLLBACK_FROM


def test_unknown_stage_is_a_validation_error():
    with pytest.raises(ValidationFailed) as caught:
        domain.check_transition("draft", "live")
    assert caught.value.errors[0].field == "to_stage"


@pytest.mark.parametrize("from_stage, to_stage, kind", [
    ("draft", "staging", "VersionPromoted"), ("archived", "staging", "VersionPromoted"),
    ("staging", "production", "VersionPromoted"), ("production", "staging", "VersionDemoted"),
    ("production", "archived", "VersionArchived"), ("staging", "deprecated", "VersionDeprecated"),
])
def test_each_move_has_its_event(from_stage, to_stage, kind):
    assert domain.event_kind(from_stage, to_stage) == kind


def test_unknown_environment_names_the_field():
    with pytest.raises(ValidationFailed) as caught:
        domain.check_environment("moon", ["staging", "production"])
    assert caught.value.errors[0].field == "environment"
    assert domain.check_environment("staging", ["staging", "production"]) == "staging"


@pytest.mark.parametrize("names", [[], ["a", "a"], ["Bad Name"]])
def test_environment_settings_are_checked(names):
    with pytest.raises(ValueError):
        domain.validate_environments(names)


# -- rollouts -------------------------------------------------------------------------------------

@pytest.mark.parametrize("steps", [[10, 50, 100], [100], [1, 2, 3, 100], [50, 100]])
def test_valid_steps(steps):
    assert domain.steps_problem(steps) is None
    assert domain.validate_steps(steps) == steps


@pytest.mark.parametrize("steps, problem", [
    ([], "at least one"),
    ([10, 50], "last step must be 100"),
    ([50, 10, 100], "strictly increasing"),
    ([10, 10, 100], "strictly increasing"),
    ([0, 100], "from 1 to 100"),
    ([10, 150], "from 1 to 100"),
    ([-5, 100], "from 1 to 100"),
])
def test_invalid_steps_are_refused_naming_steps(steps, problem):
    assert problem in domain.steps_problem(steps)
    with pytest.raises(ValidationFailed) as caught:
        domain.validate_steps(steps)
    assert caught.value.errors[0].field == "steps"


@pytest.mark.parametrize("pct, expected", [
    (10, {"1.0": 90, "2.0": 10}), (50, {"1.0": 50, "2.0": 50}), (100, {"2.0": 100}),
])
def test_weights_split_traffic_and_sum_to_100(pct, expected):
    weights = domain.weights("1.0", "2.0", pct)
    assert weights == expected
    assert sum(weights.values()) == 100


def test_weights_without_a_stable_version_send_everything_to_the_candidate():
    assert domain.weights(None, "2.0", 10) == {"2.0": 100}


def _rollout(steps=(10, 50, 100), interval=None) -> domain.Rollout:
    return domain.start_rollout(
        rollout_id=uuid.uuid4(), model_id=uuid.uuid4(), environment="production", kind="promotion",
        stable_version_id=uuid.uuid4(), stable_version="1.0", candidate_version_id=uuid.uuid4(),
        candidate_version="2.0", steps=list(steps), step_interval_s=interval, reason="", actor="alice",
        command_id=None, now=NOW,
    )


def test_a_rollout_walks_its_steps_then_completes():
    r = _rollout()
    assert (r.status, r.step, r.weights()) == ("started", 1, {"1.0": 90, "2.0": 10})
    r = domain.advance(r, now=NOW)
    assert (r.status, r.step, r.weights()) == ("progressing", 2, {"1.0": 50, "2.0": 50})
    r = domain.advance(r, now=NOW)
    assert (r.status, r.step, r.weights()) == ("completed", 3, {"2.0": 100})
    assert r.finished_at == NOW and not r.active
    with pytest.raises(Conflict):
        domain.advance(r, now=NOW)


def test_a_single_full_step_is_complete_at_once():
    assert _rollout(steps=[100]).reached_full


def test_timed_rollouts_schedule_their_next_step():
    r = _rollout(interval=30)
    assert r.next_step_at == NOW + timedelta(seconds=30)
    later = NOW + timedelta(seconds=31)
    assert domain.advance(r, now=later).next_step_at == later + timedelta(seconds=30)
    assert _rollout().next_step_at is None


def test_an_aborted_rollout_sends_everything_back_to_stable():
    r = domain.abort(domain.advance(_rollout(), now=NOW), now=NOW)
    assert r.status == "aborted" and r.weights() == {"1.0": 100} and r.next_step_at is None
    with pytest.raises(Conflict):
        domain.advance(r, now=NOW)


# -- history and rollbacks ------------------------------------------------------------------------

def _history(*versions: tuple[uuid.UUID, str]) -> list[Deployment]:
    """Newest first."""
    return [Deployment(vid, name, "production", NOW - timedelta(hours=i), None if i == 0 else NOW, "publish", "alice")
            for i, (vid, name) in enumerate(versions)]


def test_previous_production_is_the_most_recent_earlier_live_version():
    v1, v2, v3 = (uuid.uuid4(), "1"), (uuid.uuid4(), "2"), (uuid.uuid4(), "3")
    history = _history(v3, v2, v1)
    assert domain.previous_production(history, live_version_id=v3[0]).version == "2"


def test_previous_production_skips_deleted_or_deprecated_and_the_live_one():
    v1, v2, v3 = (uuid.uuid4(), "1"), (uuid.uuid4(), "2"), (uuid.uuid4(), "3")
    history = _history(v3, v2, v3, v1)  # 3 was live before 2 too
    assert domain.previous_production(history, live_version_id=v3[0], unusable={v2[0]}).version == "1"
    assert domain.previous_production(history, live_version_id=v3[0], unusable={v2[0], v1[0]}) is None


def test_previous_production_when_nothing_is_live_is_the_last_live_one():
    v1, v2 = (uuid.uuid4(), "1"), (uuid.uuid4(), "2")
    assert domain.previous_production(_history(v2, v1), live_version_id=None).version == "2"
    assert domain.previous_production([], live_version_id=None) is None


def _target(**changes) -> Target:
    base = dict(version_id=uuid.uuid4(), version="1.0", stage="archived", deleted=False,
                artifact_sha256="a" * 64, artifact_size=10)
    base.update(changes)
    return Target(**base)


@pytest.mark.parametrize("target, live, artifact, reason", [
    (None, None, None, "no previous production version"),
    (_target(deleted=True), None, None, "was deleted"),
    (_target(stage="deprecated"), None, None, "is deprecated"),
    (_target(stage="draft"), None, None, "must be staging or archived"),
    (_target(artifact_sha256=None), None, None, "has no stored artifact"),
    (_target(), None, "corrupted", "failed its sha256 check"),
    (_target(), None, "missing", "missing from the object store"),
])
def test_unfit_rollback_targets_say_why(target, live, artifact, reason):
    got = domain.rollback_unfit_reason(target, requested=None, live_version_id=live, environment="production",
                                       artifact=artifact)
    assert got is not None and reason in got


def test_the_live_version_is_not_a_rollback_target():
    target = _target(stage="production")
    reason = domain.rollback_unfit_reason(target, requested="1.0", live_version_id=target.version_id,
                                          environment="production")
    assert "already live" in reason


def test_an_unknown_requested_version_is_named():
    assert domain.rollback_unfit_reason(None, requested="9.9", live_version_id=None,
                                        environment="production") == "version 9.9 not found"


@pytest.mark.parametrize("stage", ["staging", "archived"])
def test_fit_rollback_targets(stage):
    target = _target(stage=stage)
    assert domain.rollback_unfit_reason(target, requested=None, live_version_id=uuid.uuid4(),
                                        environment="production") is None
    assert domain.rollback_unfit_reason(target, requested=None, live_version_id=uuid.uuid4(),
                                        environment="production", artifact="ok") is None
