"""``python -m services.worker --pool cpu|gpu [--name NAME]``: run one training worker until SIGTERM/SIGINT.

Like the services it also takes ``serve`` (the default) and ``migrate`` (nothing to do: the worker has no
database), so the stack supervisor can treat it like any other process."""
from __future__ import annotations

import argparse
import asyncio
import sys

from libs.kit.logs import configure_logging
from services.worker.settings import WorkerSettings, default_worker_name
from services.worker.worker import Worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.worker", description=__doc__)
    parser.add_argument("command", nargs="?", choices=["serve", "migrate"], default="serve")
    parser.add_argument("--pool", choices=["cpu", "gpu"], help="resource pool to serve (default: CAIRN_WORKER_POOL or cpu)")
    parser.add_argument("--name", help="worker name in claims, events and versions")
    args = parser.parse_args(argv)
    if args.command == "migrate":
        print("worker: no database, nothing to migrate")
        return 0
    settings = WorkerSettings()
    pool = args.pool or settings.worker_pool
    name = args.name or settings.worker_name or default_worker_name(pool)
    settings = settings.model_copy(update={"worker_pool": pool, "worker_name": name})
    configure_logging("worker", settings.log_level)
    return asyncio.run(Worker(settings).run())


if __name__ == "__main__":
    sys.exit(main())
