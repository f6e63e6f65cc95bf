"""What the Situation Room knows, gathered for export: sensors, their places and latest readings, worksites.

- which sensors exist, of which kind, on which gateway: the gateway configs (`firmware_configs/`,
  read as plain YAML, with `cloud.provision.sensors.DRIVER_KINDS`);
- where they stand: `cloud/rules/sites.yaml`, else the gateway's own location (a bay is
  within its gateway's reach), else the place a partner's entity gave (`sitroom_site` points,
  written by `receiver.py`);
- what they last measured: InfluxDB, the newest reading of every series (a sensor that only
  InfluxDB knows, such as a utility's pushed vehicle, is exported too);
- the worksites: the worksite registry.

Nothing configured, it is the demo: the repository's gateway configs and sites, Prato's demo
worksites (`cloud.worksites.demo_data`), and no readings.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cloud.exchange.entities import Place, Thing
from cloud.influx.client import InfluxClient, InfluxError
from cloud.provision.sensors import DRIVER_KINDS
from cloud.rules.geo import Site, load_sites
from cloud.worksites.demo_data import load_demo
from cloud.worksites.geo import BBox
from cloud.worksites.models import Worksite
from cloud.worksites.store import WorksiteStore
from edge.contract import KINDS, Reading, SensorKind

log = logging.getLogger(__name__)

SITE_MEASUREMENT = "sitroom_site"
_IDENTITY_TAGS = ("org", "gateway", "sensor")


@dataclass(slots=True)
class Catalogue:
    things: list[Thing] = field(default_factory=list)
    worksites: list[Worksite] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Installed:
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


def installed_sensors(config_dir: Path) -> list[_Installed]:
    """Every sensor of every gateway config in `config_dir` whose driver's kind is known."""
    out = []
    for path in sorted(config_dir.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not (isinstance(raw, dict) and isinstance(raw.get("id"), str) and isinstance(raw.get("org"), str)):
            log.warning("%s: not a gateway config (needs id and org); skipped", path)
            continue
        place = _gateway_place(raw)
        for entry in raw.get("sensors") or []:
            kind = DRIVER_KINDS.get(entry.get("driver", "")) if isinstance(entry, dict) else None
            if kind is None or not isinstance(entry.get("id"), str):
                continue
            tags = {k: str(entry[k]) for k in KINDS[kind].tags if isinstance(entry.get(k), str | int)}
            out.append(_Installed(raw["org"], raw["id"], entry["id"], kind, tags, place))
    return out


def latest_readings(influx: InfluxClient, since: timedelta) -> list[Reading]:
    """The newest reading of every series stored in the last `since`, all kinds."""
    out: dict[tuple[str, str, SensorKind], Reading] = {}
    hours = max(1, int(since.total_seconds() // 3600))
    for kind, spec in KINDS.items():
        # Names come from the contract's declarations and an integer, never from input.
        q = (
            f'SELECT * FROM "{kind.value}" WHERE time > now() - {hours}h '  # noqa: S608
            "GROUP BY * ORDER BY time DESC LIMIT 1"
        )
        try:
            series = influx.series(q)
        except InfluxError as exc:
            log.warning("latest %s readings unavailable: %s", kind.value, exc)
            continue
        for s in series:
            tags = s.get("tags") or {}
            row = dict(zip(s["columns"], s["values"][0], strict=True))
            try:
                reading = Reading(
                    kind=kind,
                    org=tags.get("org", ""),
                    gateway=tags.get("gateway", ""),
                    sensor=tags.get("sensor", ""),
                    ts=datetime.fromtimestamp(row["time"] / 1000, UTC),
                    fields={f.name: row[f.name] for f in spec.fields if row.get(f.name) is not None},
                    tags={k: v for k, v in tags.items() if k in spec.tags and v},
                )
            except ValidationError as exc:
                log.warning("%s %s: not a reading any more: %s", kind.value, tags, exc.errors()[0]["msg"])
                continue
            key = (reading.org, reading.sensor, kind)
            if key not in out or out[key].ts < reading.ts:
                out[key] = reading
    return list(out.values())


def partner_places(influx: InfluxClient) -> dict[tuple[str, str], Place]:
    """(org, sensor) -> the place a partner's entity gave (receiver.py writes them)."""
    try:
        series = influx.series(
            f'SELECT last("lat") AS "lat", last("lon") AS "lon", last("name") AS "name" '  # noqa: S608
            f'FROM "{SITE_MEASUREMENT}" GROUP BY "org", "sensor"'
        )
    except InfluxError:
        return {}
    out = {}
    for s in series:
        tags = s.get("tags") or {}
        row = dict(zip(s["columns"], s["values"][0], strict=True))
        out[(tags.get("org", ""), tags.get("sensor", ""))] = Place(
            lat=float(row["lat"]), lon=float(row["lon"]), name=str(row.get("name") or "")
        )
    return out


def _site_place(site: Site) -> Place:
    return Place(site.lat, site.lon, site.name, site.capacity, is_park_and_ride=site.park_and_ride)


def things(
    installed: Iterable[_Installed],
    latest: Iterable[Reading],
    sites: dict[str, Site],
    partners: dict[tuple[str, str], Place] | None = None,
) -> list[Thing]:
    """One Thing per (org, sensor, kind): installation records and stored readings merged."""
    newest = {(r.org, r.sensor, r.kind): r for r in latest}
    partners = partners or {}
    out: dict[tuple[str, str, SensorKind], Thing] = {}
    for s in installed:
        key = (s.org, s.sensor, s.kind)
        site = sites.get(s.sensor)
        place = _site_place(site) if site else (s.gateway_place if s.kind is not SensorKind.FLEET else None)
        out[key] = Thing(s.org, s.gateway, s.sensor, s.kind, place, newest.pop(key, None), s.tags)
    for key, r in newest.items():
        site = sites.get(r.sensor)
        place = _site_place(site) if site else partners.get((r.org, r.sensor))
        out[key] = Thing(r.org, r.gateway, r.sensor, r.kind, place, r)
    return sorted(out.values(), key=lambda t: (t.kind.value, t.org, t.sensor))


def demo_worksites(now: datetime | None = None) -> list[Worksite]:
    """Prato's demo worksites, from a registry of their own (a temporary SQLite file)."""
    with tempfile.TemporaryDirectory(prefix="sitroom-export-") as folder:
        store = WorksiteStore.open(f"sqlite:///{Path(folder) / 'demo.db'}", area=BBox(-180, -90, 180, 90))
        try:
            load_demo(store, now or datetime.now(UTC))
            return store.search()
        finally:
            store.close()


def registry_worksites(url: str) -> list[Worksite]:
    store = WorksiteStore.open(url, area=BBox(-180, -90, 180, 90))
    try:
        good, bad = store.search_readable()
        for row in bad:
            log.warning("worksite %s not exported: %s", row.id, row.reason)
        return good
    finally:
        store.close()


def gather(
    *,
    config_dir: Path | None,
    influx: InfluxClient | None,
    worksites_db: str | None,
    since: timedelta = timedelta(days=7),
) -> Catalogue:
    """The catalogue from what is configured; each source missing is simply not used, except that
    with no worksite registry the demo's worksites stand in (see the module docstring)."""
    installed = installed_sensors(config_dir) if config_dir is not None and config_dir.is_dir() else []
    latest = latest_readings(influx, since) if influx is not None else []
    partners = partner_places(influx) if influx is not None else {}
    worksites = registry_worksites(worksites_db) if worksites_db else demo_worksites()
    return Catalogue(things(installed, latest, load_sites(), partners), worksites)


__all__ = [
    "SITE_MEASUREMENT",
    "Catalogue",
    "demo_worksites",
    "gather",
    "installed_sensors",
    "latest_readings",
    "partner_places",
    "registry_worksites",
    "things",
]
