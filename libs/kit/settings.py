"""Settings shared by every service; each service subclasses ``ServiceSettings`` with its own fields.

Everything comes from the environment with the prefix ``CAIRN_`` (for example ``CAIRN_DATABASE_URL``).
Settings objects are passed into ``create_app(settings)``; nothing reads the environment at import time.
"""
from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Connection details and knobs every service needs."""

    model_config = SettingsConfigDict(env_prefix="CAIRN_", extra="ignore")

    database_url: SecretStr = Field(description="PostgreSQL DSN (may carry a password, hence secret)")
    kafka_bootstrap: str = Field(description="Kafka bootstrap servers, comma separated")
    redis_url: SecretStr = Field(description="Redis URL (may carry a password)")
    internal_token: SecretStr = Field(description="Shared secret the gateway presents to internal APIs")

    host: str = "127.0.0.1"
    port: int = 0
    log_level: str = "INFO"
    topic_partitions: int = Field(3, ge=1, le=64)
    outbox_retention_hours: int = Field(24 * 7, ge=1)
    db_pool_max: int = Field(10, ge=1, le=100)
    max_body_bytes: int = Field(1 << 20, ge=1024, description="Largest JSON body accepted")
