"""The search contract against Postgres (always) and OpenSearch (when CAIRN_OPENSEARCH_URL names one)."""
from __future__ import annotations

import os

import pytest

from libs.search.opensearch import OpenSearchIndex
from libs.search.postgres import PostgresSearchIndex
from tests.integration.search.contract import SearchIndexContract, unique  # noqa: F401


class TestPostgresSearchIndex(SearchIndexContract):
    @pytest.fixture
    async def index(self, infra, unique):
        index = PostgresSearchIndex(infra.database_url, schema=f"search_t{unique}", pool_size=2)
        await index.open()
        yield index
        await index.pool.execute(f"DROP SCHEMA {index.schema} CASCADE")
        await index.close()


@pytest.mark.skipif(not os.environ.get("CAIRN_OPENSEARCH_URL"), reason="no OpenSearch here (set CAIRN_OPENSEARCH_URL)")
class TestOpenSearchIndex(SearchIndexContract):
    @pytest.fixture
    async def index(self, unique):
        index = OpenSearchIndex(os.environ["CAIRN_OPENSEARCH_URL"], index=f"cairn-test-{unique}")
        await index.open()
        yield index
        await index.client.delete(f"/{index.index}")
        await index.close()
