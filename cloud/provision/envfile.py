"""A `.env` of random secrets for docker compose, from a template whose empty `NAME=` lines ask for one.

Idempotent: a variable that already has a value in the existing file keeps it (a password
InfluxDB was initialised with must not change under it), and only the missing ones are drawn.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from cloud.provision.files import write_private
from cloud.provision.passwords import new_password


def _values(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() and not name.lstrip().startswith("#"):
            out[name.strip()] = value.strip()
    return out


def fill(template: Path, target: Path) -> list[str]:
    """Write `target` (0600) from `template`; returns the names that got a new random value."""
    existing: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError):
        existing = _values(target.read_text())
    drawn: list[str] = []
    lines: list[str] = []
    for line in template.read_text().splitlines():
        name, sep, value = line.partition("=")
        key = name.strip()
        if not sep or not key or key.startswith("#"):
            lines.append(line)
            continue
        kept = existing.get(key) or value.strip()
        if not kept:
            kept = new_password()
            drawn.append(key)
        lines.append(f"{key}={kept}")
    write_private(target, "\n".join(lines) + "\n")
    return drawn
