"""Which sensors exist, on which gateway, sending which kind: the admission's sensor directory.

It holds two things, kept apart because they come from two places:

- **installation records** (`GatewayEntry`): the gateways a city installed and the sensors each
  one lists, read here from gateway configs as plain YAML (`cloud` never imports `gateway`), or
  built from the provisioning registry by `cloud.provision.sensors`. With records, a reading of
  a gateway or sensor they do not list, or list on another gateway, is refused.
- **declarations**: what each gateway says of its sensors on its retained `.../meta`
  (`edge.contract.meta`), above all the kind of each one. A reading of a kind its gateway
  declared otherwise for that sensor is refused, records or not.

A sensor its gateway did not declare (no meta yet, or an older one) is not checked for its
kind: membership is the records' call, and refusing would dead-letter good readings that
arrive before their gateway's meta (a persistent session delivers its queue before the
retained messages of the renewed subscriptions).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edge.contract import UNLISTED_DEVICE_PATTERN, ContractError, GatewayMeta, SensorKind
from edge.contract.meta import UNLISTED_DEVICE_RE

# A utility's vehicles publish as its org's `fleet` pseudo-gateway: sr/v1/{org}/fleet/... .
FLEET_GATEWAY = "fleet"


class UnknownSensorError(ContractError):
    """The reading's gateway or sensor is not in the installation records (or not where it says)."""

    reason = "unknown_sensor"


class SensorKindError(ContractError):
    """The reading's kind is not the one its gateway declared for that sensor (or a fleet's)."""

    reason = "wrong_kind"


class ForeignSensorError(ContractError):
    """The installation records give the sensor to another organisation than the sender's.

    Only a sender that names its sensors freely meets it: a utility's `fleet` pseudo-gateway
    (MQTT or the push API), a partner's NGSI-LD entities (`Admission.for_partners`)."""

    reason = "forbidden"


class SensorDirectoryError(ValueError):
    def __init__(self, source: str, message: str) -> None:
        self.source = source
        super().__init__(f"{source}: {message}")


@dataclass(frozen=True, slots=True)
class SensorEntry:
    gateway: str
    sensor: str
    driver: str


@dataclass(slots=True)
class GatewayEntry:
    org: str
    gateway: str
    source: str
    sensors: dict[str, SensorEntry] = field(default_factory=dict)
    # Sources that accept unlisted devices (UNLISTED_DEVICE_PATTERN sensor ids).
    open_sources: list[SensorEntry] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Declared:
    """One gateway's meta, indexed by the sensor ids its readings carry."""

    kinds: dict[str, tuple[SensorKind, str]]  # sensor or device id -> (kind, driver)
    unlisted: dict[str, tuple[SensorKind, str]]  # sources reporting unlisted devices, by id

    @classmethod
    def of(cls, meta: GatewayMeta) -> Declared:
        kinds: dict[str, tuple[SensorKind, str]] = {}
        for s in meta.sensors:
            kinds[s.id] = (s.kind, s.driver)
            kinds.update(dict.fromkeys(s.devices, (s.kind, s.driver)))
        return cls(kinds, {s.id: (s.kind, s.driver) for s in meta.sensors if s.unlisted_devices})

    def kinds_of(self, sensor: str) -> tuple[tuple[SensorKind, str], ...]:
        """The (kind, driver) the sensor may have; empty when the gateway did not declare it."""
        found = self.kinds.get(sensor)
        if found is not None:
            return (found,)
        if self.unlisted and UNLISTED_DEVICE_RE.fullmatch(sensor):
            return tuple(self.unlisted.values())
        return ()


class SensorDirectory:
    """Installation records (optional) and the gateways' declarations; `check` is the verdict."""

    def __init__(self, gateways: Iterable[GatewayEntry] | None = None, utilities: Iterable[str] = ()) -> None:
        self.has_records = gateways is not None
        self.gateways: dict[str, GatewayEntry] = {}
        self.utilities = frozenset(utilities)  # orgs whose `fleet` pseudo-gateway may publish
        self._sensor_home: dict[tuple[str, str], str] = {}  # (org, sensor) -> gateway
        self._owner: dict[str, str] = {}  # sensor -> the org whose records list it first
        self._declared: dict[tuple[str, str], Declared] = {}  # (org, gateway) -> its meta
        for g in gateways or ():
            if g.gateway in self.gateways:
                raise SensorDirectoryError(
                    g.source, f"gateway {g.gateway!r} also in {self.gateways[g.gateway].source}"
                )
            self.gateways[g.gateway] = g
            for s in g.sensors:
                self._sensor_home.setdefault((g.org, s), g.gateway)
                self._owner.setdefault(s, g.org)

    # --- installation records ------------------------------------------------------------------

    @staticmethod
    def entry_from_config(raw: Any, source: str) -> GatewayEntry:
        """A gateway config (the YAML of `firmware_configs/`) as an installation record."""
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
            if "devices" not in s and "accept_unknown" not in s:
                # A sensor; or a source listing no device, whose unlisted devices are accepted
                # once its gateway declares that it reports them (see `_recorded`).
                entry.sensors[s["id"]] = SensorEntry(entry.gateway, s["id"], s["driver"])
                continue
            # A source of many devices (bosch_parking): `devices: {DevEUI: {sensor: id}}`, and
            # with `accept_unknown` (default true) unlisted ones report as UNLISTED_DEVICE_PATTERN.
            devices = s.get("devices") or {}
            if not isinstance(devices, dict):
                raise SensorDirectoryError(source, f"sensors[{i}].devices must map DevEUIs to devices")
            for eui, device in devices.items():
                sensor = device.get("sensor") if isinstance(device, dict) else None
                if not isinstance(sensor, str):
                    raise SensorDirectoryError(source, f"sensors[{i}].devices.{eui} needs a sensor id")
                entry.sensors[sensor] = SensorEntry(entry.gateway, sensor, s["driver"])
            if s.get("accept_unknown", True):
                entry.open_sources.append(SensorEntry(entry.gateway, s["id"], s["driver"]))
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

    # --- declarations --------------------------------------------------------------------------

    def declare(self, meta: GatewayMeta) -> None:
        """A gateway's meta replaces what it declared before."""
        self._declared[(meta.org, meta.gateway)] = Declared.of(meta)

    def withdraw(self, org: str, gateway: str) -> None:
        """The gateway's retained meta was cleared: none of its sensors' kinds are known now."""
        self._declared.pop((org, gateway), None)

    def _reports_unlisted(self, entry: GatewayEntry) -> bool:
        """The gateway declares a source of unlisted devices that its records list (keyless)."""
        declared = self._declared.get((entry.org, entry.gateway))
        return declared is not None and not declared.unlisted.keys().isdisjoint(entry.sensors)

    # --- the check -----------------------------------------------------------------------------

    def check(self, org: str, gateway: str, sensor: str, kind: SensorKind | str) -> ContractError | None:
        """None when a reading of this sensor and kind may be stored, else why it is refused."""
        kind_s = str(kind)
        if self.has_records:
            why = self._recorded(org, gateway, sensor, kind_s)
            if why is not None:
                return why
        declared = self._declared.get((org, gateway))
        if declared is None:
            return None
        kinds = declared.kinds_of(sensor)
        if not kinds or any(k.value == kind_s for k, _ in kinds):
            return None
        k, driver = kinds[0]
        return SensorKindError(
            f"sensor {sensor!r} ({driver}) is declared by gateway {gateway!r} as {k.value!r}",
            field="kind",
            value=kind_s,
        )

    def owner_error(self, org: str, sensor: str) -> ContractError | None:
        """A sensor the records give to another organisation is not `org`'s to write."""
        owner = self._owner.get(sensor) if self.has_records else None
        if owner is None or owner == org:
            return None
        return ForeignSensorError(
            f"sensor {sensor!r} belongs to organisation {owner!r}", field="sensor", value=sensor
        )

    def _recorded(  # noqa: PLR0911 (one early return per reason, in the order they are told)
        self, org: str, gateway: str, sensor: str, kind_s: str
    ) -> ContractError | None:
        if gateway == FLEET_GATEWAY and gateway not in self.gateways:
            if org not in self.utilities:
                return UnknownSensorError(
                    f"unknown utility {org!r}: its fleet is not registered", field="sensor", value=sensor
                )
            if kind_s != SensorKind.FLEET.value:
                return SensorKindError(
                    f"a utility's fleet sends {SensorKind.FLEET.value!r} readings", field="kind", value=kind_s
                )
            # The fleet names its vehicles itself: not one that another organisation installed.
            return self.owner_error(org, sensor)
        entry = self.gateways.get(gateway)
        if entry is None:
            return UnknownSensorError(
                f"unknown gateway {gateway!r} (org {org!r})", field="sensor", value=sensor
            )
        if entry.org != org:
            return UnknownSensorError(
                f"gateway {gateway!r} belongs to org {entry.org!r}, not {org!r}", field="sensor", value=sensor
            )
        if sensor in entry.sensors or (
            UNLISTED_DEVICE_RE.fullmatch(sensor) and (entry.open_sources or self._reports_unlisted(entry))
        ):
            return None
        home = self._sensor_home.get((org, sensor))
        if home is not None:
            why = f"sensor {sensor!r} belongs to gateway {home!r}, not {gateway!r}"
        else:
            why = f"unknown sensor {sensor!r} on gateway {gateway!r}"
        return UnknownSensorError(why, field="sensor", value=sensor)


__all__ = [
    "FLEET_GATEWAY",
    "UNLISTED_DEVICE_PATTERN",
    "Declared",
    "ForeignSensorError",
    "GatewayEntry",
    "SensorDirectory",
    "SensorDirectoryError",
    "SensorEntry",
    "SensorKindError",
    "UnknownSensorError",
]
