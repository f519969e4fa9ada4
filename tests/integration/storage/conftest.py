"""Fixtures for the storage tests: one real S3 server (moto_server on loopback) per session."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from libs.storage.testing import MotoS3Server


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3Server]:
    with MotoS3Server() as server:
        yield server
