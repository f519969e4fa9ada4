from pydantic import Field, field_validator

from libs.kit.settings import ServiceSettings
from libs.ml.device import choose_device


class EvaluationSettings(ServiceSettings):
    port: int = 8186
    object_store_url: str = Field(description="Where artifacts are stored (read-only here: the version service owns them)")
    version_url: str = Field("http://127.0.0.1:8183", description="Version service: receives the metrics, answers about versions not seen yet")
    registry_url: str = Field("http://127.0.0.1:8181", description="Registry: resolves model names")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    latency_runs: int = Field(50, ge=1, le=10_000, description="Timed batch-1 forward passes per evaluation")
    max_concurrent_evaluations: int = Field(1, ge=1, le=16, description="Evaluations computing at once in this process")
    max_artifact_bytes: int = Field(2 << 30, ge=1, description="Larger weights are refused (they are read into memory)")
    max_attempts: int = Field(3, ge=1, le=100, description="Tries of an evaluation that fails for a transient reason")
    lease_s: float = Field(120.0, ge=1, description="A running evaluation not renewed for this long is taken over")
    poll_interval_s: float = Field(2.0, gt=0, le=60, description="Safety-net poll of the run queue (NOTIFY wakes it sooner)")
    compare_wait_s: float = Field(300.0, gt=0, description="How long a comparison waits for an evaluation in progress")
    metrics_sync_attempts: int = Field(8, ge=1, le=100, description="Tries to store metrics on the version service")
    upstream_timeout_s: float = Field(10.0, gt=0, le=300)

    @field_validator("version_url", "registry_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        # a CUDA device on a machine without one stops start-up rather than failing every evaluation
        try:
            choose_device(value)
        except RuntimeError as exc:
            raise ValueError(str(exc)) from None
        return value
