from pydantic import Field, SecretStr

from libs.kit.settings import ServiceSettings


class SearchIndexerSettings(ServiceSettings):
    port: int = 8187
    search_url: SecretStr | None = Field(
        None, description="OpenSearch URL (may carry user:password); unset: the Postgres index in schema `search`")
    search_index: str = Field("cairn-models", pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$",
                              description="OpenSearch index name")
    audit_url: str = Field("http://127.0.0.1:8182", description="Where a rebuild reads the event history from")
    rebuild_page_size: int = Field(500, ge=1, le=500)
