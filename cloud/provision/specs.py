"""Small text forms a technician types: a sensor (`driver=sim_parking,id=p-x,place=mercatale`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class SpecError(ValueError):
    def __init__(self, message: str, value: str) -> None:
        self.value = value
        super().__init__(f"{message}: {value!r}")


def parse_sensor(spec: str) -> dict[str, Any]:
    """`key=value` pairs separated by commas; values read as YAML scalars (`30` is a number)."""
    out: dict[str, Any] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SpecError(
                "a sensor is key=value pairs separated by commas, e.g. driver=sim_parking,id=p-1", spec
            )
        try:
            out[key] = yaml.safe_load(value.strip()) if value.strip() else ""
        except yaml.YAMLError:
            out[key] = value.strip()
    if "driver" not in out or "id" not in out:
        raise SpecError("a sensor needs at least driver= and id=", spec)
    return out


def load_base_config(path: Path) -> dict[str, Any]:
    """A gateway config draft whose sensors and settings `gateway add --from` starts from."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"cannot read the base config ({exc})", str(path)) from None
    if not isinstance(raw, dict):
        raise SpecError("a gateway config is a mapping at the top level", str(path))
    return raw
