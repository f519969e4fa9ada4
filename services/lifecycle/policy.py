"""Promotion policies, pure: given a version's measured metrics, its stage, and the live version's
metrics, decide what to promote and say why in numbers. The lifecycle service applies the decisions
on every EvaluationCompleted and emits each one as PromotionDecided."""
from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

LOWER_IS_BETTER = {"loss", "latency_p50_ms", "latency_p99_ms", "size_bytes", "flops", "parameters", "mae"}


class StagingRule(BaseModel):
    """Promote a draft to staging when ``metric`` reaches ``min_value``."""

    model_config = ConfigDict(extra="forbid")
    metric: str = Field("accuracy", max_length=64)
    min_value: float


class ProductionRule(BaseModel):
    """Promote a staged version to production when it beats the live version's ``metric`` by at least
    ``min_improvement_points`` percentage points (0.5 = +0.005 on a 0..1 metric) and its latency is at
    most ``max_latency_ratio`` times the live one's. With nothing live, the first qualifying version goes live."""

    model_config = ConfigDict(extra="forbid")
    metric: str = Field("accuracy", max_length=64)
    min_improvement_points: float = Field(0.5, ge=0)
    latency_metric: str = Field("latency_p99_ms", max_length=64)
    max_latency_ratio: float | None = Field(1.2, gt=0)


class PromotionPolicy(BaseModel):
    """A model's promotion policy for one environment."""

    model_config = ConfigDict(extra="forbid")
    environment: str = Field("production", max_length=64)
    staging: StagingRule | None = None
    production: ProductionRule | None = None
    enabled: bool = True


@dataclass(frozen=True)
class Decision:
    to_stage: str
    promoted: bool
    reason: str


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def decide(
    policy: PromotionPolicy,
    *,
    stage: str,
    metrics: dict[str, float],
    live_version: str | None,
    live_metrics: dict[str, float] | None,
) -> list[Decision]:
    """What the policy says about a version now at ``stage`` with ``metrics``. Returns the decisions in
    order (a draft may go to staging and then straight on to production)."""
    if not policy.enabled:
        return []
    decisions: list[Decision] = []
    if stage == "draft" and policy.staging is not None:
        rule = policy.staging
        value = metrics.get(rule.metric)
        if value is None:
            return [Decision("staging", False, f"no {rule.metric} was measured")]
        passed = value >= rule.min_value
        decisions.append(Decision("staging", passed, f"{rule.metric} {_fmt(value)} {'≥' if passed else '<'} {_fmt(rule.min_value)}"))
        if not passed:
            return decisions
        stage = "staging"
    if stage == "staging" and policy.production is not None:
        decisions.append(_production(policy.production, metrics, live_version, live_metrics))
    return decisions


def _production(rule: ProductionRule, metrics: dict[str, float], live_version: str | None,
                live_metrics: dict[str, float] | None) -> Decision:
    value = metrics.get(rule.metric)
    if value is None:
        return Decision("production", False, f"no {rule.metric} was measured")
    if live_version is None:
        return Decision("production", True, f"{rule.metric} {_fmt(value)}; nothing is live yet")
    if not live_metrics or rule.metric not in live_metrics:
        return Decision("production", False, f"live version {live_version} has no measured {rule.metric} to compare with")
    sign = -1 if rule.metric in LOWER_IS_BETTER else 1
    gain_points = sign * (value - live_metrics[rule.metric]) * 100
    reasons = [f"{rule.metric} {_fmt(value)} vs live {live_version} {_fmt(live_metrics[rule.metric])}: "
               f"{gain_points:+.2f} points (need ≥ {_fmt(rule.min_improvement_points)})"]
    passed = gain_points >= rule.min_improvement_points - 1e-9
    if rule.max_latency_ratio is not None:
        mine, theirs = metrics.get(rule.latency_metric), live_metrics.get(rule.latency_metric)
        if mine is None or theirs is None or theirs <= 0:
            reasons.append(f"{rule.latency_metric} not measured on both")
            passed = False
        else:
            ratio = mine / theirs
            ok = ratio <= rule.max_latency_ratio + 1e-9
            reasons.append(f"{rule.latency_metric} {_fmt(mine)} = {ratio:.2f}× live (limit {_fmt(rule.max_latency_ratio)}×)")
            passed = passed and ok
    return Decision("production", passed, "; ".join(reasons))
