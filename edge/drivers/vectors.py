"""Test vectors kept beside each decoder (`vectors.yaml`), as the TTN device repository does.

Each example has `input` (raw text as Latin-1, or a mapping sent as JSON for message drivers),
the `readings` expected (ts, fields, and optionally sensor and tags) and the reject `reasons`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from edge.drivers.registry import DriverConfig, folder, get


@dataclass(frozen=True, slots=True)
class Example:
    description: str
    input: bytes
    readings: list[dict[str, Any]]
    rejects: list[str]


def input_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("latin-1")
    return orjson.dumps(value)


def load(path: Path) -> list[Example]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        Example(
            description=str(e["description"]),
            input=input_bytes(e["input"]),
            readings=list(e.get("readings") or []),
            rejects=list(e.get("rejects") or []),
        )
        for e in raw["examples"]
    ]


def sample_configs(driver_name: str) -> list[DriverConfig]:
    """The entries of a driver's sample.yaml, validated by its Config."""
    drv = get(driver_name)
    raw = yaml.safe_load((folder(drv) / "sample.yaml").read_text(encoding="utf-8"))
    return [drv.Config.model_validate(e) for e in raw["sensors"] if e.get("driver") == driver_name]
