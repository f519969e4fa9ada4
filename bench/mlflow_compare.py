"""python -m bench.mlflow_compare [--quick]: Cairn and OSS MLflow side by side, on one PostgreSQL.

One embedded PostgreSQL 18 (durable: fsync on, as `make run` has it) holds database ``cairn`` and
database ``mlflow``. First the Cairn stack runs on it (as `make run` does, gateway with two workers)
and is measured; it is stopped; then ``mlflow server`` (from its own venv, ``.venv-mlflow``, made by
``make bench-mlflow``, so MLflow's pins never meet ours) runs on the same PostgreSQL with its default
of four uvicorn workers and is measured with the same load generator and the same scenarios through
its REST API. Only one system runs at a time. The table's last column is Cairn / MLflow (for latency
rows, MLflow / Cairn, so above 1 always means Cairn is better).
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urljoin

import httpx

from bench import fastclient
from bench.harness import drive, start_stack, streamed_megabytes
from libs.stack.embedded import EmbeddedPostgres
from libs.stack.procs import free_port, http_ok, stop_process

ROOT = Path(__file__).resolve().parent.parent
MLFLOW_PYTHON = ROOT / ".venv-mlflow" / "bin" / "python"


def expect(reply, *statuses: int) -> None:
    if reply.status not in statuses:
        raise RuntimeError(f"unexpected {reply.status}: {reply.body[:300]!r}")


class Cairn:
    name = "cairn"

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.headers = {"authorization": f"Bearer {token}"}

    async def prepare_models(self, api, count):
        out = []
        for _ in range(count):
            r = await api.post("/api/v1/models", json={"name": f"cmp-{uuid.uuid4().hex[:10]}", "type": "classification"})
            r.raise_for_status()
            out.append(r.json()["model_id"])
        return out

    def register(self):
        async def call(conn):
            body = json.dumps({"name": f"reg-{uuid.uuid4().hex}", "type": "regression"}).encode()
            expect(await conn.request("POST", "/api/v1/models", body), 201)
        return call

    def create_version(self, models):
        n = {"i": 0}

        async def call(conn):
            n["i"] += 1
            expect(await conn.request("POST", f"/api/v1/models/{models[n['i'] % len(models)]}/versions",
                                      b'{"bump":"patch"}'), 201)
        return call

    async def prepare_lookup(self, api):
        (model,) = await self.prepare_models(api, 1)
        version = (await api.post(f"/api/v1/models/{model}/versions", json={"bump": "patch"})).json()["version"]
        (await api.put(f"/api/v1/models/{model}/versions/{version}/artifact", content=os.urandom(4096),
                       headers={"content-type": "application/octet-stream"})).raise_for_status()
        (await api.post(f"/api/v1/models/{model}/versions/{version}/transitions",
                        json={"environment": "production", "to_stage": "staging"})).raise_for_status()
        (await api.post(f"/api/v1/models/{model}/versions/{version}/publish",
                        json={"environment": "production"})).raise_for_status()
        path = f"/api/v1/models/{model}/production"
        for _ in range(200):  # until the lifecycle service has filled the Redis view
            if (await api.get(path)).headers.get("x-cairn-served-from") == "cache":
                break
            await asyncio.sleep(0.02)

        async def call(conn):
            expect(await conn.request("GET", path), 200)
        return call

    async def transfer(self, api, size_mb):
        (model,) = await self.prepare_models(api, 1)
        version = (await api.post(f"/api/v1/models/{model}/versions", json={"bump": "patch"})).json()["version"]
        up = f"/api/v1/models/{model}/versions/{version}/artifact"

        async def download_url():
            return (await api.get(f"/api/v1/models/{model}/download", params={"version": version})).json()["download_url"]
        return up, "PUT", download_url


class MLflow:
    name = "mlflow"

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.headers = {}

    async def prepare_models(self, api, count):
        out = []
        for _ in range(count):
            name = f"cmp-{uuid.uuid4().hex[:10]}"
            (await api.post("/api/2.0/mlflow/registered-models/create", json={"name": name})).raise_for_status()
            out.append(name)
        return out

    def register(self):
        async def call(conn):
            body = json.dumps({"name": f"reg-{uuid.uuid4().hex}"}).encode()
            expect(await conn.request("POST", "/api/2.0/mlflow/registered-models/create", body), 200)
        return call

    def create_version(self, models):
        n = {"i": 0}

        async def call(conn):
            n["i"] += 1
            name = models[n["i"] % len(models)]
            body = json.dumps({"name": name, "source": f"s3://bench/{name}/{n['i']}"}).encode()
            expect(await conn.request("POST", "/api/2.0/mlflow/model-versions/create", body), 200)
        return call

    async def prepare_lookup(self, api):
        (name,) = await self.prepare_models(api, 1)
        created = await api.post("/api/2.0/mlflow/model-versions/create", json={"name": name, "source": "s3://bench/hot/1"})
        created.raise_for_status()
        version = created.json()["model_version"]["version"]
        (await api.post("/api/2.0/mlflow/registered-models/alias",
                        json={"name": name, "alias": "production", "version": version})).raise_for_status()
        path = f"/api/2.0/mlflow/registered-models/alias?name={name}&alias=production"

        async def call(conn):
            expect(await conn.request("GET", path), 200)
        return call

    async def transfer(self, api, size_mb):
        path = f"/api/2.0/mlflow-artifacts/artifacts/bench/{uuid.uuid4().hex}/model.bin"

        async def download_url():
            return self.base_url + path
        return path, "PUT", download_url


async def measure(system, quick: bool) -> dict[str, tuple[float, float, float]]:
    duration = 3.0 if quick else 10.0
    size_mb = 64 if quick else 256
    out: dict[str, tuple[float, float, float]] = {}
    async with httpx.AsyncClient(base_url=system.base_url, headers=system.headers, timeout=120) as api:
        # warm-up, not measured: every worker process imports lazily and opens its pools on first use
        await drive(system.base_url, system.headers, system.register(), concurrency=8, duration_s=duration / 2)
        out["register"] = await drive(system.base_url, system.headers, system.register(), concurrency=16, duration_s=duration)
        models = await system.prepare_models(api, 8)
        await drive(system.base_url, system.headers, system.create_version(models), concurrency=8, duration_s=duration / 2)
        out["create"] = await drive(system.base_url, system.headers, system.create_version(models),
                                    concurrency=16, duration_s=duration)
        lookup = await system.prepare_lookup(api)
        await drive(system.base_url, system.headers, lookup, concurrency=8, duration_s=duration / 2)
        out["lookup1"] = await drive(system.base_url, system.headers, lookup, concurrency=1, duration_s=duration)
        out["lookup32"] = await drive(system.base_url, system.headers, lookup, concurrency=32, duration_s=duration)
        up, method, download_url = await system.transfer(api, size_mb)
        body, digest = streamed_megabytes(size_mb)
        t0 = time.perf_counter()
        r = await fastclient.upload(urljoin(system.base_url, up), method, {**system.headers, "content-type": "application/octet-stream"},
                                    body(), size_mb << 20)
        if r.status >= 300:
            raise RuntimeError(f"{system.name}: upload answered {r.status}: {r.body[:300]!r}")
        out["upload"] = (size_mb * 1.048576 / (time.perf_counter() - t0), 0, 0)
        # let work that an upload starts settle first (Cairn's evaluation service reads every new artifact),
        # so the download is measured alone; the same pause for both systems
        await asyncio.sleep(5)
        url = await download_url()
        got = hashlib.sha256()
        t0 = time.perf_counter()
        url = urljoin(system.base_url, url)
        status, _ = await fastclient.download(url, system.headers if url.startswith(system.base_url) else {}, got.update)
        if status != 200:
            raise RuntimeError(f"{system.name}: download answered {status}")
        out["download"] = (size_mb * 1.048576 / (time.perf_counter() - t0), 0, 0)
        if got.hexdigest() != digest.hexdigest():
            raise RuntimeError(f"{system.name}: the downloaded bytes differ from the uploaded ones")
    return out


def start_mlflow(dsn: str, workdir: Path, workers: int) -> tuple[subprocess.Popen, str]:
    if not MLFLOW_PYTHON.exists():
        raise SystemExit(f"{MLFLOW_PYTHON} is missing; run `make bench-mlflow` (it creates .venv-mlflow)")
    port = free_port()
    log = open(workdir / "mlflow.log", "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAIRN_", "MLFLOW_"))}
    # no usage reports: the benchmark talks to loopback only, and a report that cannot leave costs time
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    proc = subprocess.Popen(
        [str(MLFLOW_PYTHON), "-m", "mlflow", "server", "--backend-store-uri", dsn,
         "--artifacts-destination", str(workdir / "mlartifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers)],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        cwd=workdir,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while not http_ok(f"{url}/health"):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            tail = (workdir / "mlflow.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"mlflow server did not start:\n{tail}")
        time.sleep(0.5)
    return proc, url


def mlflow_version() -> str:
    out = subprocess.run([str(MLFLOW_PYTHON), "-c", "import mlflow; print(mlflow.__version__)"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


ROWS = [
    ("register", "model registrations (16 clients)", "req/s"),
    ("create", "versions created (8 models, 16 clients)", "req/s"),
    ("lookup1", "production lookup (1 client)", "req/s"),
    ("lookup32", "production lookup (32 clients)", "req/s"),
    ("upload", "artifact upload", "MB/s"),
    ("download", "artifact download", "MB/s"),
]


def table(cairn: dict, mlflow: dict, size_mb: int) -> list[dict]:
    rows = []
    for key, label, unit in ROWS:
        c, m = cairn[key], mlflow[key]
        if key in ("upload", "download"):
            label += f" ({size_mb} MiB)"
        rows.append({"scenario": label, "unit": unit, "cairn": c[0], "mlflow": m[0],
                     "ratio": c[0] / m[0] if m[0] else float("nan"),
                     "cairn_p50_ms": c[1], "cairn_p99_ms": c[2], "mlflow_p50_ms": m[1], "mlflow_p99_ms": m[2]})
    for key, label in (("create", "version create"), ("lookup1", "production lookup, 1 client")):
        rows.append({"scenario": f"{label} p50 latency", "unit": "ms", "cairn": cairn[key][1], "mlflow": mlflow[key][1],
                     "ratio": mlflow[key][1] / cairn[key][1] if cairn[key][1] else float("nan")})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--gateway-workers", type=int, default=2)
    parser.add_argument("--mlflow-workers", type=int, default=4, help="mlflow server's own default is 4")
    parser.add_argument("--only", choices=("cairn", "mlflow"), help="measure one system (no ratios)")
    args = parser.parse_args()
    version = mlflow_version()
    workdir = Path(tempfile.mkdtemp(prefix="cairn-vs-mlflow-"))
    postgres = EmbeddedPostgres(workdir / "postgres", durable=True)
    try:
        dsn = postgres.start()
        postgres._psql("CREATE DATABASE mlflow;")
        # the same server, database mlflow, through psycopg2 (what .venv-mlflow has)
        mlflow_dsn = "postgresql+psycopg2://" + dsn.split("://", 1)[1].replace("/cairn?", "/mlflow?", 1)
        print(f"PostgreSQL: {dsn.split('@')[-1]}", flush=True)
        cairn = mlflow = None
        if args.only != "mlflow":
            stack = start_stack(gateway_workers=args.gateway_workers, extra_env={"CAIRN_DATABASE_URL": dsn})
            try:
                print("measuring Cairn ...", flush=True)
                cairn = asyncio.run(measure(Cairn(stack.gateway, stack.token), args.quick))
            finally:
                stack.stop()
        if args.only != "cairn":
            proc, url = start_mlflow(mlflow_dsn, workdir, args.mlflow_workers)
            try:
                print(f"measuring MLflow {version} ...", flush=True)
                mlflow = asyncio.run(measure(MLflow(url), args.quick))
            finally:
                stop_process(proc, grace=15)
    finally:
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    size_mb = 64 if args.quick else 256
    if cairn is None or mlflow is None:
        print(json.dumps(cairn or mlflow, indent=1))
        return
    rows = table(cairn, mlflow, size_mb)
    print(f"\nCairn vs MLflow {version} — same PostgreSQL 18, {os.cpu_count()} CPUs, {platform.machine()}, "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; gateway workers {args.gateway_workers}, "
          f"mlflow workers {args.mlflow_workers}\n")
    print(f"{'scenario':<46} {'unit':<6} {'Cairn':>10} {'MLflow':>10} {'ratio':>7}")
    for r in rows:
        print(f"{r['scenario']:<46} {r['unit']:<6} {r['cairn']:>10.1f} {r['mlflow']:>10.1f} {r['ratio']:>6.2f}x")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "mlflow-compare.json").write_text(json.dumps({"mlflow": version, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
