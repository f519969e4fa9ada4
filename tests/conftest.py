"""Shared fixtures: real infrastructure once per session, services in-process on real ports."""
from __future__ import annotations

import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.support.infra import Infra, start_infra


def scratch_dir(prefix: str) -> Path:
    """A temp folder outside pytest's own (pytest keeps that one 0700, which locks out the unprivileged
    user embedded Postgres runs as when the tests run as root)."""
    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.fixture(scope="session")
def infra() -> Infra:
    workdir = scratch_dir("cairn-test-infra-")
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        yield start_infra(stack, workdir)


@pytest.fixture(scope="session")
def service_env(infra: Infra) -> dict[str, str]:
    """Settings every in-process service gets (they read CAIRN_* like the real processes)."""
    return {
        "database_url": infra.database_url,
        "kafka_bootstrap": infra.kafka_bootstrap,
        "redis_url": infra.redis_url,
        "internal_token": "test-internal-token",
    }


@pytest.fixture(scope="session")
def shared_objects_root() -> Path:
    """One artifact folder for the in-process services that read artifacts from their consumers. Two
    instances of one service started by different test modules share its consumer groups (and its
    schema), so either may take an event, say a rollback command that re-hashes the target's blob:
    both must see the same bytes. Blobs are named by their sha256, so sharing is safe."""
    root = scratch_dir("cairn-test-objects-")
    yield root
    shutil.rmtree(root, ignore_errors=True)
