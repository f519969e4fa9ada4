"""The measured work. Each scenario returns Results; numbers go in docs/benchmarks.md."""
from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from urllib.parse import urljoin

import httpx

from bench import fastclient
from bench.harness import Result, Stack, drive, percentile, streamed_megabytes, summary
from bench.mlflow_compare import Cairn
from examples.deployer.deployer import Deployer


async def _model(api: httpx.AsyncClient, prefix: str) -> str:
    response = await api.post("/api/v1/models", json={"name": f"{prefix}-{uuid.uuid4().hex[:8]}", "type": "classification"})
    response.raise_for_status()
    return response.json()["model_id"]


def _rate(name: str, unit: str, measured: tuple[float, float, float]) -> Result:
    rate, p50, p99 = measured
    return Result(name, unit, rate, {"p50_ms": p50, "p99_ms": p99})


async def registration(stack: Stack, api: httpx.AsyncClient, duration_s: float) -> list[Result]:
    cairn = Cairn(stack.gateway, stack.token)
    await drive(cairn.base_url, cairn.headers, cairn.register(), concurrency=8, duration_s=duration_s / 3)  # warm-up
    return [_rate("model registrations (16 clients)", "req/s",
                  await drive(cairn.base_url, cairn.headers, cairn.register(), concurrency=16, duration_s=duration_s))]


async def version_creation(stack: Stack, api: httpx.AsyncClient, duration_s: float) -> list[Result]:
    cairn = Cairn(stack.gateway, stack.token)
    call = cairn.create_version(await cairn.prepare_models(api, 8))
    return [_rate("versions created (8 models, 16 clients)", "versions/s",
                  await drive(cairn.base_url, cairn.headers, call, concurrency=16, duration_s=duration_s))]


async def _live_version(api: httpx.AsyncClient, model: str, payload: bytes) -> str:
    version = (await api.post(f"/api/v1/models/{model}/versions", json={"bump": "patch"})).json()["version"]
    (await api.put(f"/api/v1/models/{model}/versions/{version}/artifact", content=payload,
                   headers={"content-type": "application/octet-stream"})).raise_for_status()
    await api.post(f"/api/v1/models/{model}/versions/{version}/transitions", json={"environment": "production", "to_stage": "staging"})
    return version


async def production_lookup(stack: Stack, api: httpx.AsyncClient, duration_s: float) -> list[Result]:
    cairn = Cairn(stack.gateway, stack.token)
    call = await cairn.prepare_lookup(api)
    await drive(cairn.base_url, cairn.headers, call, concurrency=8, duration_s=duration_s / 3)  # warm-up
    results = []
    for clients in (1, 32):  # the latency of one caller, then the throughput when saturated
        measured = await drive(cairn.base_url, cairn.headers, call, concurrency=clients, duration_s=duration_s)
        results.append(_rate(f"production lookups (cache, {clients} client{'s' if clients > 1 else ''})", "req/s",
                             measured))
    return results


async def promote_to_deployer(stack: Stack, api: httpx.AsyncClient, rounds: int) -> list[Result]:
    deployer = await Deployer(bootstrap=stack.kafka, gateway=stack.gateway, api_key=stack.token,
                              workdir=stack.workdir / "deployer").start()
    model = await _model(api, "promo")
    lags: list[float] = []
    deployed: list[float] = []

    def promoted(state, version):
        return any(e["version"] == version and e.get("to_stage") == "production" for e in state.events_of("VersionPromoted"))

    def verified(state, version):
        live = state.live.get((model, "production"))
        return live is not None and live.version == version and live.verified

    try:
        for _ in range(rounds):
            version = await _live_version(api, model, os.urandom(1024))
            await asyncio.sleep(0.2)  # let the staging events drain, so each round starts from quiet
            t0 = time.perf_counter()
            response = await api.post(f"/api/v1/models/{model}/versions/{version}/publish", json={"environment": "production"})
            response.raise_for_status()
            await deployer.wait_for(lambda s: promoted(s, version), timeout=30)
            lags.append(time.perf_counter() - t0)
            await deployer.wait_for(lambda s: verified(s, version), timeout=30)
            deployed.append(time.perf_counter() - t0)
    finally:
        await deployer.stop()
    return [Result("promote request → deployer has VersionPromoted", "ms p50", percentile([x * 1000 for x in lags], 50),
                   summary(lags)),
            Result("  → weights downloaded and sha256 verified", "ms p50", percentile([x * 1000 for x in deployed], 50),
                   summary(deployed))]


async def artifact_transfer(stack: Stack, api: httpx.AsyncClient, size_mb: int) -> list[Result]:
    model = await _model(api, "blob")
    version = (await api.post(f"/api/v1/models/{model}/versions", json={"bump": "patch"})).json()["version"]
    body, digest = streamed_megabytes(size_mb)
    t0 = time.perf_counter()
    reply = await fastclient.upload(f"{stack.gateway}/api/v1/models/{model}/versions/{version}/artifact", "PUT",
                                    {"authorization": f"Bearer {stack.token}", "content-type": "application/octet-stream"},
                                    body(), size_mb << 20)
    assert reply.status == 201, reply.body[:300]
    upload_s = time.perf_counter() - t0
    await asyncio.sleep(5)  # the evaluation service reads every new artifact: measure the download alone
    link = (await api.get(f"/api/v1/models/{model}/download", params={"version": version})).json()["download_url"]
    t0 = time.perf_counter()
    got = hashlib.sha256()
    status, _ = await fastclient.download(urljoin(stack.gateway, link), {}, got.update)
    assert status == 200
    download_s = time.perf_counter() - t0
    assert got.hexdigest() == digest.hexdigest()
    return [Result(f"artifact upload ({size_mb} MiB, streamed, hashed)", "MB/s", size_mb * 1.048576 / upload_s),
            Result(f"artifact download ({size_mb} MiB, verified)", "MB/s", size_mb * 1.048576 / download_s)]


async def train_to_verdict(stack: Stack, api: httpx.AsyncClient, rounds: int) -> list[Result]:
    """A digits CNN (3 epochs, CPU) from the training request to the promotion policy's verdict: queued →
    trained by the stack's worker → version → measured by the evaluation service → PromotionDecided."""
    deployer = await Deployer(bootstrap=stack.kafka, gateway=stack.gateway, api_key=stack.token,
                              workdir=stack.workdir / "deployer-train").start()
    registered = await api.post("/api/v1/models", json={
        "name": f"train-{uuid.uuid4().hex[:8]}", "type": "vision", "framework": "pytorch",
        "metadata": {"image_size": 8, "image_channels": 1, "num_classes": 10}})
    registered.raise_for_status()
    model = registered.json()["model_id"]
    (await api.put(f"/api/v1/models/{model}/promotion-policy", json={
        "staging": {"metric": "accuracy", "min_value": 0.9},
        "production": {"metric": "accuracy", "min_improvement_points": 0.5}})).raise_for_status()
    to_verdict: list[float] = []
    training: list[float] = []

    def verdicts(state) -> list[dict]:
        return [e for e in state.events_of("PromotionDecided") if e["model_id"] == model and e["to_stage"] == "staging"]

    try:
        for i in range(rounds + 1):  # round 0 is the cold start (imports, first dataset load): reported apart
            before = len(verdicts(deployer.state))
            t0 = time.perf_counter()
            job = (await api.post(f"/api/v1/models/{model}/training-jobs", json={
                "dataset": "digits", "hyperparameters": {"epochs": 3, "batch_size": 32, "learning_rate": 0.003,
                                                         "seed": i}})).json()
            await deployer.wait_for(lambda s: len(verdicts(s)) > before, timeout=300)
            to_verdict.append(time.perf_counter() - t0)
            result = (await api.get(f"/api/v1/training-jobs/{job['job_id']}")).json().get("result") or {}
            if result.get("duration_s"):
                training.append(float(result["duration_s"]))
    finally:
        await deployer.stop()
    cold, warm = to_verdict[0], to_verdict[1:]
    results = [Result("training request → policy verdict (digits CNN, 3 epochs, CPU)", "s p50",
                      percentile(warm, 50), summary(warm)),
               Result("  the same, first job after start (cold)", "s", cold)]
    if len(training) > 1:
        results.append(Result("  of which training on the worker (3 epochs, warm)", "s p50", percentile(training[1:], 50)))
    return results
