"""End to end with the real version service (a start-up failure fails the test): a version created and its
weights uploaded there are evaluated here, and the measured metrics end up stored on that version."""
from __future__ import annotations

import json

import httpx
import pytest

from tests.support.kafka import eventually, header

pytestmark = pytest.mark.asyncio


async def test_uploaded_weights_are_evaluated_and_the_version_stores_the_metrics(
    evaluation_system, evaluation_events, weights,
):
    system, watcher = evaluation_system, evaluation_events
    assert system.real_versions is not None, f"the version service could not be started: {system.real_versions_error}"
    model = await system.register_model("e2e")
    system.versions.real_models.add(model["model_id"])  # the stand-in passes this model's calls on
    headers = {"x-cairn-internal-token": system.token, "x-cairn-actor": "carol", "x-cairn-role": "editor"}
    async with httpx.AsyncClient(base_url=system.real_versions.url, headers=headers, timeout=60) as versions:
        created = await versions.post(f"/internal/models/{model['name']}/versions",
                                      json={"version": "1.0.0", "metrics": {"accuracy": 0.05}})
        assert created.status_code == 201, created.text
        version_id = created.json()["version_id"]
        uploaded = await versions.put(f"/internal/models/{model['name']}/versions/1.0.0/artifact",
                                      content=weights.good_cnn.artifact,
                                      headers={"content-type": "application/octet-stream"})
        assert uploaded.status_code == 201, uploaded.text

        record = await watcher.wait_for(
            lambda r: header(r, "ce_type") == "EvaluationCompleted" and json.loads(r.value)["version_id"] == version_id,
            timeout=120,
        )
        measured = json.loads(record.value)["metrics"]
        assert measured["accuracy"] >= 0.9

        async def stored():
            version = (await versions.get(f"/internal/models/{model['name']}/versions/1.0.0")).json()
            return version["metrics"].get("accuracy") == measured["accuracy"] and version

        version = await eventually(stored, timeout=30)
    assert {k: version["metrics"][k] for k in measured} == measured  # the self-reported 0.05 was replaced
