"""Promotion policy decisions, pure."""
from __future__ import annotations

from services.lifecycle.policy import Decision, ProductionRule, PromotionPolicy, StagingRule, decide

POLICY = PromotionPolicy(staging=StagingRule(min_value=0.9),
                         production=ProductionRule(min_improvement_points=0.5, max_latency_ratio=1.2))
LIVE = {"accuracy": 0.95, "latency_p99_ms": 1.0}


def test_a_good_draft_goes_to_staging_then_production():
    decisions = decide(POLICY, stage="draft", metrics={"accuracy": 0.96, "latency_p99_ms": 1.1},
                       live_version="1.0.0", live_metrics=LIVE)
    assert [(d.to_stage, d.promoted) for d in decisions] == [("staging", True), ("production", True)]
    assert "+1.00 points" in decisions[1].reason and "1.10×" in decisions[1].reason


def test_below_the_staging_bar_stops_there():
    decisions = decide(POLICY, stage="draft", metrics={"accuracy": 0.85}, live_version=None, live_metrics=None)
    assert decisions == [Decision("staging", False, "accuracy 0.85 < 0.9")]


def test_too_small_an_improvement_is_refused_with_the_numbers():
    [decision] = decide(POLICY, stage="staging", metrics={"accuracy": 0.953, "latency_p99_ms": 1.0},
                        live_version="1.0.0", live_metrics=LIVE)
    assert not decision.promoted and "+0.30 points (need ≥ 0.5)" in decision.reason


def test_a_slower_version_is_refused_even_if_more_accurate():
    [decision] = decide(POLICY, stage="staging", metrics={"accuracy": 0.99, "latency_p99_ms": 1.3},
                        live_version="1.0.0", live_metrics=LIVE)
    assert not decision.promoted and "1.30× live (limit 1.2×)" in decision.reason


def test_first_version_goes_live_when_nothing_is():
    [_, decision] = decide(POLICY, stage="draft", metrics={"accuracy": 0.91}, live_version=None, live_metrics=None)
    assert decision.promoted and "nothing is live" in decision.reason


def test_live_version_without_measurements_blocks_promotion():
    [decision] = decide(POLICY, stage="staging", metrics={"accuracy": 0.99}, live_version="1.0.0", live_metrics={})
    assert not decision.promoted and "no measured accuracy" in decision.reason


def test_lower_is_better_metrics_count_improvement_downwards():
    policy = PromotionPolicy(production=ProductionRule(metric="loss", min_improvement_points=1, max_latency_ratio=None))
    [better] = decide(policy, stage="staging", metrics={"loss": 0.10}, live_version="1", live_metrics={"loss": 0.12})
    [worse] = decide(policy, stage="staging", metrics={"loss": 0.13}, live_version="1", live_metrics={"loss": 0.12})
    assert better.promoted and not worse.promoted


def test_disabled_or_unrelated_stages_decide_nothing():
    assert decide(POLICY.model_copy(update={"enabled": False}), stage="draft", metrics={"accuracy": 1.0},
                  live_version=None, live_metrics=None) == []
    assert decide(POLICY, stage="production", metrics={"accuracy": 1.0}, live_version=None, live_metrics=None) == []
