"""The search port (``port.py``) and its adapters: Postgres full text + pg_trgm (``postgres.py``, the
default) and OpenSearch (``opensearch.py``). ``factory.open_search_index`` picks one from a URL."""
