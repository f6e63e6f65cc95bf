"""Which sensors exist, on which gateway, of which kind: the cloud's check on every reading.

Ingest asks `SensorDirectory.check(org, gateway, sensor, kind)` and dead-letters the reading
with the reason it returns (None: the reading may be stored). The directory is built from the
gateway configs (`firmware_configs/*.yaml`, or those written by `sitroom provision gateway add`
into the provisioning registry), read here as plain YAML: `cloud` never imports `gateway`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cloud.provision.registry import FLEET_GATEWAY, IdentityRegistry, Role
from edge.contract import SensorKind

# The kind of reading each driver produces. The drivers live in `edge.drivers`, which `cloud`
# may not import; tests/cloud/test_provision_sensors.py checks this table against the drivers.
DRIVER_KINDS: Mapping[str, SensorKind] = {
    "sim_parking": SensorKind.PARKING,
    "sim_parking_spot": SensorKind.PARKING_SPOT,
    "sim_traffic": SensorKind.TRAFFIC,
    "sim_fleet": SensorKind.FLEET,
    "bosch_parking": SensorKind.PARKING_SPOT,
    "traffic_counter": SensorKind.TRAFFIC,
    "nmea": SensorKind.FLEET,
}


# Drivers whose entry is a *source* of many devices, each reading under its own sensor id:
# bosch_parking lists its bays under `devices: {DevEUI: {sensor: id}}`, and with
# `accept_unknown` (default true) an unlisted bay reports as `eui-<deveui>`.
UNLISTED_DEVICE = re.compile(r"eui-[0-9a-f]{16}")


class SensorDirectoryError(ValueError):
    def __init__(self, source: str, message: str) -> None:
        self.source = source
        super().__init__(f"{source}: {message}")


@dataclass(frozen=True, slots=True)
class SensorEntry:
    gateway: str
    sensor: str
    driver: str
    kind: SensorKind | None  # None: a driver this table does not know; its kind is not checked


@dataclass(slots=True)
class GatewayEntry:
    org: str
    gateway: str
    source: str
    sensors: dict[str, SensorEntry] = field(default_factory=dict)
    # Sources that accept unlisted devices (`eui-<deveui>` sensor ids), by the kind they send.
    open_sources: list[SensorEntry] = field(default_factory=list)


class SensorDirectory:
    def __init__(self, gateways: Iterable[GatewayEntry] = (), utilities: Iterable[str] = ()) -> None:
        self.gateways: dict[str, GatewayEntry] = {}
        self.utilities = frozenset(utilities)  # orgs whose `fleet` pseudo-gateway may publish
        self._sensor_home: dict[tuple[str, str], str] = {}  # (org, sensor) -> gateway
        for g in gateways:
            if g.gateway in self.gateways:
                raise SensorDirectoryError(
                    g.source, f"gateway {g.gateway!r} also in {self.gateways[g.gateway].source}"
                )
            self.gateways[g.gateway] = g
            for s in g.sensors:
                self._sensor_home.setdefault((g.org, s), g.gateway)

    # --- building ----------------------------------------------------------------------------

    @staticmethod
    def entry_from_config(raw: Any, source: str) -> GatewayEntry:
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("id"), str)
            or not isinstance(raw.get("org"), str)
        ):
            raise SensorDirectoryError(source, "not a gateway config (needs id and org)")
        entry = GatewayEntry(org=raw["org"], gateway=raw["id"], source=source)
        for i, s in enumerate(raw.get("sensors") or []):
            if (
                not isinstance(s, dict)
                or not isinstance(s.get("id"), str)
                or not isinstance(s.get("driver"), str)
            ):
                raise SensorDirectoryError(source, f"sensors[{i}] needs an id and a driver")
            kind = DRIVER_KINDS.get(s["driver"])
            if s["driver"] != "bosch_parking":
                entry.sensors[s["id"]] = SensorEntry(entry.gateway, s["id"], s["driver"], kind)
                continue
            devices = s.get("devices") or {}
            if not isinstance(devices, dict):
                raise SensorDirectoryError(source, f"sensors[{i}].devices must map DevEUIs to devices")
            for eui, device in devices.items():
                sensor = device.get("sensor") if isinstance(device, dict) else None
                if not isinstance(sensor, str):
                    raise SensorDirectoryError(source, f"sensors[{i}].devices.{eui} needs a sensor id")
                entry.sensors[sensor] = SensorEntry(entry.gateway, sensor, s["driver"], kind)
            if s.get("accept_unknown", True):
                entry.open_sources.append(SensorEntry(entry.gateway, s["id"], s["driver"], kind))
        return entry

    @classmethod
    def from_config_files(cls, paths: Iterable[Path], utilities: Iterable[str] = ()) -> SensorDirectory:
        entries = []
        for path in sorted(paths):
            try:
                raw = yaml.safe_load(path.read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise SensorDirectoryError(str(path), f"cannot read: {exc}") from None
            entries.append(cls.entry_from_config(raw, str(path)))
        return cls(entries, utilities)

    @classmethod
    def from_config_dir(cls, folder: Path) -> SensorDirectory:
        """Every `*.yaml` gateway config in `folder` (e.g. `firmware_configs/`)."""
        return cls.from_config_files(folder.glob("*.yaml"))

    @classmethod
    def from_registry(cls, reg: IdentityRegistry) -> SensorDirectory:
        """The active gateways of a provisioning registry (their written configs) and utilities."""
        reg.load()
        paths = [
            reg.identity_dir(i.username) / "gateway.yaml" for i in reg.active() if i.role is Role.GATEWAY
        ]
        utilities = [i.id for i in reg.active() if i.role is Role.UTILITY]
        return cls.from_config_files(paths, utilities)

    # --- the check ---------------------------------------------------------------------------

    def check(  # noqa: PLR0911 (one early return per reason, in the order they are told)
        self, org: str, gateway: str, sensor: str, kind: SensorKind | str
    ) -> str | None:
        """None when the reading may be stored, else the reason it goes to the dead-letter topic."""
        kind_s = str(kind)
        if gateway == FLEET_GATEWAY and gateway not in self.gateways:
            if org not in self.utilities:
                return f"unknown utility {org!r}: its fleet is not registered"
            if kind_s != SensorKind.FLEET.value:
                return f"a utility's fleet sends fleet readings, not {kind_s!r}"
            return None
        entry = self.gateways.get(gateway)
        if entry is None:
            return f"unknown gateway {gateway!r} (org {org!r})"
        if entry.org != org:
            return f"gateway {gateway!r} belongs to org {entry.org!r}, not {org!r}"
        found = entry.sensors.get(sensor)
        if found is None and entry.open_sources and UNLISTED_DEVICE.fullmatch(sensor):
            found = entry.open_sources[0]
        if found is None:
            home = self._sensor_home.get((org, sensor))
            if home is not None:
                return f"sensor {sensor!r} belongs to gateway {home!r}, not {gateway!r}"
            return f"unknown sensor {sensor!r} on gateway {gateway!r}"
        if found.kind is not None and found.kind.value != kind_s:
            return f"sensor {sensor!r} ({found.driver}) sends {found.kind.value!r} readings, not {kind_s!r}"
        return None
