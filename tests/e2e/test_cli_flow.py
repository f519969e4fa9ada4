"""The `cairn` CLI as a user runs it (a process, configured by CAIRN_URL and CAIRN_API_KEY) against the
stack as `make run` starts it: register, train with a live per-epoch progress bar that the stack's CPU
worker drives, pull the trained weights with their sha256 verified, and compare two trained versions."""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.kafka import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]

ROOT = Path(__file__).resolve().parents[2]
DIGITS_VISION = {"image_size": 8, "image_channels": 1, "num_classes": 10}


async def cairn(stack, *argv: str, timeout: float = 300) -> tuple[int, str, str]:
    env = {**stack.env, "CAIRN_URL": stack.gateway, "CAIRN_API_KEY": stack.token, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "libs.cli", *argv, cwd=ROOT, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode(), err.decode()


async def train(stack, name: str, epochs: int) -> tuple[dict, str]:
    code, out, err = await cairn(stack, "--json", "train", name, "--dataset", "digits", "--epochs", str(epochs),
                                 "--batch-size", "32", "--learning-rate", "0.003", "--pool", "cpu", "--follow")
    assert code == 0, err
    return json.loads(out), err


async def test_train_follow_pull_and_compare_from_the_cli(stack, tmp_path):
    name = f"cli-digits-{uuid.uuid4().hex[:8]}"
    code, out, err = await cairn(stack, "models", "register", name, "--type", "vision",
                                 "--metadata", json.dumps(DIGITS_VISION))
    assert code == 0, err
    assert name in out

    job, progress = await train(stack, name, epochs=3)
    assert job["state"] == "succeeded" and job["result"]["version"]
    # one progress line per epoch (stderr is not a terminal here), each with the epoch's loss
    epochs = [int(m) for m in re.findall(r"training \[[#.]+\]\s+[\d.]+% (\d)/3 epochs loss \d", progress)]
    assert epochs == [1, 2, 3], progress
    assert progress.splitlines()[0].startswith(f"job {job['job_id']} queued on cpu")
    assert "started: " in progress

    version = job["result"]["version"]
    target = tmp_path / "weights.bin"
    code, out, err = await cairn(stack, "--json", "pull", name, "--version", version, "-o", str(target))
    assert code == 0, err
    assert "100.0%" in err
    code, out, err = await cairn(stack, "--json", "versions", "show", name, version)
    assert code == 0, err
    assert hashlib.sha256(target.read_bytes()).hexdigest() == json.loads(out)["artifact"]["sha256"]

    second, _ = await train(stack, name, epochs=1)
    other = second["result"]["version"]

    async def compared():  # the evaluation service measures both versions first
        code, out, _ = await cairn(stack, "compare", f"{name}@{version}", f"{name}@{other}")
        return out if code == 0 else None

    table = await eventually(compared, timeout=180, interval=2)
    assert table.splitlines()[0] == f"model_1: {name} {version}    model_2: {name} {other}"
    assert re.search(r"^accuracy\s+[\d.]+\s+[\d.]+\s+[-+]", table, re.M), table
