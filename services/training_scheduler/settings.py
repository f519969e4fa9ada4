from pydantic import Field, field_validator

from libs.kit.settings import ServiceSettings


class TrainingSchedulerSettings(ServiceSettings):
    port: int = 8185
    version_url: str = Field("http://127.0.0.1:8183", description="Version service, asked whether a parent_version exists")
    registry_url: str = Field("http://127.0.0.1:8181", description="Registry, asked for the model's type and metadata")
    max_attempts_default: int = Field(3, ge=1, le=20, description="Attempts of a job that does not say")
    heartbeat_timeout_s: float = Field(15.0, gt=0, description="A running attempt without a heartbeat this long is lost")
    retry_backoff_s: float = Field(2.0, ge=0, description="Wait after the first failed attempt; doubles per failure")
    retry_backoff_max_s: float = Field(300.0, ge=0, description="Cap of the retry back-off")
    redispatch_after_s: float = Field(600.0, gt=0, description="A job message nobody claimed this long is sent again")
    tick_s: float = Field(0.5, gt=0, le=60, description="How often due retries and lost leases are checked")
    job_events_ttl_s: int = Field(24 * 3600, ge=60, description="Lifetime of a job's live progress stream in Redis")
    job_events_maxlen: int = Field(1000, ge=10, description="Approximate length cap of a job's live progress stream")
    upstream_timeout_s: float = Field(10.0, gt=0)

    @field_validator("version_url", "registry_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")
