from pydantic import Field, SecretStr, field_validator

from libs.kit.settings import ServiceSettings
from libs.storage.signing import MIN_SECRET_BYTES


class VersionSettings(ServiceSettings):
    port: int = 8183
    object_store_url: str = Field(description="file:///abs/path or s3://ACCESS:SECRET@host:port/bucket?... (may carry a secret)")
    link_secret: SecretStr = Field(description="HMAC key of folder-store download links")
    public_url: str = Field("http://127.0.0.1:8080", description="The gateway's public base URL, used in folder links")
    registry_url: str = "http://127.0.0.1:8181"
    max_artifact_bytes: int = Field(10 << 30, ge=1, description="Largest artifact accepted")
    max_link_ttl_s: int = Field(7 * 24 * 3600, ge=1, le=7 * 24 * 3600, description="Longest download/upload link")

    @field_validator("link_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"link_secret must be at least {MIN_SECRET_BYTES} bytes")
        return value

    @field_validator("public_url", "registry_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")
