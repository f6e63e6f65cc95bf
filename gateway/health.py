"""What the gateway reports about itself: process CPU and memory, disk, and the kernel's clock state.

CPU is the process's user + system time over wall time since the previous sample, in percent of
one core. RSS comes from /proc/self/statm. The clock state is the kernel's own view
(adjtimex(2), read-only): whether NTP disciplines the clock and the kernel's maximum error
estimate. A gateway cannot read the broker's clock over MQTT 3.1.1, so the offset itself is
measured by the cloud: each batch's `sent_at` is stamped at the moment it is handed to MQTT.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_TIME_ERROR = 5  # adjtimex(2) return value: the clock is not synchronized


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@dataclass(slots=True)
class ProcessSampler:
    """CPU percent between calls, RSS, and free disk space where the spool lives."""

    disk_path: Path
    _last_cpu_s: float = field(default_factory=_cpu_s)
    _last_wall_s: float = field(default_factory=time.monotonic)

    def sample(self) -> dict[str, Any]:
        cpu, wall = _cpu_s(), time.monotonic()
        elapsed = wall - self._last_wall_s
        pct = 100.0 * (cpu - self._last_cpu_s) / elapsed if elapsed > 0 else 0.0
        self._last_cpu_s, self._last_wall_s = cpu, wall
        return {
            "cpu_pct": round(pct, 2),
            "rss_mb": round(rss_bytes() / 1_048_576, 1),
            "disk_free_mb": round(shutil.disk_usage(self.disk_path).free / 1_048_576, 1),
        }


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:  # noqa: PTH123  (a hot, tiny read)
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # the peak, on Linux in KiB


class _Timex(ctypes.Structure):
    # struct timex (linux/timex.h): the leading fields, then padding for the rest.
    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 256),
    )


def kernel_clock() -> dict[str, Any]:
    """{'clock_synchronized': bool, 'clock_max_error_s': float} from adjtimex, or {} if unknown."""
    name = ctypes.util.find_library("c")
    if name is None:
        return {}
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        tx = _Timex()  # modes = 0: read only, no privilege needed
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return {}
    if state < 0:
        return {}
    return {"clock_synchronized": state != _TIME_ERROR, "clock_max_error_s": tx.maxerror / 1e6}
