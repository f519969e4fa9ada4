"""Health probe baked into the Cairn images (Docker HEALTHCHECK, compose healthchecks, Kubernetes exec probes).

    python /opt/cairn/healthcheck.py             GET http://127.0.0.1:$CAIRN_PORT/healthz (the process is up)
    python /opt/cairn/healthcheck.py /readyz     GET another path: /readyz answers 503 until the dependencies answer
    python /opt/cairn/healthcheck.py --deps      no HTTP port (training workers): Postgres and Kafka accept TCP
    python /opt/cairn/healthcheck.py --alive     no HTTP port: the container runs; if CAIRN_HEARTBEAT_FILE is set,
                                                 that file was touched within CAIRN_HEARTBEAT_MAX_AGE_S (default 120)

Exit status 0 when healthy, 1 otherwise, with one line saying why. Standard library only, and every
network call has a short timeout so the probe finishes inside the probe's own timeout.
"""
from __future__ import annotations

import os
import socket
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

TIMEOUT_S = float(os.environ.get("CAIRN_HEALTHCHECK_TIMEOUT_S", "3"))


def check_http(path: str) -> str | None:
    port = os.environ.get("CAIRN_PORT", "8080")
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 - loopback only
            if response.status == 200:
                return None
            return f"{url} answered {response.status}"
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except OSError as exc:
        return f"{url} unreachable: {exc}"


def _tcp(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S):
            return None
    except OSError as exc:
        return f"{host}:{port} unreachable: {exc}"


def check_deps() -> str | None:
    problems = []
    dsn = os.environ.get("CAIRN_DATABASE_URL", "")
    if dsn:
        parts = urlsplit(dsn)
        if parts.hostname:  # a unix-socket DSN has no host; nothing to probe over TCP
            problems.append(_tcp(parts.hostname, parts.port or 5432))
    bootstrap = [b.strip() for b in os.environ.get("CAIRN_KAFKA_BOOTSTRAP", "").split(",") if b.strip()]
    if bootstrap:
        errors = []
        for server in bootstrap:
            host, _, port = server.rpartition(":")
            error = _tcp(host.strip("[]") or server, int(port or 9092))
            if error is None:
                break
            errors.append(error)
        else:
            problems.append("; ".join(errors))
    problems = [p for p in problems if p]
    return "; ".join(problems) or None


def check_alive() -> str | None:
    heartbeat = os.environ.get("CAIRN_HEARTBEAT_FILE")
    if not heartbeat:
        return None
    max_age = float(os.environ.get("CAIRN_HEARTBEAT_MAX_AGE_S", "120"))
    try:
        age = time.time() - os.stat(heartbeat).st_mtime
    except OSError as exc:
        return f"no heartbeat file {heartbeat}: {exc}"
    return None if age <= max_age else f"heartbeat {heartbeat} is {age:.0f}s old (limit {max_age:.0f}s)"


def main(argv: list[str]) -> int:
    arg = argv[1] if len(argv) > 1 else os.environ.get("CAIRN_HEALTHCHECK_PATH", "/healthz")
    if arg == "--deps":
        problem = check_deps()
    elif arg == "--alive":
        problem = check_alive()
    elif arg.startswith("/"):
        problem = check_http(arg)
    else:
        print(f"usage: {argv[0]} [/path | --deps | --alive]", file=sys.stderr)
        return 2
    if problem:
        print(f"unhealthy: {problem}")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
