"""Which adapter a URL picks (no server needed: adapters do no I/O until opened)."""
from __future__ import annotations

import pytest

from libs.search.factory import open_search_index, redact
from libs.search.opensearch import OpenSearchIndex
from libs.search.postgres import PostgresSearchIndex


def test_no_url_means_postgres_in_its_own_schema():
    index = open_search_index(None, database_url="postgresql://x@/db")
    assert isinstance(index, PostgresSearchIndex) and index.schema == "search"


def test_an_http_url_means_opensearch_with_credentials_kept_out_of_the_base_url():
    index = open_search_index("https://user:s3cret@search.internal:9200/", database_url="unused", index="models-x")
    assert isinstance(index, OpenSearchIndex)
    assert index.base_url == "https://search.internal:9200" and index.index == "models-x"
    assert index._auth == ("user", "s3cret")
    assert redact("https://user:s3cret@search.internal:9200") == "https://***@search.internal:9200"


@pytest.mark.parametrize("url", ["opensearch://host", "search.internal:9200", "file:///tmp/x"])
def test_other_urls_are_refused(url):
    with pytest.raises(ValueError):
        open_search_index(url, database_url="unused")
