"""Remote configuration: validate a config pushed on the retained `.../config` topic.

A pushed config is the gateway's whole configuration document (JSON, or YAML), validated by the
same model as the local file. It is refused, with the reason, when it does not validate, when
it names another gateway or organisation, when it would move the gateway to another broker
(a wrong broker would cut the gateway off for good; that change belongs to the local file), or
when it points a serial driver at anything but a serial device (`/dev/tty*`,
`/dev/serial/by-id/*`) that the local file does not already name.
A config without a `broker` section keeps the running one. The last applied config is kept in
the state dir, so a gateway restarted while the broker is unreachable starts on it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from edge.drivers.serialconfig import DEVICE_PATHS, SerialDriverConfig, is_device_path
from gateway.config import ConfigError, GatewayConfig, parse

MAX_CONFIG_BYTES = 1_048_576


class RejectedConfigError(ValueError):
    """A pushed config the gateway will not apply; `problems` are `path: message` lines."""

    def __init__(self, version: str | None, problems: list[str]) -> None:
        self.version = version
        self.problems = problems
        super().__init__("; ".join(problems))


def version_of(config: GatewayConfig) -> str:
    """The config's own `version`, or a digest of its content (stable across key order)."""
    if config.version is not None:
        return config.version
    canonical = orjson.dumps(config.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return "sha256:" + hashlib.sha256(canonical).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Accepted:
    config: GatewayConfig
    version: str
    raw: dict[str, Any]


def validate(payload: bytes, running: GatewayConfig) -> Accepted:
    """Validate a pushed config against the running one; raises RejectedConfigError."""
    if len(payload) > MAX_CONFIG_BYTES:
        raise RejectedConfigError(None, [f"payload: {len(payload)} bytes exceeds {MAX_CONFIG_BYTES}"])
    try:
        raw = yaml.safe_load(payload.decode("utf-8"))  # YAML 1.2 reads JSON too
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RejectedConfigError(None, [f"payload: not JSON or YAML: {exc}"]) from None
    if not isinstance(raw, dict):
        raise RejectedConfigError(None, [f"payload: expected a mapping, got {type(raw).__name__}"])
    claimed = raw.get("version")
    label = str(claimed) if isinstance(claimed, str | int) else None
    problems = []
    if "broker" in raw:
        try:
            pushed_broker = type(running.broker).model_validate(raw["broker"])
        except ValueError:
            pushed_broker = None
        if pushed_broker != running.broker:
            problems.append("broker: cannot be changed remotely (edit the gateway's local config)")
    else:
        raw = {**raw, "broker": running.broker.model_dump(mode="json", exclude_none=True)}
    for key, mine in (("id", running.id), ("org", running.org)):
        if key in raw and raw[key] != mine:
            problems.append(f"{key}: {raw[key]!r} is not this gateway's {key} {mine!r}")
    if problems:
        raise RejectedConfigError(label, problems)
    try:
        config = parse(raw, "remote config", running.areas)
    except ConfigError as exc:
        raise RejectedConfigError(label, exc.problems) from None
    problems = _ports_outside_devices(config, running)
    if problems:
        raise RejectedConfigError(label, problems)
    return Accepted(config, version_of(config), raw)


def _ports_outside_devices(config: GatewayConfig, running: GatewayConfig) -> list[str]:
    """A pushed config may point a serial driver only at a serial device, or at a path the
    local config already names: whoever may write the retained config must not make the gateway
    open /etc/shadow or a FIFO."""
    local = {s.port for s in running.sensors if isinstance(s, SerialDriverConfig)}
    return [
        f"sensors[{i}].port: {s.port!r} is not a serial device ({' or '.join(DEVICE_PATHS)}); "
        "other paths only in the gateway's local config"
        for i, s in enumerate(config.sensors)
        if isinstance(s, SerialDriverConfig) and s.port not in local and not is_device_path(s.port)
    ]


class LastGood:
    """The last applied remote config, as a JSON file in the state dir (atomic replace)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def save(self, accepted: Accepted) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps({"version": accepted.version, "config": accepted.raw}))
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        tmp.replace(self.path)

    def load(self, running: GatewayConfig) -> Accepted | None:
        """The saved config, when there is one and it still validates against `running`."""
        try:
            saved = orjson.loads(self.path.read_bytes())
            return validate(orjson.dumps(saved["config"]), running)
        except (OSError, ValueError, KeyError, TypeError):
            return None
