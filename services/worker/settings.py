import os
import socket
from typing import Literal

from pydantic import Field, field_validator

from libs.kit.settings import ServiceSettings


def default_worker_name(pool: str) -> str:
    return f"worker-{pool}-{socket.gethostname()}-{os.getpid()}"


class WorkerSettings(ServiceSettings):
    """``CAIRN_*`` like every service. ``database_url`` and ``redis_url`` are required by the shared base
    but unused: the worker talks to the scheduler, the version service, Kafka and the object store only."""

    worker_pool: Literal["cpu", "gpu"] = Field("cpu", description="Pool to serve; --pool overrides it")
    worker_name: str | None = Field(None, max_length=128, description="Defaults to worker-<pool>-<host>-<pid>; --name overrides it")
    training_scheduler_url: str = "http://127.0.0.1:8185"
    version_url: str = "http://127.0.0.1:8183"
    object_store_url: str = Field(description="Where checkpoints go: file:///abs/path or s3://... (may carry a secret)")
    worker_heartbeat_s: float = Field(3.0, gt=0, description="Interval of lease heartbeats to the scheduler")
    worker_session_timeout_ms: int = Field(10_000, ge=1000, description="Kafka consumer-group session timeout")
    worker_max_poll_interval_ms: int = Field(300_000, ge=1000, description="Kafka max poll interval; the worker keeps polling during jobs")
    worker_poll_ms: int = Field(250, ge=10, le=5000, description="getmany timeout while idle or busy")
    worker_stop_grace_s: float = Field(5.0, ge=0, description="On SIGTERM, time the current epoch gets to finish")
    worker_report_retry_s: float = Field(60.0, ge=0, description="How long reports to the scheduler are retried on transient errors")
    worker_http_timeout_s: float = Field(60.0, gt=0)
    heartbeat_file: str | None = Field(None, description="Touched every few seconds while the consumer loop runs (liveness probe)")
    worker_torch_threads: int | None = Field(None, ge=1, le=256, description="torch.set_num_threads; default: torch's choice")

    @field_validator("training_scheduler_url", "version_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")
