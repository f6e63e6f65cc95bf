"""What the Situation Room knows, gathered for export: sensors, their places and latest readings, worksites.

- which sensors exist, of which kind, on which gateway: the gateway configs (`firmware_configs/`,
  read as plain YAML: their tags and the gateway's location), each sensor's kind from what its
  gateway declares (`edge.contract.GatewayMeta`, the retained meta);
- where they stand: the `core.geo.SiteSource` handed in (the installation file's sites and the
  places partners' entities gave), else the gateway's own location (a bay is within its
  gateway's reach);
- what they last measured: the `core.readings.LatestReadings` handed in (InfluxDB's newest
  reading of every series; a sensor that only InfluxDB knows, such as a utility's pushed
  vehicle or a partner's car park, is exported too);
- the worksites: `core.worksites.WorksiteDetails`, from the worksite registry.

The wiring (`cloud/apps/exchange.py`) chooses the sources; this module reads none of them itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from cloud.core.geo import Site, SiteSource
from cloud.core.readings import LatestReadings
from cloud.core.worksites import WorksiteDetails
from cloud.exchange.entities import Place, Thing
from edge.contract import KINDS, GatewayMeta, Reading, SensorKind

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Catalogue:
    things: list[Thing] = field(default_factory=list)
    worksites: Sequence[WorksiteDetails] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Installed:
    """A sensor of the installation records, of the kind its gateway declares."""

    org: str
    gateway: str
    sensor: str
    kind: SensorKind
    tags: dict[str, str]
    gateway_place: Place | None


def _gateway_place(raw: dict[str, Any]) -> Place | None:
    where = raw.get("location")
    if not isinstance(where, dict):
        return None
    lat, lon = where.get("lat"), where.get("lon")
    if isinstance(lat, int | float) and isinstance(lon, int | float):
        return Place(lat=float(lat), lon=float(lon))
    return None


def _tags(kind: SensorKind, entry: Any) -> dict[str, str]:
    if not isinstance(entry, dict):
        return {}
    return {k: str(entry[k]) for k in KINDS[kind].tags if isinstance(entry.get(k), str | int)}


def _devices(entry: Any) -> dict[str, Any]:
    """A source's devices by sensor id (`devices: {DevEUI: {sensor: id, ...}}`)."""
    devices = entry.get("devices") if isinstance(entry, dict) else None
    if not isinstance(devices, dict):
        return {}
    return {
        d["sensor"]: d for d in devices.values() if isinstance(d, dict) and isinstance(d.get("sensor"), str)
    }


def installed_sensors(
    config_files: Iterable[Path], declared: Mapping[tuple[str, str], GatewayMeta]
) -> list[Installed]:
    """Every sensor of these gateway configs, of the kind its gateway declares (`declared`, by
    (org, gateway)); a gateway that declares nothing is skipped, saying so."""
    out = []
    for path in sorted(config_files):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not (isinstance(raw, dict) and isinstance(raw.get("id"), str) and isinstance(raw.get("org"), str)):
            log.warning("%s: not a gateway config (needs id and org); skipped", path)
            continue
        meta = declared.get((raw["org"], raw["id"]))
        if meta is None:
            log.warning("%s: gateway %s/%s declares no sensors; skipped", path, raw["org"], raw["id"])
            continue
        place = _gateway_place(raw)
        entries = {
            e["id"]: e
            for e in raw.get("sensors") or []
            if isinstance(e, dict) and isinstance(e.get("id"), str)
        }
        for declared_sensor in meta.sensors:
            entry = entries.get(declared_sensor.id)
            kind = declared_sensor.kind
            if not declared_sensor.devices:
                out.append(
                    Installed(meta.org, meta.gateway, declared_sensor.id, kind, _tags(kind, entry), place)
                )
                continue
            devices = _devices(entry)
            for device in declared_sensor.devices:
                tags = _tags(kind, entry) | _tags(kind, devices.get(device))
                out.append(Installed(meta.org, meta.gateway, device, kind, tags, place))
    return out


def _site_place(site: Site) -> Place:
    return Place(site.lat, site.lon, site.name, site.capacity, is_park_and_ride=site.park_and_ride)


def things(
    installed: Iterable[Installed], latest: Iterable[Reading], sites: Mapping[str, Site]
) -> list[Thing]:
    """One Thing per (org, sensor, kind): installation records and stored readings merged."""
    newest = {(r.org, r.sensor, r.kind): r for r in latest}
    out: dict[tuple[str, str, SensorKind], Thing] = {}
    for s in installed:
        key = (s.org, s.sensor, s.kind)
        site = sites.get(s.sensor)
        place = _site_place(site) if site else (s.gateway_place if s.kind is not SensorKind.FLEET else None)
        out[key] = Thing(s.org, s.gateway, s.sensor, s.kind, place, newest.pop(key, None), s.tags)
    for key, r in newest.items():
        site = sites.get(r.sensor)
        place = _site_place(site) if site and r.kind is not SensorKind.FLEET else None
        out[key] = Thing(r.org, r.gateway, r.sensor, r.kind, place, r)
    return sorted(out.values(), key=lambda t: (t.kind.value, t.org, t.sensor))


def gather(
    *,
    installed: Iterable[Installed],
    latest: LatestReadings | None,
    sites: SiteSource,
    worksites: Sequence[WorksiteDetails],
    since: timedelta = timedelta(days=7),
) -> Catalogue:
    """The catalogue from the sources handed in; without stored readings, nothing is measured."""
    newest = latest.latest(since) if latest is not None else []
    return Catalogue(things(installed, newest, sites.sites()), worksites)


__all__ = ["Catalogue", "Installed", "gather", "installed_sensors", "things"]
