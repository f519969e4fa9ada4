"""``MotoS3Server``: a real S3 HTTP server (``moto_server``) on loopback, for tests and benchmarks.

No Docker needed: ``moto_server`` ships with ``moto[server]`` next to the Python interpreter. The
server keeps everything in memory and accepts any credentials; it does not enforce presigned URL
expiry or check signatures, so tests that need those go against a real MinIO.

    with MotoS3Server() as s3:
        store = open_object_store(s3.url_for("models"))
"""
from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import urlencode

# Runs in the child before exec: ask Linux to SIGTERM the server if the process that started it
# dies, even by SIGKILL, so a killed test run leaves no server behind. (Tied to the starting
# thread: start servers from a thread that outlives them, such as the main thread.)
_BOOTSTRAP = """
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass  # not Linux: atexit and stop() still clean up
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)  # the parent already died before prctl took effect
os.execv(sys.argv[2], sys.argv[2:])
"""


class MotoS3Server:
    """One ``moto_server`` subprocess on ``127.0.0.1`` and a free port; use as a context manager or call ``start``/``stop``."""

    access_key = "testing"
    """moto's conventional dummy access key (any value is accepted)."""
    secret_key = "testing"
    """moto's conventional dummy secret key."""
    region = "us-east-1"
    """Region the URLs and clients use."""

    def __init__(self, *, startup_timeout: float = 30.0) -> None:
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._port: int | None = None

    @property
    def endpoint(self) -> str:
        """``"127.0.0.1:<port>"``, the form ``S3ObjectStore``/``Minio`` take."""
        if self._port is None:
            raise RuntimeError("the moto server is not running")
        return f"127.0.0.1:{self._port}"

    @property
    def http_url(self) -> str:
        """``"http://127.0.0.1:<port>"``, for plain HTTP clients."""
        return f"http://{self.endpoint}"

    @property
    def pid(self) -> int | None:
        """The server process id while it runs, else ``None``."""
        return self._process.pid if self._process is not None else None

    def url_for(self, bucket: str, **params: str | int | bool) -> str:
        """Return an ``s3://`` URL for ``open_object_store``; ``params`` add query parameters (``part_size=...``)."""
        query = {"secure": "false", "region": self.region}
        query.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()})
        return f"s3://{self.access_key}:{self.secret_key}@{self.endpoint}/{bucket}?{urlencode(query)}"

    def start(self) -> MotoS3Server:
        """Start the server and wait until it answers HTTP; returns ``self``. Retries on a port race."""
        if self._process is not None:
            raise RuntimeError("the moto server is already running")
        executable = Path(sys.executable).parent / "moto_server"
        if not executable.exists():
            raise RuntimeError(f"{executable} not found: install moto[server] into this environment")
        last_error: Exception | None = None
        for _attempt in range(3):
            try:
                self._launch(executable)
                return self
            except _StartupFailed as exc:  # most likely another process took the port meanwhile
                last_error = exc
                self.stop()
        raise RuntimeError(f"moto_server did not start: {last_error}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and wait for it; safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            atexit.unregister(self.stop)
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        self._port = None

    def __enter__(self) -> MotoS3Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _launch(self, executable: Path) -> None:
        port = _free_port()
        # A file, not a pipe: nobody reads the request log, and a full pipe would stall the server.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-c", _BOOTSTRAP, str(os.getpid()), str(executable)]
        command += ["-H", "127.0.0.1", "-p", str(port)]
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        self._port = port
        atexit.register(self.stop)
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise _StartupFailed(f"exited with {self._process.returncode}: {self._read_log()}")
            if _answers_http(self.http_url):
                return
            time.sleep(0.05)
        raise _StartupFailed(f"no answer within {self._startup_timeout} s: {self._read_log()}")

    def _read_log(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read()[-2000:].decode(errors="replace")


class _StartupFailed(Exception):
    pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# No proxies: a loopback server must never be reached through HTTP(S)_PROXY from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _answers_http(url: str) -> bool:
    try:
        with _DIRECT.open(url + "/", timeout=1) as response:
            return bool(response.status)
    except urllib.error.HTTPError:
        return True  # any HTTP answer means it is serving
    except (OSError, ValueError):
        return False


__all__ = ["MotoS3Server"]
