"""Model grants on the routes about one resource of one model whose path does not name the model: a
training job (get, cancel, its live events), an evaluation, a stored comparison, and a compare request
(its models are in the body). Through a real gateway, the real training scheduler and evaluation service,
the registry and the audit service, on the session's real Postgres, Kafka-protocol broker and Redis.

A key whose role falls short needs the route's level (read; write to cancel) on the resource's model, and
on every model of a comparison. A resource that does not exist and one on a model the key cannot read get
the same 403 (the answer does not tell whether it exists); a role that reads the area still gets 404."""
from __future__ import annotations

import shutil
import uuid
from datetime import datetime, timezone

import httpx
import pytest

from services.evaluation import domain as evaluation_domain
from services.evaluation import store as evaluation_store
from services.evaluation.app import create_app as create_evaluation
from services.evaluation.settings import EvaluationSettings
from services.gateway import handlers as gateway_handlers
from services.gateway.app import create_app as create_gateway
from services.gateway.settings import GatewaySettings
from services.training_scheduler.app import create_app as create_scheduler
from services.training_scheduler.settings import TrainingSchedulerSettings
from tests.conftest import scratch_dir
from tests.support.kafka import eventually
from tests.support.servers import free_port, serve

pytestmark = pytest.mark.asyncio
#: Refusals are recorded up to 30 per client address per minute: this module calls from an address of its own.
ADDRESS = "127.0.0.5"
DIGITS_VISION = {"image_size": 8, "image_channels": 1, "num_classes": 10}


def _uid() -> str:
    return uuid.uuid4().hex[:10]


class Stack:
    def __init__(self, gateway, evaluation, pool) -> None:
        self.gateway, self.evaluation, self.pool = gateway, evaluation, pool
        self.jobs: list[str] = []
        self.admin_token = ""

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.gateway.url, headers=headers, timeout=60,
                                 transport=httpx.AsyncHTTPTransport(local_address=ADDRESS))

    @property
    def admin(self) -> httpx.AsyncClient:
        return self.client(self.admin_token)

    async def key(self, role: str, *, team: str | None = None) -> tuple[str, str]:
        name = f"rg-{role}-{_uid()}"
        new = await gateway_handlers.create_key(self.pool, name=name, role=role, created_by="tests", team=team)
        return name, new.token

    async def model(self) -> dict:
        async with self.admin as admin:
            response = await admin.post("/api/v1/models", json={
                "name": f"rg-{_uid()}", "type": "vision", "framework": "pytorch", "metadata": DIGITS_VISION})
        assert response.status_code == 201, response.text
        return response.json()

    async def job(self, model: dict) -> dict:
        async with self.admin as admin:
            response = await admin.post(f"/api/v1/models/{model['model_id']}/training-jobs",
                                        json={"dataset": "digits", "hyperparameters": {"epochs": 1}})
        assert response.status_code == 201, response.text
        self.jobs.append(response.json()["job_id"])
        return response.json()

    async def grant(self, model: dict, principal: str, level: str) -> None:
        async with self.admin as admin:
            response = await admin.post(f"/api/v1/models/{model['model_id']}/permissions",
                                        json={"principal": principal, "permission": level})
        assert response.status_code == 201, response.text

    async def revoke(self, model: dict, principal: str, level: str) -> None:
        async with self.admin as admin:
            response = await admin.delete(f"/api/v1/models/{model['model_id']}/permissions/{principal}/{level}")
        assert response.status_code in (200, 204), response.text

    async def evaluation_of(self, model: dict) -> str:
        """An evaluation record of the model, as the evaluation service keeps it (leased to nobody here, so
        its worker leaves it alone)."""
        evaluation_id = uuid.uuid4()
        run = await evaluation_store.insert_run(
            self.evaluation.app.state.runtime.pool, evaluation_id=evaluation_id, model_id=uuid.UUID(model["model_id"]),
            version="1.0.0", version_id=None, trigger="requested", trigger_event_id=None, dataset="digits",
            dataset_seed=0, priority=0, actor="tests", traceparent=None, now=datetime.now(timezone.utc),
            lease_owner="resource-grants-tests", lease_s=3600)
        assert run is not None
        return str(evaluation_id)

    async def comparison_of(self, one: dict, two: dict) -> str:
        """A stored comparison of one version of each model, assembled by the evaluation service's own code."""
        def side(model: dict, accuracy: float) -> evaluation_domain.Side:
            return evaluation_domain.Side(
                model_id=uuid.UUID(model["model_id"]), model_name=model["name"], version="1.0.0", version_id=None,
                evaluation_id=uuid.uuid4(), evaluated_at=datetime.now(timezone.utc), model_type="vision", config={},
                hyperparameters={}, metrics={"accuracy": accuracy}, structure=None, dataset="digits", dataset_seed=0,
                dataset_hash="h")

        comparison_id, now = uuid.uuid4(), datetime.now(timezone.utc)
        result, report = evaluation_domain.assemble_comparison(comparison_id, side(one, 0.9), side(two, 0.8),
                                                               wanted=None, created_at=now, created_by="tests")
        await evaluation_store.insert_comparison(self.evaluation.app.state.runtime.pool, comparison_id,
                                                 created_at=now, created_by="tests", result=result, report=report)
        return str(comparison_id)


@pytest.fixture(scope="module")
async def stack(system, service_env):
    """The gateway of this module routes to a real training scheduler and evaluation service (the session's
    gateway has neither); registry and audit are the session's."""
    objects = scratch_dir("cairn-rg-objects-")
    dead = f"http://127.0.0.1:{free_port()}"  # no version service: nothing here needs one
    registry, audit = system.services["registry"].url, system.services["audit"].url
    scheduler = await serve(create_scheduler(TrainingSchedulerSettings(
        **service_env, registry_url=registry, version_url=dead)))
    evaluation = await serve(create_evaluation(EvaluationSettings(
        **service_env, object_store_url=f"file://{objects}", registry_url=registry, version_url=dead)))
    app = create_gateway(GatewaySettings(
        **service_env, registry_url=registry, audit_url=audit, training_scheduler_url=scheduler.url,
        evaluation_url=evaluation.url, rate_limit_per_minute=100_000))
    gateway = await serve(app)
    stack = Stack(gateway, evaluation, app.state.runtime.pool)
    stack.admin_token = system.admin_token
    yield stack
    # no queued job of this module may be left for the training tests' workers
    async with stack.admin as admin:
        for job_id in stack.jobs:
            await admin.post(f"/api/v1/training-jobs/{job_id}/cancel", json={"reason": "test cleanup"})
    for server in (gateway, evaluation, scheduler):
        await server.stop()
    shutil.rmtree(objects, ignore_errors=True)


def _refused(response: httpx.Response) -> dict:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()


async def test_a_read_grant_reads_that_models_job_and_evaluation_only(stack):
    name, token = await stack.key("guest")
    x, y = await stack.model(), await stack.model()
    job_x, job_y = await stack.job(x), await stack.job(y)
    eval_x, eval_y = await stack.evaluation_of(x), await stack.evaluation_of(y)
    await stack.grant(x, name, "read")
    async with stack.client(token) as api:
        got = await api.get(f"/api/v1/training-jobs/{job_x['job_id']}")
        assert got.status_code == 200, got.text
        assert got.json()["model_id"] == x["model_id"] and got.json()["job_id"] == job_x["job_id"]
        evaluation = await api.get(f"/api/v1/evaluations/{eval_x}")
        assert evaluation.status_code == 200, evaluation.text
        assert evaluation.json()["model_id"] == x["model_id"]

        on_y = [_refused(await api.get(f"/api/v1/training-jobs/{job_y['job_id']}")),
                _refused(await api.get(f"/api/v1/evaluations/{eval_y}"))]
        # what was refused is not in the answer: no job, no evaluation, not even the model's name or id
        for problem in on_y:
            assert problem["code"] == "forbidden" and "model" not in problem
            assert y["name"] not in str(problem) and y["model_id"] not in str(problem)
            assert "state" not in problem and "metrics" not in problem

        # the model's own routes are unchanged: read on X, nothing on Y
        assert (await api.get(f"/api/v1/models/{x['model_id']}/training-jobs")).status_code == 200
        _refused(await api.get(f"/api/v1/models/{y['model_id']}/training-jobs"))


async def test_unknown_and_unreadable_resources_get_the_same_refusal(stack):
    name, token = await stack.key("guest")
    x, y = await stack.model(), await stack.model()
    job_y, eval_y = await stack.job(y), await stack.evaluation_of(y)
    comparison_y = await stack.comparison_of(y, y)
    await stack.grant(x, name, "read")
    missing = str(uuid.uuid4())
    async with stack.client(token) as api:
        pairs = [
            (f"/api/v1/training-jobs/{job_y['job_id']}", f"/api/v1/training-jobs/{missing}"),
            (f"/api/v1/training-jobs/{job_y['job_id']}/events", f"/api/v1/training-jobs/{missing}/events"),
            (f"/api/v1/evaluations/{eval_y}", f"/api/v1/evaluations/{missing}"),
            (f"/api/v1/comparisons/{comparison_y}", f"/api/v1/comparisons/{missing}"),
        ]
        for exists, absent in pairs:
            one, other = _refused(await api.get(exists)), _refused(await api.get(absent))
            assert {k: v for k, v in one.items() if k != "instance"} == \
                   {k: v for k, v in other.items() if k != "instance"}, (one, other)
        cancel_exists = _refused(await api.post(f"/api/v1/training-jobs/{job_y['job_id']}/cancel", json={}))
        cancel_absent = _refused(await api.post(f"/api/v1/training-jobs/{missing}/cancel", json={}))
        assert cancel_exists["detail"] == cancel_absent["detail"]
    # a role that reads every job still learns that one does not exist, as before
    _, viewer = await stack.key("viewer")
    async with stack.client(viewer) as api:
        assert (await api.get(f"/api/v1/training-jobs/{missing}")).status_code == 404
        assert (await api.get(f"/api/v1/evaluations/{missing}")).status_code == 404
        assert (await api.get(f"/api/v1/comparisons/{missing}")).status_code == 404
    # the job was not cancelled by the refused request
    async with stack.admin as admin:
        assert (await admin.get(f"/api/v1/training-jobs/{job_y['job_id']}")).json()["state"] == "queued"


async def test_cancel_needs_write_on_the_jobs_model(stack):
    reader, reader_token = await stack.key("guest")
    team = f"rg-team-{_uid()}"
    _, member_token = await stack.key("guest", team=team)
    x = await stack.model()
    first, second = await stack.job(x), await stack.job(x)
    await stack.grant(x, reader, "read")
    await stack.grant(x, f"team:{team}", "write")
    async with stack.client(reader_token) as reading, stack.client(member_token) as writing:
        problem = _refused(await reading.post(f"/api/v1/training-jobs/{first['job_id']}/cancel", json={}))
        # it may read the job, so the refusal may say why: no write on this model
        assert problem["required"] == "write" and problem["model"] == x["name"]
        assert (await reading.get(f"/api/v1/training-jobs/{first['job_id']}")).json()["state"] == "queued"

        cancelled = await writing.post(f"/api/v1/training-jobs/{first['job_id']}/cancel", json={"reason": "team"})
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["state"] == "cancelled" and cancelled.json()["cancel_reason"] == "team"
        # write implies read
        assert (await writing.get(f"/api/v1/training-jobs/{second['job_id']}")).status_code == 200
        # the scheduler's own answers pass through to a caller allowed on the model
        again = await writing.post(f"/api/v1/training-jobs/{first['job_id']}/cancel", json={})
        assert again.status_code == 409, again.text


async def test_events_are_decided_before_the_stream_starts(stack):
    name, token = await stack.key("guest")
    x, y = await stack.model(), await stack.model()
    job_x, job_y = await stack.job(x), await stack.job(y)
    await stack.grant(x, name, "read")
    async with stack.admin as admin:  # a finished job's stream replays and ends
        assert (await admin.post(f"/api/v1/training-jobs/{job_x['job_id']}/cancel", json={})).status_code == 200
    async with stack.client(token) as api:
        async with api.stream("GET", f"/api/v1/training-jobs/{job_y['job_id']}/events") as refused:
            assert refused.status_code == 403
            assert refused.headers["content-type"] == "application/problem+json"
            assert "event:" not in (await refused.aread()).decode()
        async with api.stream("GET", f"/api/v1/training-jobs/{job_x['job_id']}/events") as allowed:
            assert allowed.status_code == 200
            assert allowed.headers["content-type"].startswith("text/event-stream")
            text = (await allowed.aread()).decode()
        assert "event:" in text and "cancelled" in text


async def test_comparisons_need_read_on_both_models(stack):
    name, token = await stack.key("guest")
    x, y = await stack.model(), await stack.model()
    only_x, x_and_y = await stack.comparison_of(x, x), await stack.comparison_of(x, y)
    await stack.grant(x, name, "read")
    async with stack.client(token) as api:
        ok = await api.get(f"/api/v1/comparisons/{only_x}")
        assert ok.status_code == 200, ok.text
        assert ok.json()["model_1"]["model_id"] == x["model_id"]
        html = await api.get(f"/api/v1/comparisons/{only_x}", headers={"accept": "text/html"})
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html"), html.text[:300]
        assert "<html" in html.text.lower()
        _refused(await api.get(f"/api/v1/comparisons/{x_and_y}"))
        _refused(await api.get(f"/api/v1/comparisons/{x_and_y}", params={"format": "html"}))

        # compare: read on every model the request names
        body = {"model_1": {"model_id": x["name"], "version": "1.0.0"},
                "model_2": {"model_id": y["model_id"], "version": "1.0.0"}}
        problem = _refused(await api.post("/api/v1/models/compare", json=body))
        assert problem["model"] == y["model_id"] and problem["required"] == "read"
        same = {"model_1": {"model_id": x["name"], "version": "1.0.0"},
                "model_2": {"model_id": x["model_id"], "version": "2.0.0"}}
        through = await api.post("/api/v1/models/compare", json=same)
        # allowed: the evaluation service answers (it has no such version), not the gateway's 403
        assert through.status_code not in (401, 403), through.text
        assert through.json()["code"] != "forbidden"
        # bad input is a 4xx naming the field, even before the models are known
        bad = await api.post("/api/v1/models/compare", json={"model_1": {"model_id": x["name"]}})
        assert bad.status_code == 422, bad.text
        assert {e["field"] for e in bad.json()["errors"]} >= {"model_1.version", "model_2"}

    await stack.grant(y, name, "read")
    async with stack.client(token) as api:
        assert (await api.get(f"/api/v1/comparisons/{x_and_y}")).status_code == 200
        assert (await api.post("/api/v1/models/compare", json=body)).status_code not in (401, 403)


async def test_roles_that_suffice_are_unchanged(stack):
    x = await stack.model()
    job, evaluation = await stack.job(x), await stack.evaluation_of(x)
    comparison = await stack.comparison_of(x, x)
    _, viewer = await stack.key("viewer")
    _, editor = await stack.key("editor")
    _, guest = await stack.key("guest")
    async with stack.client(viewer) as api:
        assert (await api.get(f"/api/v1/training-jobs/{job['job_id']}")).status_code == 200
        assert (await api.get(f"/api/v1/evaluations/{evaluation}")).status_code == 200
        assert (await api.get(f"/api/v1/comparisons/{comparison}")).status_code == 200
        problem = _refused(await api.post(f"/api/v1/training-jobs/{job['job_id']}/cancel", json={}))
        assert problem["permission"] == "training:write"
    async with stack.client(editor) as api:
        response = await api.post(f"/api/v1/training-jobs/{job['job_id']}/cancel", json={})
        assert response.status_code == 200 and response.json()["state"] == "cancelled"
    # a guest without any grant is refused at once, as before
    async with stack.client(guest) as api:
        problem = _refused(await api.get(f"/api/v1/training-jobs/{job['job_id']}"))
        assert problem["detail"] == "role guest lacks permission training:read"


async def test_a_role_that_suffices_costs_no_grant_lookup(stack):
    """The hot path is today's: a viewer reading a job makes no model lookup at all."""
    x = await stack.model()
    job = await stack.job(x)
    _, viewer = await stack.key("viewer")
    access = stack.gateway.app.state.gateway.access
    calls: list[str] = []
    original_lookup, original_visible = access.lookup, access.visible

    async def lookup(*args, **kwargs):
        calls.append("lookup")
        return await original_lookup(*args, **kwargs)

    async def visible(*args, **kwargs):
        calls.append("visible")
        return await original_visible(*args, **kwargs)

    access.lookup, access.visible = lookup, visible
    try:
        async with stack.client(viewer) as api:
            assert (await api.get(f"/api/v1/training-jobs/{job['job_id']}")).status_code == 200
        assert calls == []
        name, token = await stack.key("guest")
        await stack.grant(x, name, "read")
        calls.clear()
        # a guest: the models it may see (is there any?), then its grants on the job's model
        async with stack.client(token) as api:
            assert (await api.get(f"/api/v1/training-jobs/{job['job_id']}")).status_code == 200
        assert calls == ["visible", "lookup"]
    finally:
        access.lookup, access.visible = original_lookup, original_visible


async def test_a_revoked_grant_is_refused_again_and_refusals_are_audited(stack):
    name, token = await stack.key("guest")
    x, y = await stack.model(), await stack.model()
    job_x, job_y = await stack.job(x), await stack.job(y)
    evaluation = await stack.evaluation_of(x)
    await stack.grant(x, name, "read")
    await stack.grant(y, name, "read")  # so that the guest is not refused before the job is looked at
    async with stack.client(token) as api:
        assert (await api.get(f"/api/v1/training-jobs/{job_x['job_id']}")).status_code == 200
        await stack.revoke(x, name, "read")  # through this gateway: its cache is cleared at once
        _refused(await api.get(f"/api/v1/training-jobs/{job_x['job_id']}"))
        _refused(await api.get(f"/api/v1/evaluations/{evaluation}"))
        assert (await api.get(f"/api/v1/training-jobs/{job_y['job_id']}")).status_code == 200

    async def recorded():
        async with stack.admin as admin:
            entries = (await admin.get("/api/v1/audit", params={"model_id": x["model_id"], "order": "asc"})).json()["entries"]
        denied = [e for e in entries if e["event_type"] == "AccessDenied" and e["actor"] == name]
        return denied if len(denied) >= 2 else None

    denied = await eventually(recorded)
    payloads = {d["payload"]["permission"]: d["payload"] for d in denied}
    assert payloads["training:read"]["required"] == "read"
    assert payloads["training:read"]["path"] == f"/api/v1/training-jobs/{job_x['job_id']}"
    assert payloads["evaluation:read"]["model_id"] == x["model_id"]
