"""``MotoS3Server`` starts a real server and never leaves the process behind."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

from libs.storage.testing import MotoS3Server


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_exists(pid):
            return True
        time.sleep(0.05)
    return False


def test_the_server_answers_and_stop_ends_the_process() -> None:
    with MotoS3Server() as server:
        pid = server.pid
        assert pid is not None and process_exists(pid)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(server.http_url + "/", timeout=5) as response:
            assert response.status == 200
        assert server.url_for("b", part_size=5).startswith(f"s3://testing:testing@{server.endpoint}/b?")
    assert not process_exists(pid)
    server.stop()  # idempotent
    with pytest.raises(RuntimeError):
        server.endpoint


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="relies on Linux PR_SET_PDEATHSIG")
def test_the_server_dies_with_a_killed_parent() -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from libs.storage.testing import MotoS3Server
        server = MotoS3Server().start()
        print(server.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        server_pid = int(parent.stdout.readline())
        assert process_exists(server_pid)
        parent.kill()  # SIGKILL: no atexit, no cleanup code runs in the parent
        parent.wait()
        assert wait_until_gone(server_pid), "moto_server outlived its killed parent"
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
