from pydantic import Field

from libs.kit.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    port: int = 8080
    registry_url: str = "http://127.0.0.1:8181"
    audit_url: str = "http://127.0.0.1:8182"
    version_url: str = "http://127.0.0.1:8183"
    lifecycle_url: str = "http://127.0.0.1:8184"
    training_scheduler_url: str = "http://127.0.0.1:8185"
    evaluation_url: str = "http://127.0.0.1:8186"
    search_indexer_url: str = "http://127.0.0.1:8187"
    rollback_wait_s: float = Field(5.0, ge=0, le=60, description="Default time a rollback request waits for its outcome")
    upstream_timeout_s: float = Field(30.0, gt=0)
    rate_limit_per_minute: int = Field(6000, ge=1, description="Requests per API key per minute")
    auth_cache_ttl_s: float = Field(5.0, ge=0, description="How long a verified key is trusted before re-checking")
    idempotency_ttl_s: int = Field(24 * 3600, ge=60)
    authz_cache_ttl_s: float = Field(
        5.0, ge=0, description="How long a model's owner and grants are trusted in-process before re-reading them")
    protected_aliases: list[str] = Field(
        ["production", "stable"], description="Aliases whose move or removal needs publish on the model")
    key_rotation_max_grace_s: int = Field(
        7 * 24 * 3600, ge=0, description="Longest grace period a rotated key's old secret may keep working")
