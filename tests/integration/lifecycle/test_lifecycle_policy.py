"""Promotion policies: set over HTTP, applied on EvaluationCompleted from Kafka, each decision a
PromotionDecided with its reason. (The end-to-end test drives the same path with real training and a
real evaluation service.)"""
from __future__ import annotations

import json
import uuid

import pytest

from libs.events import topics
from libs.events.evaluation import EvaluationCompleted
from tests.support.kafka import TopicWatcher, eventually, header

pytestmark = pytest.mark.asyncio

POLICY = {
    "environment": "production",
    "staging": {"metric": "accuracy", "min_value": 0.9},
    "production": {"metric": "accuracy", "min_improvement_points": 0.5, "latency_metric": "latency_p99_ms",
                   "max_latency_ratio": 1.2},
}


def _decision(record, model: str, version: str, to_stage: str) -> bool:
    if header(record, "ce_type") != "PromotionDecided":
        return False
    body = json.loads(record.value)
    return (body["model_id"], body["version"], body["to_stage"]) == (model, version, to_stage)


async def _evaluated(lc, v, accuracy: float, p99: float) -> EvaluationCompleted:
    event = EvaluationCompleted(
        model_id=v.model_id, version=v.version, version_id=v.version_id, evaluation_id=uuid.uuid4(),
        dataset="digits", dataset_hash="h", samples=360, device="cpu",
        metrics={"accuracy": accuracy, "latency_p99_ms": p99, "loss": 0.1},
    )
    await lc.send(event, actor="evaluation")
    return event


async def _stages(lc, model: str) -> dict[str, str]:
    async with lc.api() as api:
        body = (await api.get(f"/internal/models/{model}/stages", params={"environment": "production"})).json()
    return {s["version"]: s["stage"] for s in body["stages"]}


async def test_the_policy_is_validated_and_read_back(lifecycle):
    lc = lifecycle
    model = (await lc.create_model())["model_id"]
    async with lc.api("alice") as api:
        assert (await api.get(f"/internal/models/{model}/promotion-policy")).status_code == 404
        bad = await api.put(f"/internal/models/{model}/promotion-policy", json={**POLICY, "environment": "moon"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "environment"
        empty = await api.put(f"/internal/models/{model}/promotion-policy", json={"environment": "production"})
        assert empty.status_code == 422
        unknown = await api.put(f"/internal/models/{model}/promotion-policy", json={**POLICY, "surprise": 1})
        assert unknown.status_code == 422
        async with TopicWatcher(lc.kafka_bootstrap, topics.LIFECYCLE) as watcher:
            saved = await api.put(f"/internal/models/{model}/promotion-policy", json=POLICY)
            assert saved.status_code == 200, saved.text
            event = await watcher.wait_for(lambda r: header(r, "ce_type") == "PromotionPolicySet"
                                           and r.key == model.encode())
        assert header(event, "ce_actor") == "alice"
        assert json.loads(event.value)["policy"]["staging"] == {"metric": "accuracy", "min_value": 0.9}
        got = (await api.get(f"/internal/models/{model}/promotion-policy")).json()
        assert got["policy"]["production"]["max_latency_ratio"] == 1.2


async def test_the_policy_promotes_a_better_version_and_refuses_a_worse_one_with_its_reason(lifecycle):
    lc = lifecycle
    model = (await lc.create_model())["model_id"]
    async with lc.api() as api:
        assert (await api.put(f"/internal/models/{model}/promotion-policy", json=POLICY)).status_code == 200
    v1 = await lc.create_version(model, "1.0.0")
    v2 = await lc.create_version(model, "1.1.0")
    v3 = await lc.create_version(model, "1.2.0")
    v4 = await lc.create_version(model, "1.3.0")
    async with TopicWatcher(lc.kafka_bootstrap, topics.LIFECYCLE) as watcher:
        # the first good version: staging (0.95 ≥ 0.9), then production (nothing is live yet)
        await _evaluated(lc, v1, accuracy=0.95, p99=1.0)
        staged = await watcher.wait_for(lambda r: _decision(r, model, "1.0.0", "staging"))
        live = await watcher.wait_for(lambda r: _decision(r, model, "1.0.0", "production"))
        assert json.loads(staged.value)["decision"] == "promoted"
        assert json.loads(live.value)["decision"] == "promoted"
        await watcher.wait_for(lambda r: header(r, "ce_type") == "VersionPromoted"
                               and json.loads(r.value).get("version") == "1.0.0"
                               and json.loads(r.value)["to_stage"] == "production")

        # barely better (+0.1 points < 0.5): staged, but production refused, with the numbers
        await _evaluated(lc, v2, accuracy=0.951, p99=1.0)
        refused = json.loads((await watcher.wait_for(lambda r: _decision(r, model, "1.1.0", "production"))).value)
        assert refused["decision"] == "refused"
        assert "+0.10 points (need ≥ 0.5)" in refused["reason"], refused["reason"]

        # better but too slow (1.5× the live p99): refused
        await _evaluated(lc, v3, accuracy=0.99, p99=1.5)
        slow = json.loads((await watcher.wait_for(lambda r: _decision(r, model, "1.2.0", "production"))).value)
        assert slow["decision"] == "refused" and "1.50× live (limit 1.2×)" in slow["reason"], slow["reason"]

        # poor: not even staging
        await _evaluated(lc, v4, accuracy=0.5, p99=0.5)
        poor = json.loads((await watcher.wait_for(lambda r: _decision(r, model, "1.3.0", "staging"))).value)
        assert poor["decision"] == "refused" and poor["reason"] == "accuracy 0.5 < 0.9"

        # 1.1.0 re-measured better (+1.5 points, same latency): it goes live, replacing 1.0.0
        await _evaluated(lc, v2, accuracy=0.965, p99=1.1)
        promoted = json.loads((await watcher.wait_for(
            lambda r: _decision(r, model, "1.1.0", "production") and b'"promoted"' in r.value)).value)
        assert "+1.50 points" in promoted["reason"]
        went_live = await watcher.wait_for(lambda r: header(r, "ce_type") == "VersionPromoted"
                                           and json.loads(r.value).get("version") == "1.1.0"
                                           and json.loads(r.value)["to_stage"] == "production")
    assert json.loads(went_live.value)["replaced_version"] == "1.0.0"
    assert json.loads(went_live.value)["reason"].startswith("promotion policy: accuracy 0.965")
    assert await _stages(lc, model) == {"1.0.0": "archived", "1.1.0": "production", "1.2.0": "staging",
                                        "1.3.0": "draft"}
    async with lc.api() as api:
        assert (await api.get(f"/internal/models/{model}/production")).json()["version"] == "1.1.0"


async def test_without_a_policy_an_evaluation_moves_nothing(lifecycle):
    lc = lifecycle
    model = (await lc.create_model())["model_id"]
    v1 = await lc.create_version(model, "1.0.0")
    event = await _evaluated(lc, v1, accuracy=0.99, p99=0.1)

    async def recorded():
        return await lc.pool.fetchval("SELECT count(*) FROM lifecycle.evaluations WHERE evaluation_id = $1",
                                      event.evaluation_id) == 1

    await eventually(recorded)
    assert await _stages(lc, model) == {"1.0.0": "draft"}
