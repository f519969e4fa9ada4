"""Picks the search adapter: an ``http(s)://`` URL means OpenSearch, none means Postgres."""
from __future__ import annotations

from libs.search.opensearch import OpenSearchIndex
from libs.search.port import SearchIndex
from libs.search.postgres import PostgresSearchIndex


def open_search_index(search_url: str | None, *, database_url: str, index: str = "cairn-models",
                      schema: str = "search") -> SearchIndex:
    """Not yet opened: call ``await index.open()``."""
    if search_url:
        if not search_url.startswith(("http://", "https://")):
            raise ValueError("CAIRN_SEARCH_URL must be an http(s) URL of OpenSearch")
        return OpenSearchIndex(search_url, index=index)
    return PostgresSearchIndex(database_url, schema=schema)


def redact(url: str | None) -> str:
    if not url:
        return "postgres"
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
