"""Named services as child processes, restarted when they die, as compose's `restart:` does.

Production runs every service under docker compose with `restart: unless-stopped`: a crashed
ingest comes back, its persistent MQTT session hands it what arrived meanwhile, and nothing is
lost. The demo runs the same services as processes, so it keeps them the same way: a service
that exits without being asked to is started again after a back-off that doubles from
`Backoff.first_s` up to `max_s` (and starts over once a run lasted `reset_after_s`, as
Docker's does), and every restart is counted. A service that keeps failing
(`max_restarts` in a row) is given up, so that the demo can say so instead of looping.

Every child dies with the supervisor (`processes.die_with_parent`): restarts are forked by the
supervisor's own thread, which lives until every child has been stopped (`close`).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Self

from cloud.dev.processes import die_with_parent

log = logging.getLogger(__name__)


class RestartPolicy(StrEnum):
    """compose's `restart:` values that make sense for a process tree."""

    NO = "no"
    ON_FAILURE = "on-failure"  # exit status other than 0, or killed by a signal
    UNLESS_STOPPED = "unless-stopped"  # any exit the supervisor did not ask for


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One service: a name, a command, its environment; its output goes to `log`."""

    name: str
    command: Sequence[str]
    env: Mapping[str, str] | None = None  # None: the supervisor's own environment
    log: Path | None = None
    restart: RestartPolicy = RestartPolicy.UNLESS_STOPPED
    stop_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Backoff:
    first_s: float = 0.5
    factor: float = 2.0
    max_s: float = 10.0
    reset_after_s: float = 10.0  # a run at least this long: the next delay is `first_s` again
    max_restarts: int = 5  # failures in a row (no run reached `reset_after_s`) before giving up

    def delay_s(self, in_a_row: int) -> float:
        return float(min(self.max_s, self.first_s * self.factor ** max(0, in_a_row - 1)))


class SupervisorError(RuntimeError):
    def __init__(self, name: str, why: str) -> None:
        self.name = name
        super().__init__(f"service {name!r}: {why}")


def describe_exit(code: int) -> str:
    """`exit status 1`, `killed by SIGKILL`: how a process ended, as a person says it."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


@dataclass(slots=True)
class _Service:
    spec: ServiceSpec
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    in_a_row: int = 0
    restart_at: float | None = None  # monotonic time of a pending restart
    is_stopping: bool = False
    failure: str | None = None  # set once given up (or exited for good under its policy)
    exits: list[int] = field(default_factory=list)


class Supervisor:
    """`with Supervisor(...) as sup: sup.start(spec)`: start, watch, restart, stop in order.

    `on_start(name, pid)` is called after every start and restart (a pid file to keep up to
    date); `on_event(text)` with one line per exit and restart, for the user to read.
    """

    def __init__(
        self,
        *,
        backoff: Backoff | None = None,
        on_start: Callable[[str, int], None] | None = None,
        on_event: Callable[[str], None] | None = None,
        poll_s: float = 0.1,
    ) -> None:
        self.backoff = backoff or Backoff()
        self.on_start = on_start
        self.on_event = on_event
        self.poll_s = poll_s
        self._services: dict[str, _Service] = {}
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._thread.start()

    # --- starting and stopping ---------------------------------------------------------------

    def start(self, spec: ServiceSpec) -> int:
        """Start a service (a name not used yet); its pid."""
        with self._lock:
            if spec.name in self._services:
                raise SupervisorError(spec.name, "already started")
            service = _Service(spec)
            self._services[spec.name] = service
            return self._spawn(service)

    def _spawn(self, service: _Service) -> int:
        spec = service.spec
        log_file = spec.log.open("ab") if spec.log is not None else subprocess.DEVNULL
        try:
            service.proc = subprocess.Popen(
                list(spec.command),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(spec.env) if spec.env is not None else None,
                # Own session: Ctrl-C in a terminal reaches the supervisor only, which stops
                # the services in order; the kernel kills them if the supervisor dies.
                start_new_session=True,
                preexec_fn=die_with_parent(),  # noqa: PLW1509 (prctl only: see processes.py)
            )
        except OSError as exc:
            raise SupervisorError(spec.name, f"cannot start {spec.command[0]}: {exc}") from None
        finally:
            if not isinstance(log_file, int):
                log_file.close()
        service.started_at = time.monotonic()
        service.restart_at = None
        if self.on_start is not None:
            self.on_start(spec.name, service.proc.pid)
        return service.proc.pid

    def stop(self, names: Sequence[str] | None = None, timeout_s: float | None = None) -> None:
        """Stop these services (all by default) for good: SIGTERM together, then wait for each
        and SIGKILL what outlives its `stop_timeout_s`."""
        with self._lock:
            chosen = [self._services[n] for n in (names or list(self._services)) if n in self._services]
            for s in chosen:
                s.is_stopping = True
                s.restart_at = None
                if s.proc is not None and s.proc.poll() is None:
                    s.proc.send_signal(signal.SIGTERM)
        for s in chosen:
            if s.proc is None:
                continue
            try:
                s.proc.wait(timeout_s if timeout_s is not None else s.spec.stop_timeout_s)
            except subprocess.TimeoutExpired:
                s.proc.kill()
                s.proc.wait()

    def close(self) -> None:
        """Stop every service, then the watching thread (the children's parent thread)."""
        self.stop()
        self._closed.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- what the supervisor knows -----------------------------------------------------------

    def pid(self, name: str) -> int | None:
        with self._lock:
            s = self._services.get(name)
            return s.proc.pid if s is not None and s.proc is not None else None

    def is_running(self, name: str) -> bool:
        with self._lock:
            s = self._services.get(name)
            return s is not None and s.proc is not None and s.proc.poll() is None

    @property
    def restarts(self) -> dict[str, int]:
        """Restarts per service, in start order."""
        with self._lock:
            return {name: s.restarts for name, s in self._services.items()}

    @property
    def failed(self) -> dict[str, str]:
        """The services given up, with why: they will not come back by themselves."""
        with self._lock:
            return {name: s.failure for name, s in self._services.items() if s.failure is not None}

    # --- the watching thread -----------------------------------------------------------------

    def _watch(self) -> None:
        while not self._closed.wait(self.poll_s):
            with self._lock:
                for service in self._services.values():
                    try:
                        self._tend(service)
                    except SupervisorError as exc:  # a restart that could not even fork
                        service.failure = str(exc)
                        service.restart_at = None
                        self._say(str(exc))

    def _tend(self, s: _Service) -> None:
        now = time.monotonic()
        if s.is_stopping or s.failure is not None or s.proc is None:
            return
        if s.restart_at is not None:
            if now >= s.restart_at:
                pid = self._spawn(s)
                self._say(f"{s.spec.name} restarted (pid {pid}, restart {s.restarts})")
            return
        code = s.proc.poll()
        if code is None:
            return
        s.exits.append(code)
        how = describe_exit(code)
        wanted = s.spec.restart is RestartPolicy.UNLESS_STOPPED or (
            s.spec.restart is RestartPolicy.ON_FAILURE and code != 0
        )
        if not wanted:
            s.failure = f"{how}, not restarted (restart: {s.spec.restart.value})"
            self._say(f"{s.spec.name} stopped: {s.failure}")
            return
        s.in_a_row = 1 if now - s.started_at >= self.backoff.reset_after_s else s.in_a_row + 1
        if s.in_a_row > self.backoff.max_restarts:
            s.failure = f"{how}, {s.in_a_row - 1} restarts in a row failed: given up"
            self._say(f"{s.spec.name} stopped: {s.failure}")
            return
        delay = self.backoff.delay_s(s.in_a_row)
        s.restarts += 1
        s.restart_at = now + delay
        self._say(f"{s.spec.name} stopped ({how}): restarting in {delay:g} s")

    def _say(self, text: str) -> None:
        log.info("%s", text)
        if self.on_event is not None:
            try:
                self.on_event(text)
            except Exception:  # a reporting hook must never stop the supervision
                log.exception("on_event failed")
