"""Start our own Mosquitto and InfluxDB: own config in a folder, loopback port, readiness probe.

Used by `sitroom demo` and by the test fixtures alike, so the servers the tests prove are the
servers the demo runs. A missing binary raises `MissingBinaryError` telling the user to run
`make setup`; nothing here ever skips.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx

from cloud.dev.processes import die_with_parent


class MissingBinaryError(RuntimeError):
    def __init__(self, binary: str, package: str) -> None:
        self.binary = binary
        super().__init__(f"{binary} not found on PATH (Debian package {package}): run `make setup`")


class ServerStartError(RuntimeError):
    def __init__(self, name: str, why: str, log: str) -> None:
        self.log = log
        super().__init__(f"{name} did not start: {why}\n--- {name} log ---\n{log[-4000:]}")


def free_port(preferred: int | None = None) -> int:
    """`preferred` when nothing listens there, else a free loopback port chosen by the kernel."""
    if preferred is not None and is_port_free(preferred):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _binary(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise MissingBinaryError(name, package)
    return found


class Server:
    """A child server process whose log goes to a file in its data dir: the base of Mosquitto,
    Influxd and PostgresCluster. A subclass gives its command and readiness probe, and where
    it differs its stop signal, its process options (`_popen_options`) and a `_prepare` step."""

    name = "server"
    stop_signal = signal.SIGTERM
    ready_poll_s = 0.05

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Before the process starts (e.g. `initdb`); the data dir exists."""

    def _popen_options(self) -> dict[str, Any]:
        """Extra `subprocess.Popen` options (working dir, environment, user)."""
        return {}

    def start(self, timeout_s: float = 20.0) -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare()
        cmd = self._command()
        self._log_file = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it in order
            # ... and the kernel kills it if we die without stopping it (kill -9, a crash):
            # no server of a test run or of a demo outlives it (cloud/dev/processes.py).
            preexec_fn=die_with_parent(),  # noqa: PLW1509 (prctl only: see processes.py)
            **self._popen_options(),
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()  # closes the log file too
                raise ServerStartError(self.name, f"exited with {code}", self.log())
            if self._is_ready():
                return self
            time.sleep(self.ready_poll_s)
        self.stop()
        raise ServerStartError(self.name, f"not ready within {timeout_s:g} s", self.log())

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout_s)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def kill(self) -> None:
        """Die like a power cut: no goodbye, no flush."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stop()

    def restart(self, timeout_s: float = 20.0) -> Self:
        self.stop()
        return self.start(timeout_s)

    @property
    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class Mosquitto(Server):
    name = "mosquitto"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        max_queued_messages: int = 1_000_000,
        max_queued_bytes: int = 1_073_741_824,
        max_inflight_messages: int = 1000,
        message_size_limit: int = 16 * 1_048_576,
    ) -> None:
        super().__init__(data_dir)
        self.port = port if port is not None else free_port()
        self.max_queued_messages = max_queued_messages
        self.max_queued_bytes = max_queued_bytes
        self.max_inflight_messages = max_inflight_messages
        self.message_size_limit = message_size_limit

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "mosquitto.conf"

    def write_config(self) -> Path:
        # Mosquitto's default max_queued_messages (1000) silently drops messages for a slow or
        # absent persistent subscriber (shared/NOTES.md): size the queues for outage x rate.
        self.config_path.write_text(
            f"""# written by sitroom (cloud/dev/servers.py)
listener {self.port} 127.0.0.1
allow_anonymous true
persistence true
persistence_location {self.data_dir}/
autosave_interval 5
max_queued_messages {self.max_queued_messages}
max_queued_bytes {self.max_queued_bytes}
max_inflight_messages {self.max_inflight_messages}
message_size_limit {self.message_size_limit}
persistent_client_expiration 7d
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
# As root, mosquitto drops to user `mosquitto`, which cannot write this folder: stay who we are.
user {getpass.getuser()}
"""
        )
        return self.config_path

    def _command(self) -> list[str]:
        binary = _binary("mosquitto", "mosquitto")
        self.write_config()
        return [binary, "-c", str(self.config_path)]

    def _is_ready(self) -> bool:
        # An MQTT CONNECT answered by CONNACK is readiness, not merely a bound socket.
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                client_id = b"sitroom-probe"
                var = b"\x00\x04MQTT\x04\x02\x00\x05"
                payload = len(client_id).to_bytes(2, "big") + client_id
                body = var + payload
                s.sendall(bytes([0x10, len(body)]) + body)
                return s.recv(4)[:1] == b"\x20"
        except OSError:
            return False


class ProvisionedMosquitto(Mosquitto):
    """A broker on the config `sitroom provision` wrote (password file, ACL, no anonymous
    client, cloud/provision/broker.py), on the port that config names; its log in `data_dir`."""

    def __init__(self, data_dir: Path, config: Path, port: int) -> None:
        super().__init__(data_dir, port)
        self._config = config

    @property
    def config_path(self) -> Path:
        return self._config

    def write_config(self) -> Path:
        return self._config  # generated by the provisioning, never rewritten here


class Influxd(Server):
    name = "influxd"

    def __init__(self, data_dir: Path, port: int | None = None, *, auth: bool = False) -> None:
        super().__init__(data_dir)
        self.port = port if port is not None else free_port()
        self.rpc_port = free_port()
        self.auth = auth  # [http] auth-enabled: users and privileges, as production runs it

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "influxdb.conf"

    def write_config(self) -> Path:
        d = self.data_dir
        auth = "\n  auth-enabled = true" if self.auth else ""
        # InfluxDB silently ignores unknown keys, so every key here is checked against Debian's
        # 1.6 /etc/influxdb/influxdb.conf (which spells the reporting switch `reporting-enabled`).
        self.config_path.write_text(
            f"""# written by sitroom (cloud/dev/servers.py)
reporting-enabled = false
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{d}/meta"

[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"{auth}
  log-enabled = false
  # No /debug/pprof (command line, heap, CPU profiles). 1.6 has no switch for /debug/vars.
  pprof-enabled = false
  max-body-size = 50000000

[continuous_queries]
  enabled = true
  log-enabled = false

[logging]
  level = "warn"
"""
        )
        return self.config_path

    def _command(self) -> list[str]:
        binary = _binary("influxd", "influxdb")
        self.write_config()
        return [binary, "-config", str(self.config_path)]

    def _is_ready(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.url}/ping", timeout=0.5, trust_env=False).status_code == 204
        return False


def env_without_proxies() -> dict[str, str]:
    """Our child processes talk to loopback only; a proxy in the user's env must not intercept."""
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
