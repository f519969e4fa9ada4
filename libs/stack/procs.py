"""Small process helpers: free ports, waiting for a port or URL, children that die with their parent."""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM):
    """preexec_fn: the child gets ``sig`` when the process that started it dies, even by SIGKILL."""

    def _set() -> None:
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)
        except OSError:
            pass

    return _set


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {host}:{port}")
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except Exception:
        return False


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal the child's whole process group when it leads one (children started with
    ``start_new_session``), so what it started itself (uvicorn workers, helpers) goes too."""
    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, sig)
            return
    except ProcessLookupError:
        return
    except OSError:
        pass
    proc.send_signal(sig)


def stop_process(proc: subprocess.Popen, *, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds, to the child and the process group it leads."""
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(5)
    # the leader may be gone while members of its group linger: they get no grace after their leader
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


def write_secret(path: Path, value: str) -> None:
    """Write a file only its owner can read (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    os.replace(tmp, path)
    os.chmod(path, 0o600)
