"""Comparing two versions over HTTP: the latest evaluation of each (evaluated on the spot when there is
none), metric deltas, config and hyperparameter diff, layer-by-layer structure with shapes, stored, and
rendered as an HTML report."""
from __future__ import annotations

import json
import uuid

import pytest

from libs.ml.artifact import load_artifact, save_artifact
from services.evaluation import store
from services.evaluation.domain import evaluation_id_for
from tests.support.kafka import eventually, header

pytestmark = pytest.mark.asyncio

WAIT = 120


def completed(version_id):
    def predicate(record) -> bool:
        return (header(record, "ce_type") == "EvaluationCompleted"
                and json.loads(record.value)["version_id"] == str(version_id))

    return predicate


async def known(system, version_id):
    await eventually(lambda: store.get_version(system.pool, version_id), timeout=WAIT)


async def test_two_widths_of_one_cnn_compare_layer_by_layer(evaluation_system, evaluation_events, weights):
    system, watcher = evaluation_system, evaluation_events
    model = await system.register_model("digits-cnn")
    v1, stored = await system.announce_version(model["model_id"], "1.0.0", weights.good_cnn.artifact)
    # 1.1.0's weights come with VersionCreated only: nothing evaluates it until the comparison needs it
    v2, _ = await system.announce_version(model["model_id"], "1.1.0", weights.weak_cnn.artifact, artifact_in_created=True)
    await watcher.wait_for(completed(v1), timeout=WAIT)
    await known(system, v2)
    assert await store.latest_completed(system.pool, uuid.UUID(model["model_id"]), "1.1.0", v2) is None

    body = {"model_1": {"model_id": model["name"], "version": "1.0.0"},
            "model_2": {"model_id": model["model_id"], "version": "1.1.0"}}
    async with system.api(actor="bob") as api:
        response = await api.post("/internal/models/compare", json=body)
        assert response.status_code == 200, response.text
        result = response.json()
        assert response.headers["location"] == f"/api/v1/comparisons/{result['comparison_id']}"

        one, two = result["model_1"], result["model_2"]
        assert (one["name"], one["version"], two["version"]) == (model["name"], "1.0.0", "1.1.0")
        assert one["evaluation_id"] == str(evaluation_id_for(stored.id))  # the latest evaluation of 1.0.0
        assert one["metrics"]["accuracy"] >= 0.9
        synchronous = (await api.get(f"/internal/evaluations/{two['evaluation_id']}")).json()
        assert (synchronous["trigger"], synchronous["state"], synchronous["requested_by"]) == ("compare", "completed", "bob")
        await watcher.wait_for(completed(v2), timeout=WAIT)  # and it was announced like any evaluation

        structure = {row["name"]: row for row in result["structure"]["layers"]}
        conv = structure["features.0.0"]
        assert conv["status"] == "changed"
        assert conv["model_1"]["parameter_shapes"] == {"weight": [16, 1, 3, 3]}
        assert conv["model_2"]["parameter_shapes"] == {"weight": [4, 1, 3, 3]}
        assert conv["model_1"]["output_shape"] == [1, 16, 8, 8] and conv["model_2"]["output_shape"] == [1, 4, 8, 8]
        assert "weight [16, 1, 3, 3] → [4, 1, 3, 3]" in conv["differences"]
        assert structure["head"]["model_2"]["parameter_shapes"] == {"weight": [10, 16], "bias": [10]}
        assert result["structure"]["only_in_1"] == result["structure"]["only_in_2"] == []
        assert result["structure"]["parameters"]["delta"] < 0

        assert result["parameters"]["config"]["changed"] == {"base_channels": {"model_1": 16, "model_2": 4}}
        assert result["parameters"]["hyperparameters"]["changed"]["epochs"] == {"model_1": 4, "model_2": 1}
        performance = {row["name"]: row for row in result["performance"]["metrics"]}
        assert performance["accuracy"]["delta"] == pytest.approx(two["metrics"]["accuracy"] - one["metrics"]["accuracy"])
        assert performance["accuracy"]["delta"] < 0 and performance["accuracy"]["better"] == "model_1"
        assert performance["parameters"]["better"] == "model_2"
        assert result["differences"]["accuracy"].startswith("-")
        assert set(result["differences"]) == set(one["metrics"]) == set(two["metrics"])
        assert result["notes"] == []  # same data, same structure knowledge

        stored_json = (await api.get(f"/internal/comparisons/{result['comparison_id']}")).json()
        assert stored_json == result
        html = await api.get(f"/internal/comparisons/{result['comparison_id']}", params={"format": "html"})
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert "<svg" in html.text and model["name"] in html.text and "[16, 1, 3, 3]" in html.text
        assert "default-src 'none'" in html.headers["content-security-policy"]

        # a second comparison reuses both evaluations instead of measuring again
        again = (await api.post("/internal/models/compare", json=body)).json()
        assert again["comparison_id"] != result["comparison_id"]
        assert (again["model_1"]["evaluation_id"], again["model_2"]["evaluation_id"]) == (
            one["evaluation_id"], two["evaluation_id"])


async def test_a_cnn_against_an_mlp_in_html_with_escaped_text(evaluation_system, evaluation_events, weights):
    system, watcher = evaluation_system, evaluation_events
    cnn = await system.register_model("cnn")
    mlp = await system.register_model("mlp", model_type="classification")
    loaded = load_artifact(weights.mlp.artifact)
    hostile = {**loaded.extra, "hyperparameters": {**loaded.extra["hyperparameters"], "note": "<script>alert(1)</script> & co"}}
    v1, _ = await system.announce_version(cnn["model_id"], "1.0.0", weights.good_cnn.artifact)
    v2, _ = await system.announce_version(mlp["model_id"], "2.0.0",
                                          save_artifact(loaded.model, loaded.model_type, loaded.config, extra=hostile))
    await watcher.wait_for(completed(v1), timeout=WAIT)
    await watcher.wait_for(completed(v2), timeout=WAIT)

    body = {"model_1": {"model_id": cnn["name"], "version": "1.0.0"},
            "model_2": {"model_id": mlp["name"], "version": "2.0.0"}, "metrics": ["accuracy", "parameters"]}
    async with system.api() as api:
        result = (await api.post("/internal/models/compare", json=body)).json()
        assert list(result["differences"]) == ["accuracy", "parameters"]
        assert set(result["model_1"]["metrics"]) == {"accuracy", "parameters"}
        structure = result["structure"]
        assert "features.0.0" in structure["only_in_1"] and "head" in structure["only_in_1"]
        assert "mlp.0" in structure["only_in_2"]
        mlp_first = next(row for row in structure["layers"] if row["name"] == "mlp.0")
        assert mlp_first["model_1"] is None
        assert mlp_first["model_2"]["parameter_shapes"] == {"weight": [32, 64], "bias": [32]}
        assert mlp_first["model_2"]["output_shape"] == [1, 32]
        assert result["parameters"]["model_type"] == {"model_1": "vision", "model_2": "classification", "same": False}
        assert result["parameters"]["hyperparameters"]["only_in_model_2"]["note"].startswith("<script>")
        assert any("different data" in note for note in result["notes"])  # images vs flat features

        report = await api.post("/internal/models/compare", json=body, headers={"accept": "text/html"})
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    html = report.text
    assert "<svg" in html
    assert f"{cnn['name']} 1.0.0 vs {mlp['name']} 2.0.0" in html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html


async def test_comparison_errors_name_the_field(evaluation_system, evaluation_events, weights):
    system = evaluation_system
    model = await system.register_model("errors")
    empty, _ = await system.announce_version(model["model_id"], "0.1.0", None)  # no weights at all
    await known(system, empty)
    good = {"model_id": model["name"], "version": "0.1.0"}
    async with system.api() as api:
        no_weights = await api.post("/internal/models/compare", json={"model_1": good, "model_2": good})
        assert no_weights.status_code == 422
        assert no_weights.json()["errors"][0]["field"] == "model_1.version"
        no_model = await api.post("/internal/models/compare",
                                  json={"model_1": {"model_id": "nobody-here", "version": "1.0.0"}, "model_2": good})
        assert no_model.status_code == 404
        no_version = await api.post("/internal/models/compare",
                                    json={"model_1": {"model_id": model["name"], "version": "8.8.8"}, "model_2": good})
        assert no_version.status_code == 404
        assert no_version.json()["errors"][0]["field"] == "model_1.version"
        bad_metric = await api.post("/internal/models/compare",
                                    json={"model_1": good, "model_2": good, "metrics": ["accuracy", "vibes"]})
        assert bad_metric.status_code == 422
        assert bad_metric.json()["errors"][0]["field"] == "metrics.1"
        assert (await api.get(f"/internal/comparisons/{uuid.uuid4()}")).status_code == 404
