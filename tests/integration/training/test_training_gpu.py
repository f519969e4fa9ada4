"""GPU pool: a worker on a CUDA machine trains with automatic mixed precision. Skipped without CUDA."""
from __future__ import annotations

import pytest
import torch

from libs.events import topics
from libs.ml.artifact import load_artifact
from tests.integration.training.conftest import body, is_event
from tests.support.kafka import TopicWatcher

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="torch.cuda.is_available() is false: no CUDA device"),
    pytest.mark.usefixtures("stop_workers_after"),
]


async def test_a_gpu_pool_job_trains_on_cuda_with_mixed_precision(training):
    worker = training.start_worker(pool="gpu")
    await worker.wait_until_owning(3)
    model = await training.register_model()
    async with TopicWatcher(training.kafka_bootstrap, topics.TRAINING) as watcher:
        job_id = (await training.queue(model["model_id"], dataset="digits", pool="gpu",
                                       hyperparameters={"epochs": 2, "device": "cuda", "mixed_precision": True}))["job_id"]
        started = await watcher.wait_for(is_event(job_id, "TrainingStarted"), timeout=120)
        completed = await watcher.wait_for(is_event(job_id, "TrainingCompleted"), timeout=300)
    assert body(started)["device"].startswith("cuda")
    chosen = await worker.wait_for_log(lambda e: e.get("msg") == "device chosen" and e.get("job_id") == job_id)
    assert chosen["device"].startswith("cuda") and chosen["mixed_precision"] is True
    version = (await training.versions_of(model["model_id"]))[0]
    assert version["metadata"]["device"].startswith("cuda")
    assert version["version"] == body(completed)["version"]
    loaded = load_artifact(await training.artifact(model["model_id"], version["version"]))  # CUDA weights load on CPU
    assert next(loaded.model.parameters()).device.type == "cpu"
