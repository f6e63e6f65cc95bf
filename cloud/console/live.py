"""The live picture: worksites, alerts, parking, traffic and fleets, read once and pushed to all.

One thread reads the sources every `refresh_s` — not one poll per open console — compares with
what it last sent, and publishes only what changed through the broadcaster. A source that is
down (InfluxDB restarting) leaves the last picture in place and is reported in `errors`.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cloud.console.broadcast import Broadcaster
from cloud.core.alerts import AlertBook, AlertNotFoundError, StoredAlert
from cloud.core.errors import NotFoundError
from cloud.core.geo import FixedSites, SiteSource
from cloud.core.orgs import OrgDirectory, Role
from cloud.core.transit import TransitNetwork
from cloud.core.worksites import WorksiteBook
from cloud.io.influx.client import InfluxClient, InfluxError
from cloud.io.influx.policy import DataPolicy

log = logging.getLogger(__name__)

# Demo and replayed data carry simulated timestamps up to days in the past: look that far back.
DEFAULT_LOOKBACK = "7d"
DURATION = re.compile(r"[1-9][0-9]{0,5}(m|h|d|w)")


def alert_view(a: StoredAlert) -> dict[str, Any]:
    return a.to_dict() | {"thread": f"alert:{a.id}"}


@dataclass(slots=True)
class Sources:
    worksites: WorksiteBook | None = None
    alerts: AlertBook | None = None
    influx: InfluxClient | None = None
    sites: SiteSource = field(default_factory=FixedSites.from_file)  # ours, and partners' places
    lookback: str = DEFAULT_LOOKBACK
    transit: TransitNetwork | None = None  # names the bus routes and stops each worksite takes
    # With a data policy (decision 0017), private kinds (fleets) are read from every
    # organisation's database, and each operator sees only its own organisation's (a
    # municipality's operators, all): `visible_to`.
    policy: DataPolicy | None = None
    orgs: OrgDirectory | None = None

    def __post_init__(self) -> None:
        if not DURATION.fullmatch(self.lookback):
            raise ValueError(f"lookback {self.lookback!r} is not an InfluxQL duration like 7d or 36h")

    def worksite_features(self) -> dict[str, Any]:
        if self.worksites is None:
            return {"type": "FeatureCollection", "features": []}
        fc = self.worksites.feature_collection()
        if self.transit is not None:
            for f in fc["features"]:
                f["properties"] |= self.transit.impact(f["geometry"]).properties()
        return fc

    def active_alerts(self) -> list[dict[str, Any]]:
        return [alert_view(a) for a in self.alerts.active()] if self.alerts else []

    def _from(self, measurement: str) -> str:
        if self.policy is None or not self.policy.is_private(measurement) or self.orgs is None:
            return f'"{measurement}"'
        # Only databases that exist: one missing (an organisation registered but not yet
        # provisioned) would fail the whole query.
        assert self.influx is not None
        existing = {row[0] for s in self.influx.series("SHOW DATABASES") for row in s.get("values", [])}
        orgs = [o.id for o in self.orgs.organisations() if self.policy.private_database(o.id) in existing]
        return self.policy.sources(measurement, orgs) if orgs else f'"{measurement}"'

    def visible_to(self, org: str, sensors: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        """`sensors` as an operator of `org` may see them."""
        if self.policy is None or not self.policy.is_separated or self._is_municipality(org):
            return sensors
        return {
            kind: [s for s in items if not self.policy.is_private(kind) or s.get("org") == org]
            if isinstance(items, list)
            else items
            for kind, items in sensors.items()
        }

    def _is_municipality(self, org: str) -> bool:
        try:
            return self.orgs is not None and self.orgs.organisation(org).role is Role.MUNICIPALITY
        except NotFoundError:
            return False

    def _last(self, q: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
        assert self.influx is not None
        out = []
        for s in self.influx.series(q):
            row = dict(zip(s["columns"], s["values"][0], strict=True))
            out.append((s.get("tags", {}), row))
        return out

    def sensors(self) -> dict[str, list[dict[str, Any]]]:
        """Parking fill, traffic against its own mean, fleet positions: the last value of each."""
        if self.influx is None:
            return {"parking": [], "traffic": [], "fleet": []}
        # `lookback` is checked against DURATION in __post_init__: nothing else enters the query.
        since = f"time > now() - {self.lookback}"
        sites = self.sites.sites()
        parking = []
        for tags, row in self._last(
            f'SELECT last("occupancy_pct") AS pct, last("occupied") AS occupied, '  # noqa: S608  (no user input; see `since`)
            f'last("capacity") AS capacity FROM {self._from("parking")} WHERE {since} '
            'GROUP BY "sensor", "org"'
        ):
            site = sites.get(tags.get("sensor", ""))
            if site is not None:
                parking.append(
                    {"id": tags["sensor"], "org": tags.get("org", ""), "name": site.name, "lat": site.lat,
                     "lon": site.lon, "occupancy_pct": row["pct"], "occupied": row["occupied"],
                     "capacity": row["capacity"], "time": row["time"]}
                )  # fmt: skip
        traffic = []
        for tags, row in self._last(
            f'SELECT last("vehicles") AS vehicles, mean("vehicles") AS baseline FROM {self._from("traffic")} '  # noqa: S608  (no user input; see `since`)
            f'WHERE {since} GROUP BY "sensor", "org"'
        ):
            site = sites.get(tags.get("sensor", ""))
            if site is not None:
                base = row["baseline"] or 0
                ratio = round(row["vehicles"] / base, 2) if base else None
                traffic.append(
                    {"id": tags["sensor"], "org": tags.get("org", ""), "name": site.name, "lat": site.lat,
                     "lon": site.lon, "vehicles": row["vehicles"], "baseline": round(base, 1),
                     "ratio": ratio, "time": row["time"]}
                )  # fmt: skip
        fleet = [
            {"id": tags.get("sensor", ""), "org": tags.get("org", ""), "lat": row["lat"], "lon": row["lon"],
             "speed_kmh": row["speed_kmh"], "time": row["time"]}
            for tags, row in self._last(
                f'SELECT last("lat") AS lat, last("lon") AS lon, last("speed_kmh") AS speed_kmh '  # noqa: S608  (no user input; see `since`)
                f'FROM {self._from("fleet")} WHERE {since} GROUP BY "sensor", "org"'
            )
        ]  # fmt: skip
        return {"parking": parking, "traffic": traffic, "fleet": fleet}


class LiveFeed:
    """Reads `sources` every `refresh_s` and publishes `alert`, `worksites` and `sensors` events."""

    def __init__(self, sources: Sources, broadcaster: Broadcaster, refresh_s: float = 2.0) -> None:
        self.sources = sources
        self.broadcaster = broadcaster
        self.refresh_s = refresh_s
        self.errors = 0
        self._last_error: dict[str, str] = {}
        self._alerts: dict[int, tuple[str, str, int]] = {}
        self._worksites: Any = None
        self._sensors: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console-live", daemon=True)
        self.snapshot_sensors: dict[str, list[dict[str, Any]]] = {"parking": [], "traffic": [], "fleet": []}

    def start(self) -> LiveFeed:
        self.tick()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_s):
            self.tick()

    def tick(self) -> None:
        with self._lock:
            for step in (self._tick_alerts, self._tick_worksites, self._tick_sensors):
                try:
                    step()
                except (InfluxError, OSError, RuntimeError) as exc:
                    self.errors += 1
                    # Logged when the cause changes, not every tick of an outage.
                    if self._last_error.get(step.__name__) != str(exc):
                        log.warning("console live feed: %s failed: %s", step.__name__, exc)
                    self._last_error[step.__name__] = str(exc)
                else:
                    self._last_error.pop(step.__name__, None)

    def _tick_alerts(self) -> None:
        store = self.sources.alerts
        if store is None:
            return
        seen: dict[int, tuple[str, str, int]] = {}
        for a in store.active():
            sig = (a.state, a.updated_at.isoformat(), a.duplicates)
            seen[a.id] = sig
            if self._alerts.get(a.id) != sig:
                self.broadcaster.publish("alert", alert_view(a))
        for gone in set(self._alerts) - set(seen):
            try:
                self.broadcaster.publish("alert", alert_view(store.get(gone)))
            except AlertNotFoundError:
                continue
        self._alerts = seen

    def _tick_worksites(self) -> None:
        fc = self.sources.worksite_features()
        sig = [(f["id"], f["properties"]["status"], f["properties"]["approval"]) for f in fc["features"]]
        if sig != self._worksites:
            self._worksites = sig
            self.broadcaster.publish("worksites", fc)

    def _tick_sensors(self) -> None:
        data = self.sources.sensors()
        if data != self._sensors:
            self._sensors = data
            self.snapshot_sensors = data
            at = datetime.now(UTC).isoformat()
            self.broadcaster.publish(
                "sensors", data, view=lambda org: self.sources.visible_to(org, data) | {"at": at}
            )

    def worksites_changed(self) -> None:
        """Called after an edit through the console: push it now, not at the next tick."""
        with self._lock:
            self._worksites = None
            self._tick_worksites()
