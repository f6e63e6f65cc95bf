"""A throwaway PostgreSQL cluster from the Debian package, for tests and local runs.

`initdb` into a folder, `postgres` on a free loopback port (and a Unix socket in the same
folder), readiness by connecting. PostgreSQL refuses to run as root, so as root the cluster
folder is handed to the `postgres` system user (created by the Debian package) and the
server runs as that user. A missing binary raises `MissingBinaryError` ("run `make setup`").
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any, Self

import psycopg

from cloud.dev.servers import MissingBinaryError, Server, ServerStartError, free_port

SUPERUSER = "sitroom"


def postgres_bindir() -> Path:
    """The newest `/usr/lib/postgresql/N/bin` that has initdb and postgres."""
    found = sorted(
        (p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for bindir in reversed(found):
        if (bindir / "postgres").exists():
            return bindir
    raise MissingBinaryError("/usr/lib/postgresql/*/bin/initdb", "postgresql")


class PostgresCluster(Server):
    name = "postgres"
    # SIGINT is PostgreSQL's "fast shutdown": roll back sessions, checkpoint, exit.
    stop_signal = signal.SIGINT
    ready_poll_s = 0.1

    def __init__(self, data_dir: Path, port: int | None = None, *, durable: bool = False) -> None:
        super().__init__(data_dir)
        self.port = port if port is not None else free_port()
        self.durable = durable
        self.bindir = postgres_bindir()
        self._user: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise MissingBinaryError("system user postgres", "postgresql") from None
            self._user = "postgres"

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _conninfo(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database} connect_timeout=5"

    def _run_as(self) -> dict[str, str]:
        return {"user": self._user} if self._user else {}

    def _chown(self, path: Path) -> None:
        if self._user:
            shutil.chown(path, self._user, self._user)

    def _prepare(self) -> None:
        """`initdb` once: the cluster folder, handed to the `postgres` user when we are root."""
        self._chown(self.data_dir)
        if (self.pgdata / "PG_VERSION").exists():
            return
        result = subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            capture_output=True,
            check=False,
            cwd=self.data_dir,
            env=self._env(),
            **self._run_as(),  # type: ignore[call-overload]
        )
        if result.returncode != 0:
            raise ServerStartError(
                self.name, "initdb failed", (result.stdout + result.stderr).decode(errors="replace")
            )

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C.UTF-8"
        return env

    def _command(self) -> list[str]:
        cmd = [
            str(self.bindir / "postgres"),
            "-D",
            str(self.pgdata),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            str(self.data_dir),
            "-c",
            "max_connections=50",
        ]
        if not self.durable:
            # A test cluster lives for one run: skip the fsyncs that make it slow.
            cmd += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        return cmd

    def _popen_options(self) -> dict[str, Any]:
        return {"cwd": self.data_dir, "env": self._env(), **self._run_as()}

    def start(self, timeout_s: float = 60.0) -> Self:
        return super().start(timeout_s)

    def _is_ready(self) -> bool:
        try:
            with psycopg.connect(self._conninfo(), autocommit=True) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def create_database(self, name: str) -> str:
        """Create database `name` (an identifier we choose) and return its URL."""
        with psycopg.connect(self._conninfo(), autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self._conninfo(), autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    psycopg.sql.Identifier(name)
                )
            )

    def remove(self) -> None:
        self.stop()
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.data_dir)
