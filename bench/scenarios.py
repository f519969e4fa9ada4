"""The measured work. Each scenario returns Results; numbers go in docs/benchmarks.md."""
from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from pathlib import Path

import httpx

from bench.harness import Result, Stack, closed_loop, percentile, summary
from examples.deployer.deployer import Deployer


async def _model(api: httpx.AsyncClient, prefix: str) -> str:
    response = await api.post("/api/v1/models", json={"name": f"{prefix}-{uuid.uuid4().hex[:8]}", "type": "classification"})
    response.raise_for_status()
    return response.json()["model_id"]


async def registration(stack: Stack, api: httpx.AsyncClient, duration_s: float) -> list[Result]:
    async def call() -> None:
        (await api.post("/api/v1/models", json={"name": f"reg-{uuid.uuid4().hex}", "type": "regression"})).raise_for_status()

    count, latencies, elapsed = await closed_loop(call, concurrency=16, duration_s=duration_s)
    return [Result("model registrations", "req/s", count / elapsed, summary(latencies))]


async def version_creation(stack: Stack, api: httpx.AsyncClient, duration_s: float) -> list[Result]:
    models = [await _model(api, "ver") for _ in range(8)]
    counter = {"i": 0}

    async def call() -> None:
        counter["i"] += 1
        model = models[counter["i"] % len(models)]
        (await api.post(f"/api/v1/models/{model}/versions", json={"bump": "patch"})).raise_for_status()

    count, latencies, elapsed = await closed_loop(call, concurrency=16, duration_s=duration_s)
    return [Result("versions created (8 models, 16 clients)", "versions/s", count / elapsed, summary(latencies))]


async def _live_version(api: httpx.AsyncClient, model: str, payload: bytes) -> str:
    version = (await api.post(f"/api/v1/models/{model}/versions", json={"bump": "patch"})).json()["version"]
    (await api.put(f"/api/v1/models/{model}/versions/{version}/artifact", content=payload,
                   headers={"content-type": "application/octet-stream"})).raise_for_status()
    await api.post(f"/api/v1/models/{model}/versions/{version}/transitions", json={"environment": "production", "to_stage": "staging"})
    return version


async def production_lookup(stack: Stack, api: httpx.AsyncClient, duration_s: float) -> list[Result]:
    model = await _model(api, "hot")
    version = await _live_version(api, model, os.urandom(4096))
    (await api.post(f"/api/v1/models/{model}/versions/{version}/publish", json={"environment": "production"})).raise_for_status()
    url = f"/api/v1/models/{model}/production"
    for _ in range(100):  # until the cache is filled
        if (await api.get(url)).headers.get("x-cairn-served-from") == "cache":
            break
        await asyncio.sleep(0.02)

    async def call() -> None:
        response = await api.get(url)
        if response.status_code != 200:
            raise RuntimeError(response.text)

    results = []
    for clients in (1, 32):  # the latency of one caller, then the throughput when saturated
        count, latencies, elapsed = await closed_loop(call, concurrency=clients, duration_s=duration_s)
        results.append(Result(f"production lookups (cache, {clients} client{'s' if clients > 1 else ''})", "req/s",
                              count / elapsed, summary(latencies)))
    return results


async def promote_to_deployer(stack: Stack, api: httpx.AsyncClient, rounds: int) -> list[Result]:
    deployer = await Deployer(bootstrap=stack.kafka, gateway=stack.gateway, api_key=stack.token,
                              workdir=stack.workdir / "deployer").start()
    model = await _model(api, "promo")
    lags: list[float] = []
    try:
        for _ in range(rounds):
            version = await _live_version(api, model, os.urandom(1024))
            t0 = time.perf_counter()
            response = await api.post(f"/api/v1/models/{model}/versions/{version}/publish", json={"environment": "production"})
            response.raise_for_status()
            await deployer.wait_for(lambda s: any(e["version"] == version for e in s.events_of("VersionPromoted")), timeout=30)
            lags.append(time.perf_counter() - t0)
    finally:
        await deployer.stop()
    return [Result("promote request → deployer sees VersionPromoted", "ms p50", percentile([x * 1000 for x in lags], 50),
                   summary(lags))]


async def artifact_transfer(stack: Stack, api: httpx.AsyncClient, size_mb: int) -> list[Result]:
    model = await _model(api, "blob")
    version = (await api.post(f"/api/v1/models/{model}/versions", json={"bump": "patch"})).json()["version"]
    block = os.urandom(1 << 20)
    digest = hashlib.sha256()

    async def body():
        for _ in range(size_mb):
            digest.update(block)
            yield block

    t0 = time.perf_counter()
    (await api.put(f"/api/v1/models/{model}/versions/{version}/artifact", content=body(),
                   headers={"content-type": "application/octet-stream"}, timeout=600)).raise_for_status()
    upload_s = time.perf_counter() - t0
    link = (await api.get(f"/api/v1/models/{model}/download", params={"version": version})).json()["download_url"]
    t0 = time.perf_counter()
    got = hashlib.sha256()
    async with httpx.AsyncClient(timeout=600) as plain, plain.stream("GET", link) as response:
        async for chunk in response.aiter_raw():
            got.update(chunk)
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
