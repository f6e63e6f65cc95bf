"""The demo's data folder: who runs on it, what an earlier run left in it, what a run starts from.

- One demo at a time per folder: an exclusive `flock` on `demo.lock`, held by the demo process
  for its whole run and released by the kernel however it ends (kill -9 included). A second
  demo on the folder is told the first one's pid and URLs (`DemoRunningError`).
- `demo.json` is the demo's pid file: its pid and those of every server and service it started
  (each with its start time, so that a recycled pid is never taken for ours), and its URLs.
- `stop_leftovers` stops what an earlier run left running on this folder, by that file and by a
  look at every process whose command line or environment names the folder (runs of versions
  that kept no such file).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from cloud.dev import processes
from cloud.dev.processes import ProcessId

LOCK = "demo.lock"
STATE = "demo.json"
# The programs the demo starts: a stray process of the folder is stopped only if it is one of
# them (an editor or a `tail -f` on the demo's logs is left alone).
SERVER_BINARIES = ("mosquitto", "influxd")
SERVICE_COMMANDS = ("cloud", "gateway")  # `python -m edge.cli [-v] cloud ...|gateway ...`


class DemoFolderError(RuntimeError):
    """What keeps a demo from starting on a folder, said in one line."""


class DemoRunningError(DemoFolderError):
    def __init__(self, folder: Path, pid: int | None, urls: dict[str, str]) -> None:
        self.folder = folder
        self.pid = pid
        self.urls = urls
        who = f"pid {pid}" if pid is not None else "its pid not recorded yet"
        where = ", ".join(f"{name} {url}" for name, url in urls.items()) or "URLs not known yet"
        super().__init__(
            f"a demo is already running on {folder} ({who}; {where}): "
            "use it, stop it, or give this one another --data-dir"
        )


@dataclass(frozen=True, slots=True)
class Leftover:
    name: str
    pid: int

    def __str__(self) -> str:
        return f"{self.name} {self.pid}"


class DemoFolder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_file: IO[bytes] | None = None
        self._mutex = threading.Lock()
        self._state: dict[str, Any] = {}

    @property
    def state_path(self) -> Path:
        return self.path / STATE

    # --- one demo per folder -----------------------------------------------------------------

    def claim(self) -> None:
        """Take the folder for this process, or raise `DemoRunningError` naming who has it."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = (self.path / LOCK).open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            other = self.recorded()
            urls = other.get("urls") if isinstance(other.get("urls"), dict) else {}
            pid = other.get("pid") if isinstance(other.get("pid"), int) else None
            raise DemoRunningError(self.path, pid, dict(urls or {})) from None
        self._lock_file = lock

    def release(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing the descriptor releases the flock
            self._lock_file = None

    # --- the pid file --------------------------------------------------------------------------

    def recorded(self) -> dict[str, Any]:
        """What `demo.json` says ({} when it is missing or unreadable)."""
        with contextlib.suppress(OSError, orjson.JSONDecodeError):
            data = orjson.loads(self.state_path.read_bytes())
            if isinstance(data, dict):
                return data
        return {}

    def begin(self) -> None:
        """This process is the folder's demo now: a fresh `demo.json` naming it."""
        me = ProcessId.of(os.getpid())
        with self._mutex:
            self._state = {
                "pid": os.getpid(),
                "start_ticks": me.start_ticks if me else None,
                "urls": {},
                "processes": {},
            }
            self._write()

    def record(self, name: str, pid: int) -> None:
        """A server or service started (or restarted) as `pid`."""
        ident = ProcessId.of(pid)
        with self._mutex:
            self._state.setdefault("processes", {})[name] = {
                "pid": pid,
                "start_ticks": ident.start_ticks if ident else None,
            }
            self._write()

    def record_url(self, name: str, url: str) -> None:
        with self._mutex:
            self._state.setdefault("urls", {})[name] = url
            self._write()

    def end(self) -> None:
        """The run stopped everything it started: the pid file names nobody any more."""
        with self._mutex:
            self._state = {}
            self.state_path.unlink(missing_ok=True)

    def _write(self) -> None:
        tmp = self.state_path.with_name(f".{STATE}.tmp")
        tmp.write_bytes(orjson.dumps(self._state, option=orjson.OPT_INDENT_2))
        tmp.replace(self.state_path)

    # --- what an earlier run left ---------------------------------------------------------------

    def leftovers(self) -> list[tuple[Leftover, ProcessId]]:
        """Processes of an earlier run on this folder that are still alive."""
        found: dict[int, tuple[Leftover, ProcessId]] = {}
        mine = processes.ancestors()
        procs = self.recorded().get("processes")
        for name, entry in (procs if isinstance(procs, dict) else {}).items():
            with contextlib.suppress(TypeError, KeyError, ValueError):
                ident = ProcessId(int(entry["pid"]), int(entry["start_ticks"]))
                if ident.is_alive and ident.pid not in mine:
                    found[ident.pid] = (Leftover(str(name), ident.pid), ident)
        for pid in processes.pids():
            if pid in found or pid in mine:
                continue
            name = self._stray_name(pid)
            stray = ProcessId.of(pid) if name is not None else None
            if name is not None and stray is not None:
                found[pid] = (Leftover(name, pid), stray)
        return sorted(found.values(), key=lambda f: f[0].pid)

    def _stray_name(self, pid: int) -> str | None:
        """What the demo calls `pid` when it is one of its programs working on this folder."""
        args = processes.cmdline(pid)
        if not args:
            return None
        program = Path(args[0]).name
        if program in SERVER_BINARIES:
            name = program
        elif "edge.cli" in args and "demo" not in args:
            name = next((a for a in args[args.index("edge.cli") + 1 :] if a in SERVICE_COMMANDS), "")
            if not name:
                return None
        else:
            return None
        folder = str(self.path)
        words = [*args, *processes.environ(pid)]
        if any(w == folder or f"{folder}/" in w for w in words):
            return name
        return None

    def stop_leftovers(self) -> list[Leftover]:
        found = self.leftovers()
        processes.stop([ident for _, ident in found])
        return [leftover for leftover, _ in found]

    # --- what a run starts from ---------------------------------------------------------------

    def empty(self) -> None:
        """`--fresh`: everything but the lock (held) and the pid file (being written) goes."""
        for entry in self.path.iterdir():
            if entry.name in (LOCK, STATE):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def reset(self, names: tuple[str, ...]) -> None:
        """Remove these files and folders (a run's stream: broker, time series, spools, logs)."""
        for name in names:
            target = self.path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
