"""The web dashboards in a real browser: headless Chromium (Debian's package, no download) against the
stack as processes. A model is registered, trained twice (the second run watched live in the browser),
staged, published and aliased; then each page is loaded, signed in with the key, checked on its DOM,
and saved as a screenshot. /docs is checked to make no request off this machine.

Screenshots go to $CAIRN_TEST_ARTIFACTS/dashboards (default: <tmp>/cairn-test-artifacts/dashboards)."""
from __future__ import annotations

import json
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.browser import Page, chromium
from tests.support.kafka import eventually

pytestmark = [pytest.mark.e2e]

DIGITS_VISION = {"image_size": 8, "image_channels": 1, "num_classes": 10}
LIVE_EPOCHS = 5


def artifact_dir() -> Path:
    root = Path(os.environ.get("CAIRN_TEST_ARTIFACTS") or Path(tempfile.gettempdir()) / "cairn-test-artifacts")
    path = root / "dashboards"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Seeded:
    model_id: str
    name: str
    first: str  # trained version, published to production
    manual: str  # pushed by hand with metrics
    job_id: str | None = None  # the second training, watched live
    second: str | None = None


async def finished(api: httpx.AsyncClient, job_id: str) -> dict:
    async def done():
        job = (await api.get(f"/api/v1/training-jobs/{job_id}")).json()
        return job if job.get("state") in ("succeeded", "failed", "cancelled") else None

    job = await eventually(done, timeout=300, interval=0.5)
    assert job["state"] == "succeeded", job
    return job


async def evaluated(api: httpx.AsyncClient, model: str, version: str) -> dict:
    async def completed():
        response = await api.get(f"/api/v1/models/{model}/versions/{version}/evaluations")
        done = [e for e in response.json().get("evaluations", []) if e["state"] == "completed"] \
            if response.status_code == 200 else []
        return done[0] if done else None

    return await eventually(completed, timeout=180, interval=0.5)


async def start_training(api: httpx.AsyncClient, model: str, epochs: int, learning_rate: float) -> str:
    response = await api.post(f"/api/v1/models/{model}/training-jobs", json={
        "dataset": "digits", "pool": "cpu", "bump": "minor",
        "hyperparameters": {"epochs": epochs, "batch_size": 32, "seed": 7, "learning_rate": learning_rate}})
    assert response.status_code == 201, response.text
    return response.json()["job_id"]


async def seed(api: httpx.AsyncClient) -> Seeded:
    """A model with a trained version live in production (via staging), an alias, and a hand-made version."""
    name = f"dash-{uuid.uuid4().hex[:8]}"
    registered = await api.post("/api/v1/models", json={
        "name": name, "type": "vision", "framework": "pytorch", "task": "image-classification",
        "description": "Digits CNN for the dashboard test", "metadata": DIGITS_VISION, "tags": {"team": "vision"}})
    assert registered.status_code == 201, registered.text
    model = registered.json()["model_id"]
    job = await finished(api, await start_training(api, model, epochs=3, learning_rate=0.003))
    first = job["result"]["version"]
    for step in ({"environment": "production", "to_stage": "staging", "reason": "candidate"},):
        moved = await api.post(f"/api/v1/models/{model}/versions/{first}/transitions", json=step)
        assert moved.status_code == 200, moved.text
    published = await api.post(f"/api/v1/models/{model}/versions/{first}/publish", json={"reason": "first release"})
    assert published.status_code == 200, published.text
    alias = await api.put(f"/api/v1/models/{model}/aliases/champion", json={"version": first})
    assert alias.status_code == 200, alias.text
    manual = await api.post(f"/api/v1/models/{model}/versions", json={
        "bump": "patch", "change_log": "hand-tuned thresholds", "metrics": {"accuracy": 0.5}, "tags": ["experimental"]})
    assert manual.status_code == 201, manual.text
    return Seeded(model, name, first, manual.json()["version"])


async def sign_in(page: Page, gateway: str, token: str) -> None:
    await page.goto(f"{gateway}/")
    assert await page.evaluate("location.pathname") == "/ui/"  # / redirects to the dashboard
    await page.wait_for("!document.getElementById('login').hidden")
    await page.evaluate(f"document.getElementById('api-key').value = {json.dumps(token)}")
    await page.evaluate("document.getElementById('login-form').requestSubmit()")
    await page.wait_for("!document.getElementById('main').hidden && document.getElementById('who').textContent")


async def show(page: Page, route: str, ready: str, timeout: float = 60) -> None:
    await page.evaluate(f"location.hash = {json.dumps(route)}")
    try:
        await page.wait_for(ready, timeout=timeout)
    except TimeoutError as error:  # say what the page shows instead
        shown = await page.evaluate("document.getElementById('main').innerText")
        raise TimeoutError(f"{error}\npage shows: {shown[:2000]}") from None


def count(selector: str) -> str:
    return f"document.querySelectorAll({json.dumps(selector)}).length"


def text(selector: str) -> str:
    return f"((document.querySelector({json.dumps(selector)}) || {{}}).textContent || '')"


def assert_clean(page: Page) -> None:
    assert not page.foreign_requests(), page.foreign_requests()
    assert not page.exceptions, page.exceptions
    assert not page.console_errors, page.console_errors  # a CSP violation would be one


@pytest.fixture(scope="module")
async def seeded(stack) -> Seeded:
    async with stack.client() as api:
        return await seed(api)


async def test_dashboards_in_a_real_browser(stack, seeded):
    shots = artifact_dir()
    async with stack.client() as api, chromium(shots / "chromium.log") as browser:
        page = await browser.new_page()
        await sign_in(page, stack.gateway, stack.token)
        assert stack.token not in await page.evaluate("location.href")
        assert await page.evaluate("sessionStorage.getItem('cairn.apiKey')") == stack.token
        assert await page.evaluate("localStorage.length") == 0

        # overview: counts, the new model among the recent ones, what is live, recent audit events
        await page.wait_for(f"{text('#recent-models')}.includes({json.dumps(seeded.name)})")
        await page.wait_for(f"{text('#live-versions')}.includes({json.dumps(seeded.name)})")
        assert int(await page.evaluate(f"{text('#models-total .stat-value')}.replace(/,/g, '')")) >= 1
        assert await page.evaluate(count("#recent-audit tbody tr")) > 0
        await page.screenshot(shots / "overview.png")

        # a second training run, watched live: the curves grow to one point per epoch
        seeded.job_id = await start_training(api, seeded.model_id, epochs=LIVE_EPOCHS, learning_rate=0.003)
        await show(page, f"#/jobs/{seeded.job_id}", "document.getElementById('stream-status')")
        await page.wait_for("document.getElementById('stream-status').dataset.done === 'true'", timeout=300)
        assert "succeeded" in await page.evaluate(text("#job-state"))
        assert await page.evaluate(count("#loss-chart .series-0 circle.pt")) == LIVE_EPOCHS  # train loss
        assert await page.evaluate(count("#loss-chart .series-1 circle.pt")) == LIVE_EPOCHS  # validation loss
        assert await page.evaluate(count("#accuracy-chart .series-0 circle.pt")) == LIVE_EPOCHS
        assert await page.evaluate(count("#epochs-table tbody tr")) == LIVE_EPOCHS
        await page.wait_for(f"{text('#job-result')}.includes('Produced version')")
        job = await finished(api, seeded.job_id)
        seeded.second = job["result"]["version"]
        assert seeded.second in await page.evaluate(text("#job-result"))
        await page.screenshot(shots / "training-job.png")

        # model page: metadata, what is live, alias, the version timeline, deployments, jobs; the metric
        # chart once the evaluation service has recorded accuracy on both trained versions
        async def all_measured():
            listed = (await api.get(f"/api/v1/models/{seeded.model_id}/versions")).json()["versions"]
            return listed if all("accuracy" in v["metrics"] for v in listed) else None

        versions = [v["version"] for v in await eventually(all_measured, timeout=180, interval=0.5)]
        assert len(versions) == 3
        await show(page, f"#/models/{seeded.name}", "document.getElementById('timeline')")
        assert await page.evaluate("[...document.querySelectorAll('#timeline .tl-item')].map(e => e.dataset.version)") == versions
        assert seeded.first in await page.evaluate(text("#live [data-environment='production'] .env-live"))
        assert f"champion → {seeded.first}" in await page.evaluate(text("#aliases"))
        assert await page.evaluate(count("#deployments tbody tr")) >= 1
        assert await page.evaluate(count("#model-jobs tbody tr")) == 2
        assert await page.evaluate(count("#metric-trend circle.pt")) == 3  # accuracy of each version
        assert "hand-tuned thresholds" in await page.evaluate(text(f"#timeline [data-version='{seeded.manual}']"))
        # the two runs side by side: epochs is the setting that differs, one of them is marked best
        assert await page.evaluate(count("#experiments tbody tr")) == 2
        headers = await page.evaluate("[...document.querySelectorAll('#experiments th')].map(e => e.textContent)")
        assert headers[:2] == ["Run", "epochs"], headers
        assert await page.evaluate(count("#experiments .badge-best")) == 1
        await page.screenshot(shots / "model.png")

        # the overview compares every model on a metric, from the search index (once it has caught up)
        async def indexed():
            found = await api.get("/api/v1/models/search", params={"q": seeded.name, "metric": "accuracy>=0"})
            return found.status_code == 200 and any(m["name"] == seeded.name for m in found.json()["models"])

        await eventually(indexed, timeout=120, interval=0.5)
        await show(page, "#/", f"{text('#leaderboard')}.includes({json.dumps(seeded.name + '@')})")
        await page.screenshot(shots / "overview-leaderboard.png")

        # compare the two trained versions once the evaluation service has measured both
        for version in (seeded.first, seeded.second):
            await evaluated(api, seeded.model_id, version)
        expected = (await api.post("/api/v1/models/compare", json={
            "model_1": {"model_id": seeded.model_id, "version": seeded.first},
            "model_2": {"model_id": seeded.model_id, "version": seeded.second}})).json()
        numeric = [m["name"] for m in expected["performance"]["metrics"]
                   if isinstance(m["model_1"], (int, float)) and isinstance(m["model_2"], (int, float))]
        # picked on the model page's timeline: the oldest trained version first, then the newest
        await show(page, f"#/models/{seeded.name}", "document.getElementById('timeline')")
        await page.evaluate(f"document.querySelector('#timeline [data-version=\"{seeded.first}\"] input').click()")
        await page.evaluate(f"document.querySelector('#timeline [data-version=\"{seeded.second}\"] input').click()")
        await page.evaluate("document.getElementById('compare-selected').click()")
        await page.wait_for("document.getElementById('metric-table') || document.querySelector('#compare-result .error-box')")
        assert await page.evaluate("location.hash") == (
            f"#/compare?m1={seeded.name}&v1={seeded.first}&m2={seeded.name}&v2={seeded.second}")
        assert await page.evaluate("[...document.querySelectorAll('.bar-chart .metric-row')].map(e => e.dataset.metric)") == numeric
        assert "accuracy" in numeric
        assert await page.evaluate(count(".bar-chart rect.bar-a")) == len(numeric)
        assert await page.evaluate(count(".bar-chart rect.bar-b")) == len(numeric)
        await page.screenshot(shots / "compare.png")

        # audit: this model's events, then the hash chain check
        await show(page, f"#/audit?model_id={seeded.model_id}", count("#audit-table .audit-row"))
        kinds = await page.evaluate("[...document.querySelectorAll('#audit-table .audit-row')].map(e => e.dataset.eventType)")
        assert {"ModelRegistered", "VersionCreated", "VersionPromoted", "AliasSet"} <= set(kinds), kinds
        await page.evaluate("document.getElementById('verify-chain').click()")
        await page.wait_for("document.querySelector('#verify-result [data-ok]')")
        assert await page.evaluate("document.querySelector('#verify-result [data-ok]').dataset.ok") == "true"
        await page.screenshot(shots / "audit.png")
        assert_clean(page)

        # search finds the model by a typo-free part of its name
        await show(page, f"#/models?q={seeded.name}", f"{text('#models-table')}.includes({json.dumps(seeded.name)})")
        await page.screenshot(shots / "models.png")
        assert_clean(page)


async def test_a_refused_key_keeps_the_sign_in_form(stack):
    async with chromium() as browser:
        page = await browser.new_page()
        await sign_in_attempt(page, stack.gateway, "cairn_not-a-real-key")
        await page.wait_for(f"{text('#login-error')}.includes('not accepted')")
        assert await page.evaluate("document.getElementById('main').hidden")
        assert await page.evaluate("sessionStorage.getItem('cairn.apiKey')") is None
        assert_clean_except_refusal(page)


async def sign_in_attempt(page: Page, gateway: str, token: str) -> None:
    await page.goto(f"{gateway}/ui/")
    await page.wait_for("!document.getElementById('login').hidden")
    await page.evaluate(f"document.getElementById('api-key').value = {json.dumps(token)}")
    await page.evaluate("document.getElementById('login-form').requestSubmit()")


def assert_clean_except_refusal(page: Page) -> None:
    assert not page.foreign_requests() and not page.exceptions
    assert all("401" in error for error in page.console_errors), page.console_errors  # the refused /me only


async def test_docs_load_from_this_machine_only(stack):
    shots = artifact_dir()
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{stack.gateway}/docs")
        await page.wait_for(count(".swagger-ui .opblock") + " > 20", timeout=60)
        assert "Cairn API" in await page.evaluate(text(".swagger-ui .title"))
        await page.screenshot(shots / "docs.png")
        fetched = [url for url in page.requests if not url.startswith(("data:", "blob:"))]
        assert fetched and all(url.startswith(stack.gateway) for url in fetched), fetched
        assert_clean(page)


async def test_html_from_the_gateway_carries_the_security_headers(stack, seeded):
    async with stack.client() as api:
        for path in ("/ui/", "/docs"):
            response = await api.get(path)
            assert response.status_code == 200
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
        # the evaluation service's HTML report, forwarded by the gateway
        await evaluated(api, seeded.model_id, seeded.first)
        report = await api.post("/api/v1/models/compare", params={"format": "html"}, json={
            "model_1": {"model_id": seeded.model_id, "version": seeded.first},
            "model_2": {"model_id": seeded.model_id, "version": seeded.first}})
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
        assert "content-security-policy" in report.headers
        assert report.headers["x-content-type-options"] == "nosniff"
        assert report.headers["x-frame-options"] == "DENY"


async def test_a_viewer_sees_models_but_not_the_audit_log(stack, seeded):
    async with stack.client() as api:
        created = await api.post("/api/v1/keys", json={"name": f"viewer-{uuid.uuid4().hex[:6]}", "role": "viewer"})
        assert created.status_code == 201, created.text
    async with chromium() as browser:
        page = await browser.new_page()
        await sign_in(page, stack.gateway, created.json()["token"])
        assert "viewer" in await page.evaluate(text("#who"))
        await page.wait_for(f"{text('#main')}.includes('cannot read the audit log')")
        await page.wait_for(f"{text('#recent-models')}.includes({json.dumps(seeded.name)})")
        await show(page, "#/audit", "document.querySelector('#main .error-box')")
        assert "403" in await page.evaluate(text("#main .error-box"))
        await show(page, f"#/models/{seeded.name}", "document.getElementById('timeline')")
        assert not page.foreign_requests() and not page.exceptions


async def test_a_running_job_is_cancelled_from_its_page(stack, seeded):
    async with stack.client() as api:
        job_id = await start_training(api, seeded.model_id, epochs=500, learning_rate=0.003)
        async with chromium() as browser:
            page = await browser.new_page()
            await sign_in(page, stack.gateway, stack.token)
            await show(page, f"#/jobs/{job_id}", "document.getElementById('cancel-form')?.hidden === false")
            await page.evaluate("document.querySelector('#cancel-form input').value = 'wrong dataset'")
            await page.evaluate("document.getElementById('cancel-form').requestSubmit()")
            await page.wait_for("document.getElementById('stream-status').dataset.done === 'true'", timeout=120)
            assert "cancelled" in await page.evaluate(text("#job-state"))
            assert "Cancelled: wrong dataset" in await page.evaluate(text("#job-result"))
            assert await page.evaluate("document.getElementById('cancel-form').hidden")
            await page.screenshot(artifact_dir() / "training-job-cancelled.png")
            assert not page.exceptions and not page.console_errors, (page.exceptions, page.console_errors)
        job = (await api.get(f"/api/v1/training-jobs/{job_id}")).json()
        assert (job["state"], job["cancel_reason"]) == ("cancelled", "wrong dataset")
