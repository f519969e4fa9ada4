"""The services the stack runs, in start order. The gateway comes last so that it finds its upstreams;
it stops first so that no request arrives while the others shut down."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    port_offset: int  # internal port = CAIRN_SERVICE_PORT_BASE + offset
    url_env: str | None  # how the gateway finds it; set by the user → run elsewhere, not started here
    args: tuple[str, ...] = ("serve",)
    http: bool = True  # training workers have no HTTP port; they are only checked for being alive


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("registry", "services.registry", 1, "CAIRN_REGISTRY_URL"),
    ServiceSpec("audit", "services.audit", 2, "CAIRN_AUDIT_URL"),
    ServiceSpec("version", "services.version", 3, "CAIRN_VERSION_URL"),
    ServiceSpec("lifecycle", "services.lifecycle", 4, "CAIRN_LIFECYCLE_URL"),
    ServiceSpec("training-scheduler", "services.training_scheduler", 5, "CAIRN_TRAINING_SCHEDULER_URL"),
    ServiceSpec("evaluation", "services.evaluation", 6, "CAIRN_EVALUATION_URL"),
    ServiceSpec("search-indexer", "services.search_indexer", 7, "CAIRN_SEARCH_INDEXER_URL"),
    # one CPU training worker by default; GPU workers run where a GPU is (`python -m services.worker --pool gpu`)
    ServiceSpec("worker-cpu", "services.worker", 0, None, args=("serve", "--pool", "cpu"), http=False),
)
GATEWAY = ServiceSpec("gateway", "services.gateway", 0, None)
