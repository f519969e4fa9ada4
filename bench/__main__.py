"""python -m bench [--quick]: start a stack, run every scenario, print a table, save bench/results/latest.json."""
from __future__ import annotations

import argparse
import asyncio
import json
import platform
from datetime import datetime, timezone
from pathlib import Path

import httpx

from bench import scenarios
from bench import search as search_bench
from bench.harness import Result, start_stack


async def run(quick: bool) -> list[Result]:
    stack = start_stack()
    duration = 3.0 if quick else 10.0
    results: list[Result] = []
    try:
        async with httpx.AsyncClient(base_url=stack.gateway, timeout=60,
                                     headers={"authorization": f"Bearer {stack.token}"},
                                     limits=httpx.Limits(max_connections=64)) as api:
            results += await scenarios.registration(stack, api, duration)
            results += await scenarios.version_creation(stack, api, duration)
            results += await scenarios.production_lookup(stack, api, duration)
            results += await scenarios.promote_to_deployer(stack, api, 10 if quick else 30)
            results += await scenarios.artifact_transfer(stack, api, 64 if quick else 256)
            results += await scenarios.train_to_verdict(stack, api, 1 if quick else 3)
    finally:
        stack.stop()
    results += await search_bench.run(quick)  # a stack of its own, on a Postgres the loader can reach
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(run(args.quick))
    print(f"\nCairn benchmarks — {platform.node()}, {platform.processor() or platform.machine()}, "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n")
    print(f"{'scenario':<52} {'value':>12}  {'unit':<11} {'p50 ms':>8} {'p99 ms':>8}")
    for r in results:
        p50 = r.detail.get("p50_ms", float("nan"))
        p99 = r.detail.get("p99_ms", float("nan"))
        print(f"{r.name:<52} {r.value:>12.1f}  {r.unit:<11} {p50:>8.2f} {p99:>8.2f}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps([r.__dict__ for r in results], indent=2))


if __name__ == "__main__":
    main()
