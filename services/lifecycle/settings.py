from pydantic import Field, field_validator

from libs.kit.settings import ServiceSettings
from services.lifecycle.domain import validate_environments


class LifecycleSettings(ServiceSettings):
    port: int = 8184
    environments: list[str] = Field(
        default_factory=lambda: ["staging", "production"],
        description='Deployment environments; CAIRN_ENVIRONMENTS as a JSON list, e.g. ["staging","production"]',
    )
    object_store_url: str = Field(description="Where artifacts are stored (read-only here: rollback targets are verified)")
    version_url: str = Field("http://127.0.0.1:8183", description="Version service, asked about versions not seen yet")
    registry_url: str = Field("http://127.0.0.1:8181", description="Registry, asked about models not seen yet")
    rollout_tick_s: float = Field(0.5, gt=0, le=60, description="How often timed rollouts are checked")

    @field_validator("environments")
    @classmethod
    def _environments(cls, value: list[str]) -> list[str]:
        return validate_environments(value)
