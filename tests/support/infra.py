"""Finds infrastructure for tests, in this order: URLs from the environment (CAIRN_DATABASE_URL,
CAIRN_KAFKA_BOOTSTRAP, CAIRN_REDIS_URL), testcontainers when a Docker engine answers, else the embedded
binaries that ``make run`` uses. Each part is chosen on its own."""
from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from libs.stack.embedded import EmbeddedKafka, EmbeddedPostgres, EmbeddedRedis
from libs.stack.procs import free_port


@dataclass
class Infra:
    database_url: str
    kafka_bootstrap: str
    redis_url: str
    origin: dict[str, str]


def docker_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (subprocess.TimeoutExpired, OSError):
        return False


def start_infra(stack: ExitStack, workdir: Path) -> Infra:
    origin: dict[str, str] = {}
    docker = None  # decided lazily: only asked when some part is not given by URL

    def use_docker() -> bool:
        nonlocal docker
        if docker is None:
            docker = docker_answers()
        return docker

    dsn = os.environ.get("CAIRN_DATABASE_URL")
    if dsn:
        origin["postgres"] = "environment"
    elif use_docker():
        from testcontainers.postgres import PostgresContainer

        container = stack.enter_context(PostgresContainer("postgres:16-alpine", driver=None))
        dsn, origin["postgres"] = container.get_connection_url(), "testcontainers"
    else:
        pg = EmbeddedPostgres(workdir / "postgres", durable=False)
        dsn = pg.start()
        stack.callback(pg.stop)
        origin["postgres"] = "embedded"

    bootstrap = os.environ.get("CAIRN_KAFKA_BOOTSTRAP")
    if bootstrap:
        origin["kafka"] = "environment"
    elif use_docker():
        from testcontainers.kafka import KafkaContainer

        container = stack.enter_context(KafkaContainer().with_kraft())
        bootstrap, origin["kafka"] = container.get_bootstrap_server(), "testcontainers"
    else:
        kafka = EmbeddedKafka(free_port(), workdir / "tansu.log")
        bootstrap = kafka.start()
        stack.callback(kafka.stop)
        origin["kafka"] = "embedded"

    redis_url = os.environ.get("CAIRN_REDIS_URL")
    if redis_url:
        origin["redis"] = "environment"
    elif use_docker():
        from testcontainers.redis import RedisContainer

        container = stack.enter_context(RedisContainer())
        redis_url = f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"
        origin["redis"] = "testcontainers"
    else:
        redis = EmbeddedRedis(workdir / "redis", free_port())
        redis_url = redis.start()
        stack.callback(redis.stop)
        origin["redis"] = "embedded"
    return Infra(dsn, bootstrap, redis_url, origin)
