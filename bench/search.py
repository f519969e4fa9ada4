"""Search latency at 100k: a stack whose search index holds 100,000 models (each with its representative
version, so at least 100,000 versions), queried through the gateway by one client.

The documents are bulk-loaded straight into the Postgres read model (``libs/search/postgres.py``), which
is what the search-indexer would have built from the events; the queries go the whole public way
(gateway: auth, rate limit, forward; search-indexer; Postgres). The stack gets a Postgres of the bench's
own, so the loader knows where the read model lives.

``python -m bench.search [--quick] [--models N]`` runs it alone; ``python -m bench`` runs it last."""
from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from bench.harness import Result, start_stack, summary
from libs.search.port import STAGES, SearchDocument
from libs.search.postgres import PostgresSearchIndex
from libs.search.query import build_query
from libs.stack.embedded import EmbeddedPostgres

FAMILIES = ["bert", "roberta", "gpt", "resnet", "vit", "whisper", "llama", "t5", "yolo", "efficientnet", "clip",
            "wav2vec", "mobilenet", "deberta", "electra", "xlnet", "albert", "bart", "swin", "convnext"]
VARIANTS = ["base", "large", "small", "tiny", "chinese", "english", "multilingual", "distilled", "cased", "uncased"]
FRAMEWORKS = ["pytorch", "tensorflow", "jax", "onnx", "sklearn"]
TASKS = ["text-classification", "image-classification", "speech-recognition", "translation", "summarization",
         "object-detection", "regression", "question-answering"]
TYPES = ["transformer", "vision", "audio", "classification", "regression"]
TEAMS = [f"team{i}" for i in range(20)]
STAGE_WEIGHTS = [50, 15, 15, 15, 5]

#: What the bench asks: (label, query parameters). Typical user searches, the costly ones included.
QUERIES: list[tuple[str, dict]] = [
    ("text q=bert", {"q": "bert"}),
    ("typo q=bertt + framework", {"q": "bertt", "framework": "pytorch"}),
    ("seed 001 query", {"q": "bert", "framework": "pytorch", "task": "text-classification", "sort_by": "accuracy",
                        "order": "desc", "page": 1, "page_size": 20}),
    ("filters + sort by metric", {"framework": "pytorch", "task": "translation", "sort_by": "accuracy"}),
    ("metric range + stage", {"metric": "accuracy>=0.95", "stage": "production", "sort_by": "f1"}),
    ("tag + created_at", {"tag": "team:team7", "sort_by": "created_at"}),
    ("all, sort by metric", {"sort_by": "accuracy", "order": "desc"}),
    ("all, page 50", {"page": 50, "page_size": 20}),
]


def documents(count: int, seed: int = 7) -> list[SearchDocument]:
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    docs = []
    for i in range(count):
        family, variant = rng.choice(FAMILIES), rng.choice(VARIANTS)
        name = f"{family}-{variant}-{i}"
        created = start + timedelta(minutes=i)
        docs.append(SearchDocument(
            model_id=uuid.UUID(int=rng.getrandbits(128), version=4), name=name, type=rng.choice(TYPES),
            framework=rng.choice(FRAMEWORKS), task=rng.choice(TASKS), owner=f"user{rng.randrange(500)}",
            description=f"{family} {variant} model number {i} for {rng.choice(TASKS).replace('-', ' ')}",
            model_tags={"team": rng.choice(TEAMS), "language": rng.choice(["en", "zh", "fr", "de"])},
            version=f"{rng.randrange(1, 5)}.{rng.randrange(10)}.{rng.randrange(10)}", version_id=uuid.uuid4(),
            status=rng.choices(STAGES, STAGE_WEIGHTS)[0],
            metrics={"accuracy": round(rng.uniform(0.5, 1.0), 4), "f1": round(rng.uniform(0.4, 1.0), 4),
                     "latency_p99_ms": round(rng.uniform(0.5, 50), 2)},
            version_tags=tuple(rng.sample(["stable", "experimental", "backup", "gold"], rng.randrange(3))),
            created_at=created, updated_at=created + timedelta(hours=rng.randrange(100)),
        ))
    return docs


async def load(dsn: str, count: int, batch: int = 2000) -> float:
    index = PostgresSearchIndex(dsn, pool_size=2)
    await index.open()
    t0 = time.perf_counter()
    try:
        docs = documents(count)
        for start in range(0, len(docs), batch):
            await index.upsert(docs[start:start + batch])
        await index.pool.execute("VACUUM ANALYZE search.documents")
        await index.pool.execute("VACUUM ANALYZE search.metric_values")
        assert await index.count() >= count
    finally:
        await index.close()
    return time.perf_counter() - t0


async def measure(api: httpx.AsyncClient, rounds: int) -> list[Result]:
    for _, params in QUERIES:  # warm the caches and the prepared statements
        (await api.get("/api/v1/models/search", params=params)).raise_for_status()
    per_query: dict[str, list[float]] = {label: [] for label, _ in QUERIES}
    totals: dict[str, int] = {}
    for _ in range(rounds):
        for label, params in QUERIES:
            t0 = time.perf_counter()
            response = await api.get("/api/v1/models/search", params=params)
            per_query[label].append(time.perf_counter() - t0)
            response.raise_for_status()
            totals[label] = response.json()["total"]
    baseline = []  # the same hop to another service, for scale: the registry's model list
    for _ in range(rounds):
        t0 = time.perf_counter()
        (await api.get("/api/v1/models", params={"page_size": 20})).raise_for_status()
        baseline.append(time.perf_counter() - t0)
    everything = [x for values in per_query.values() for x in values]
    results = [Result("search, 100k models: all queries (1 client)", "req/s", len(everything) / sum(everything),
                      summary(everything))]
    for label, values in per_query.items():
        results.append(Result(f"search: {label} ({totals[label]} hits)", "req/s", len(values) / sum(values),
                              summary(values)))
    results.append(Result("baseline: GET /api/v1/models?page_size=20 (registry)", "req/s",
                          len(baseline) / sum(baseline), summary(baseline)))
    return results


def _query(params: dict):
    repeated = {k: [v] if k in ("metric", "tag") else v for k, v in params.items()}
    return build_query(**repeated)


async def measure_index(dsn: str, rounds: int) -> Result:
    """The same queries on the index adapter alone: how much of the time is the search itself."""
    index = PostgresSearchIndex(dsn, pool_size=4)
    await index.open()
    try:
        latencies = []
        for _ in range(rounds):
            for _, params in QUERIES:
                t0 = time.perf_counter()
                await index.search(_query(params))
                latencies.append(time.perf_counter() - t0)
    finally:
        await index.close()
    return Result("search, 100k models: all queries, index adapter alone", "req/s",
                  len(latencies) / sum(latencies), summary(latencies))


async def run(quick: bool = False, models: int = 100_000) -> list[Result]:
    workdir = Path(tempfile.mkdtemp(prefix="cairn-bench-search-"))
    postgres = EmbeddedPostgres(workdir / "postgres", durable=False)
    dsn = postgres.start()
    stack = None
    try:
        stack = start_stack(extra_env={"CAIRN_DATABASE_URL": dsn})
        seconds = await load(dsn, models)
        async with httpx.AsyncClient(base_url=stack.gateway, timeout=60,
                                     headers={"authorization": f"Bearer {stack.token}"}) as api:
            results = await measure(api, 20 if quick else 100)
        results.append(await measure_index(dsn, 20 if quick else 100))
        results.append(Result(f"search: bulk load of {models} documents", "docs/s", models / seconds,
                              {"seconds": seconds}))
        return results
    finally:
        if stack is not None:
            stack.stop()
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", type=int, default=100_000)
    args = parser.parse_args()
    results = asyncio.run(run(args.quick, args.models))
    print(f"\n{'scenario':<60} {'value':>10}  {'unit':<8} {'p50 ms':>8} {'p99 ms':>8}")
    for r in results:
        print(f"{r.name:<60} {r.value:>10.1f}  {r.unit:<8} {r.detail.get('p50_ms', float('nan')):>8.2f} "
              f"{r.detail.get('p99_ms', float('nan')):>8.2f}")


if __name__ == "__main__":
    main()
