"""Child processes that die with their parent, and a pid told apart from a recycled one.

The demo's servers and services must not outlive it, whatever kills it (issue 20): SIGKILL
cannot be caught, so no code of ours runs then. Linux does it for us: `prctl(PR_SET_PDEATHSIG,
SIGKILL)` in the child makes the kernel kill it when its parent dies (prctl(2)). Quirks of that
layer which shape the callers:

- the "parent" is the *thread* that forked the child: a child started from a thread that ends
  before it is killed then. Start children from the main thread, or from a thread that lives as
  long as they should (`cloud/dev/supervisor.py`'s);
- the parent may die between fork and prctl: the child then finds another parent and exits;
- the setting is cleared when the child's credentials change (mosquitto's `user` naming another
  user than the one starting it), and it is kept across execve.

A pid alone names a process only while it lives; `ProcessId` adds its start time
(/proc/PID/stat, field 22), so that a pid file read after a crash never names a stranger.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
PROC = Path("/proc")


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` for `subprocess.Popen`: the child is SIGKILLed when the thread that forked
    it ends (None off Linux, where nothing equivalent exists)."""
    if _LIBC is None:
        return None
    prctl = _LIBC.prctl  # looked up here: the child between fork and exec only calls it
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody would kill us later
            os._exit(1)

    return preexec


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 (state) on; field 2, the command, may hold spaces and ')'."""
    try:
        raw = (PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2 :].decode().split()


def start_ticks(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot; None when no such process lives (a zombie
    is dead: it waits for its parent to read its status, and holds nothing)."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of proc(5), counted from field 3


@dataclass(frozen=True, slots=True)
class ProcessId:
    """A process named so that a recycled pid is not mistaken for it."""

    pid: int
    start_ticks: int

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        ticks = start_ticks(pid)
        return None if ticks is None else cls(pid, ticks)

    @property
    def is_alive(self) -> bool:
        return start_ticks(self.pid) == self.start_ticks


def stop(processes: Iterable[ProcessId], timeout_s: float = 5.0) -> list[ProcessId]:
    """SIGTERM each living process, SIGKILL those still there after `timeout_s`; the ones that
    were alive (whether they were ours to wait for or not)."""
    alive = [p for p in processes if p.is_alive]
    for p in alive:
        _signal(p, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(p.is_alive for p in alive):
        time.sleep(0.05)
    for p in alive:
        if p.is_alive:
            _signal(p, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(p.is_alive for p in alive):
        time.sleep(0.05)
    return alive


def _signal(p: ProcessId, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(p.pid, sig)


def cmdline(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def environ(pid: int) -> list[str]:
    """The environment `pid` was started with; empty when it is not ours to read."""
    try:
        raw = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def ancestors() -> set[int]:
    """This process and its ancestors: never a leftover to stop."""
    out = {os.getpid()}
    pid = os.getppid()
    while pid > 1 and pid not in out:
        out.add(pid)
        fields = _stat_fields(pid)
        if fields is None:
            break
        pid = int(fields[1])
    return out


def pids() -> Iterator[int]:
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            yield int(entry.name)
