"""Anomaly benchmark: labelled series from the simulators, the rules engine over them, and its speed.

    .venv/bin/python bench/anomaly.py [--days 28] [--detector NAME] [--skip-throughput] [--skip-latency]

1. Quality. Four weeks of Prato from the simulators (car parks, traffic counters, buses), with
   labelled anomalies injected in the last two weeks (the first two are the warm-up every
   learning detector needs): stuck sensors, counter drops, sudden parking surges, slow drifts,
   buses halted inside worksites, and planned worksites whose traffic drop must be called
   *expected impact*, not an anomaly. The default rules (seasonal baseline and worksite impact
   with the detector, the registry's DEFAULT unless --detector, and geofence) run over the
   readings in time order; an anomaly is detected when an alert for its
   sensor fires inside its window (+15 min); any other alert is a false alert. Printed: precision,
   recall, F1 per anomaly type and overall, and false alerts per sensor-day.
2. Throughput: readings evaluated per second on one core by an engine with 50 rules over
   10,000 series (threshold, rate of change, flatline, staleness, geofence, parking saturation),
   then with the detector on car-park occupancy, traffic flow and speed besides, its detectors
   learning from scratch and restored from a warm state; the detector's memory per series.
3. Latency: reading published to alert received over MQTT, through real Mosquitto, ingest and the
   rules service with its alert store (an upper bound of "stored to published"), p50/p99.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion

from cloud.core.alerts import Alert
from cloud.core.geo import Geography, GeoJsonWorksites, Site
from cloud.core.settings import CloudSettings
from cloud.dev.servers import Influxd, Mosquitto
from cloud.ingest.consumer import Ingest
from cloud.rules.base import Rule
from cloud.rules.checkpoint import CheckpointStore, Delivered, series_table
from cloud.rules.detectors import DEFAULT, Detector, names
from cloud.rules.detectors import get as get_detector
from cloud.rules.engine import Engine, load_rules
from cloud.rules.kinds.flatline import Flatline, FlatlineConfig
from cloud.rules.kinds.geofence import Geofence, GeofenceConfig
from cloud.rules.kinds.parking_saturation import ParkingSaturation, ParkingSaturationConfig
from cloud.rules.kinds.rate_of_change import RateOfChange, RateOfChangeConfig
from cloud.rules.kinds.seasonal import Seasonal, SeasonalConfig
from cloud.rules.kinds.staleness import Staleness, StalenessConfig
from cloud.rules.kinds.threshold import Threshold, ThresholdConfig
from cloud.rules.kinds.worksite_impact import WorksiteImpact, WorksiteImpactConfig
from cloud.rules.service import RulesService
from cloud.rules.store import AlertStore
from edge.contract import SCHEMA_VERSION, Batch, Reading, SensorKind, encode, topics
from edge.simulators.fleet import Itinerary
from edge.simulators.parking import facility_fields, occupancy_fields
from edge.simulators.places import FACILITIES, ROUTES, SITES
from edge.simulators.traffic import counter_fields

ORG = "comune-prato"
START = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday
STEP = timedelta(minutes=5)
TOLERANCE = timedelta(minutes=15)
SCORE_ABOVE = 0.8  # the one alert threshold for every series (score 0.8: ~1 reading in 60,000)


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    sensor: str
    start: datetime
    end: datetime


def square(lat: float, lon: float, half_deg: float = 0.0006) -> list[list[float]]:
    return [
        [lon - half_deg, lat - half_deg],
        [lon + half_deg, lat - half_deg],
        [lon + half_deg, lat + half_deg],
        [lon - half_deg, lat + half_deg],
        [lon - half_deg, lat - half_deg],
    ]


def event_times(rnd: random.Random, days: int) -> list[datetime]:
    """Two daytime starts in the evaluation half, a week apart."""
    first = days // 2 + 2 + rnd.randint(0, 2)
    return [
        START + timedelta(days=d, hours=rnd.randint(9, 15), minutes=5 * rnd.randint(0, 11))
        for d in (first, first + 7)
        if d < days - 1
    ]


# One scenario read top to bottom, as a test fixture is: splitting it would hide the labels.
def build(  # noqa: PLR0912, PLR0915
    days: int, seed: int
) -> tuple[list[Reading], list[Event], Geography, dict[str, int]]:
    rnd = random.Random(seed)
    readings: list[Reading] = []
    events: list[Event] = []
    sites: dict[str, Site] = {}
    features: list[dict[str, Any]] = []
    sensor_days: dict[str, int] = {}
    n = days * 288
    facilities = list(FACILITIES.values())

    # Car parks: 4 stuck, 4 counter drops, 4 surges.
    for i, kind in enumerate(["stuck"] * 4 + ["drop"] * 4 + ["surge"] * 4):
        facility = facilities[i % len(facilities)]
        sensor = f"p-{kind}-{i}"
        sensor_days[sensor] = days - days // 2
        windows = []
        for t in event_times(rnd, days):
            hours = {"stuck": 3, "drop": 2, "surge": 2}[kind]
            windows.append((t, t + timedelta(hours=hours)))
            events.append(Event(kind, sensor, t, t + timedelta(hours=hours)))
        frozen: dict[str, Any] | None = None
        for k in range(n):
            ts = START + k * STEP
            fields = facility_fields(seed + i, sensor, facility, facility.capacity, ts)
            inside = next((w for w in windows if w[0] <= ts < w[1]), None)
            if inside is None:
                frozen = None
            elif kind == "stuck":
                frozen = frozen or fields
                fields = frozen
            elif kind == "drop":
                fields = occupancy_fields(round(0.02 * facility.capacity), facility.capacity)
            else:
                occupied = min(facility.capacity, int(fields["occupied"]) + round(0.35 * facility.capacity))
                fields = occupancy_fields(occupied, facility.capacity)
            readings.append(
                Reading(
                    kind=SensorKind.PARKING, org=ORG, gateway="gw-park", sensor=sensor, ts=ts, fields=fields
                )
            )

    # Traffic counters: 4 slow drifts (far from worksites), 4 beside planned worksites.
    traffic_sites = list(SITES.values())
    for i, kind in enumerate(["drift"] * 4 + ["planned"] * 4):
        site = traffic_sites[i % len(traffic_sites)]
        sensor = f"t-{kind}-{i}"
        sensor_days[sensor] = days - days // 2
        # Each counter gets a place of its own, 2 km apart, so a worksite is near one counter only.
        lat, lon = 43.80 + 0.02 * i, 11.00 + 0.02 * i
        sites[sensor] = Site(lat=lat, lon=lon, name=site.name)
        windows = []
        for t in event_times(rnd, days):
            hours = 24 if kind == "drift" else 6
            windows.append((t, t + timedelta(hours=hours)))
            events.append(Event(kind, sensor, t, t + timedelta(hours=hours)))
            if kind == "planned":
                features.append(
                    {
                        "type": "Feature",
                        "geometry": {"type": "Polygon", "coordinates": [square(lat, lon)]},
                        "properties": {
                            "id": f"ws-{sensor}-{t:%m%d}",
                            "name": f"resurfacing by {site.name}",
                            "starts_at": (t - timedelta(hours=1)).isoformat(),
                            "ends_at": (t + timedelta(hours=7)).isoformat(),
                            "planned": True,
                        },
                    }
                )
        for k in range(n):
            ts = START + k * STEP
            fields = counter_fields(
                seed + i, sensor, ts, site=site, direction="inbound", peak_vph=900, interval_s=300
            )
            inside = next((w for w in windows if w[0] <= ts < w[1]), None)
            if inside is not None:
                if kind == "drift":
                    # A radar losing calibration: reads lower and lower over 12 h, then stays off.
                    frac = min((ts - inside[0]) / timedelta(hours=12), 1.0)
                    fields["speed_kmh"] = round(float(fields["speed_kmh"]) * (1.0 - 0.5 * frac), 1)
                else:
                    fields["speed_kmh"] = round(float(fields["speed_kmh"]) * 0.35, 1)
            readings.append(
                Reading(
                    kind=SensorKind.TRAFFIC,
                    org=ORG,
                    gateway="gw-traffic",
                    sensor=sensor,
                    ts=ts,
                    fields=fields,
                )
            )

    # Buses on LAM Blu through a long worksite at Piazza San Marco; 4 of them halt inside it.
    route = ROUTES["lam-blu"]
    san_marco = route.points[2]
    features.append(
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [square(*san_marco, half_deg=0.0004)]},
            "properties": {
                "id": "ws-san-marco",
                "name": "Piazza San Marco sewer works",
                "starts_at": START.isoformat(),
                "ends_at": (START + timedelta(days=days + 1)).isoformat(),
                "planned": True,
            },
        }
    )
    fleet_start = START + timedelta(days=days // 2)
    for i in range(4):
        sensor = f"v-bus-{i}"
        sensor_days[sensor] = days - days // 2
        itinerary = Itinerary(route, 28.0, seed=seed + i, sensor=sensor)
        windows = []
        for t in event_times(rnd, days):
            windows.append((t, t + timedelta(minutes=40)))
            events.append(Event("halted", sensor, t, t + timedelta(minutes=40)))
        for k in range(int((START + timedelta(days=days) - fleet_start) / timedelta(minutes=1))):
            ts = fleet_start + timedelta(minutes=k)
            fix = itinerary.fix_at(ts)
            fields = fix.fields()
            if any(w[0] <= ts < w[1] for w in windows):
                fields = {"lat": san_marco[0], "lon": san_marco[1], "speed_kmh": 0.0, "heading_deg": 90.0}
            readings.append(
                Reading(kind=SensorKind.FLEET, org=ORG, gateway="gw-bus", sensor=sensor, ts=ts, fields=fields)
            )

    readings.sort(key=lambda r: r.ts)
    worksites = GeoJsonWorksites({"type": "FeatureCollection", "features": features})
    return readings, events, Geography(sites=sites, worksites=worksites), sensor_days


def quality_rules(geo: Geography, detector: str = DEFAULT) -> list[Rule[Any]]:
    rules: list[Rule[Any]] = [
        Seasonal(
            SeasonalConfig(
                name="parking-unusual",
                kind=SensorKind.PARKING,
                field="occupied",
                score_above=SCORE_ABOVE,
                detector=detector,
            )
        ),
        WorksiteImpact(
            WorksiteImpactConfig(
                name="traffic-impact",
                kind=SensorKind.TRAFFIC,
                field="speed_kmh",
                score_above=SCORE_ABOVE,
                radius_m=300,
                detector=detector,
            )
        ),
        Geofence(
            GeofenceConfig(name="halted-in-worksite", check="halted", halted_min=15, only_in_worksite=True)
        ),
    ]
    for r in rules:
        r.bind(geo)
    return rules


def is_anomaly_alert(a: Alert) -> bool:
    return not (a.context and a.context.get("classification") == "expected_impact")


def quality(days: int, seed: int, detector: str = DEFAULT) -> dict[str, Any]:
    t0 = time.perf_counter()
    readings, events, geo, sensor_days = build(days, seed)
    built_s = time.perf_counter() - t0
    engine = Engine(quality_rules(geo, detector))
    warm_until = START + timedelta(days=days // 2)
    fired: list[Alert] = []
    t0 = time.perf_counter()
    for r in readings:
        for a in engine.observe(r):
            if a.state == "firing" and a.ts >= warm_until:
                fired.append(a)
    run_s = time.perf_counter() - t0

    by_sensor: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        by_sensor[e.sensor].append(e)
    detected: set[Event] = set()
    expected_ok: set[Event] = set()
    false_alerts: dict[str, int] = defaultdict(int)  # by the anomaly type of the sensor
    for a in fired:
        evs = by_sensor.get(a.entity, [])
        hit = next((e for e in evs if e.start <= a.ts <= e.end + TOLERANCE), None)
        sensor_type = evs[0].kind if evs else "other"
        if hit is None:
            false_alerts[sensor_type] += 1
        elif hit.kind == "planned":
            if is_anomaly_alert(a):
                false_alerts["planned"] += 1  # a planned worksite called an anomaly
            else:
                expected_ok.add(hit)
        else:
            detected.add(hit)
    rows = []
    tp_all = fp_all = fn_all = 0
    for kind in ("stuck", "drop", "surge", "drift", "halted", "planned"):
        evs = [e for e in events if e.kind == kind]
        tp = len([e for e in evs if e in (expected_ok if kind == "planned" else detected)])
        fn = len(evs) - tp
        fp = false_alerts[kind]
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
        rows.append((kind, len(evs), tp, fp, fn))
    total_false = sum(false_alerts.values())
    return {
        "rows": rows,
        "overall": (tp_all, fp_all, fn_all),
        "false_per_sensor_day": total_false / sum(sensor_days.values()),
        "false_alerts": total_false,
        "sensor_days": sum(sensor_days.values()),
        "readings": len(readings),
        "built_s": built_s,
        "run_s": run_s,
    }


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def _fast(kind: SensorKind, gateway: str, sensor: str, ts: datetime, fields: dict[str, Any]) -> Reading:
    # Built without validation: only the engine is timed, and these values are valid by design.
    return Reading.model_construct(
        kind=kind, org=ORG, gateway=gateway, sensor=sensor, ts=ts, fields=fields, tags={}
    )


def throughput(  # noqa: PLR0912  (the cases of one measurement, read top to bottom)
    series: int,
    readings_n: int,
    detector: str | None = None,
    fields: tuple[tuple[SensorKind, str], ...] = (),
    *,
    warm: bool = False,
    constant: bool = False,
    per_reading: bool = False,
    default_file: bool = False,
) -> tuple[float, int, float]:
    """50 rules over `series` series; readings built first, only the engine is timed. With
    `detector`, one rule more per field of `fields` runs it (the default rules will run it on
    car-park occupancy, traffic flow and speed), each series' detector learning from scratch
    or, `warm`, restored from a checkpoint of four days of such series (`warm_detectors`); or,
    `constant`, a detector that does nothing: what the rules themselves cost. The engine gets
    the readings message by message, as the rules service gives them (`Engine.observe_many`),
    or with `per_reading` one `Engine.observe` call each; each message is built just before,
    as the service decodes it, and only the engine's calls are timed. With `default_file`, the
    default rules file (cloud/rules/default.yaml) instead of the 50 rules and `detector`."""
    rules: list[Rule[Any]] = []
    restore_s = 0.0
    for i in range(12):
        rules.append(
            Threshold(
                ThresholdConfig(
                    name=f"park-high-{i}",
                    kind=SensorKind.PARKING,
                    field="occupancy_pct",
                    above=90 + i / 2,
                    clear=85,
                    hold_min=i,
                )
            )
        )
        rules.append(
            Threshold(
                ThresholdConfig(
                    name=f"speed-low-{i}",
                    kind=SensorKind.TRAFFIC,
                    field="speed_kmh",
                    below=5 + i,
                    clear=15 + i,
                    hold_min=i,
                )
            )
        )
    for i in range(8):
        rules.append(
            RateOfChange(
                RateOfChangeConfig(
                    name=f"park-jump-{i}", kind=SensorKind.PARKING, field="occupied", max_per_min=20 + i
                )
            )
        )
        rules.append(
            Flatline(
                FlatlineConfig(
                    name=f"traffic-stuck-{i}", kind=SensorKind.TRAFFIC, field="vehicles", min_readings=6 + i
                )
            )
        )
    rules.append(ParkingSaturation(ParkingSaturationConfig(name="park-saturation")))
    rules.append(Staleness(StalenessConfig(name="sensor-silent", scope="sensor", silent_min=10)))
    rules.append(Geofence(GeofenceConfig(name="halted", check="halted", halted_min=20)))
    rules.append(
        Threshold(ThresholdConfig(name="fleet-fast", kind=SensorKind.FLEET, field="speed_kmh", above=90))
    )
    rules.append(
        Threshold(
            ThresholdConfig(
                name="traffic-occupancy", kind=SensorKind.TRAFFIC, field="occupancy_pct", above=60
            )
        )
    )
    rules.append(
        RateOfChange(
            RateOfChangeConfig(name="traffic-jump", kind=SensorKind.TRAFFIC, field="vehicles", max_per_min=50)
        )
    )
    for i in range(4):
        rules.append(
            RateOfChange(
                RateOfChangeConfig(
                    name=f"speed-jump-{i}", kind=SensorKind.TRAFFIC, field="speed_kmh", max_per_min=10 + i
                )
            )
        )
    assert len(rules) == 50, len(rules)
    if default_file:  # the default rules file instead: its own detector rules
        rules = load_rules()
        if warm:
            restore_s = warm_detectors(rules, load_rules(), series)
    elif detector is not None:
        seasonal = detector_rules(detector, fields)
        rules.extend(seasonal)
        if warm:
            restore_s = warm_detectors(list(seasonal), list(detector_rules(detector, fields)), series)
        if constant:
            for rule in seasonal:
                rule.detector_cls = ConstantDetector  # bench-only: the rules without detector work
                rule.reports_onsets = False
    engine = Engine(rules)
    readings = continued_readings(series, max(readings_n // series, 1))
    count = len(readings)
    # As the rules service meets them: each message decoded right before the engine gets it
    # (its readings new in memory, not 300,000 of them built long before), only the engine timed.
    wires = [[(r.kind, r.gateway, r.sensor, r.ts, r.fields) for r in m] for m in messages(readings)]
    del readings
    alerts = 0
    cpu_s = 0.0
    for wire in wires:
        decoded = [_fast(kind, gw.encode().decode(), sensor.encode().decode(), ts, dict(fields))
                   for kind, gw, sensor, ts, fields in wire]  # fmt: skip
        t0 = time.process_time()
        if per_reading:
            for r in decoded:
                alerts += len(engine.observe(r))
        else:
            alerts += len(engine.observe_many(decoded, engine.wall_clock()))
        cpu_s += time.process_time() - t0
    return count / cpu_s, alerts, restore_s


def messages(readings: list[Reading]) -> list[list[Reading]]:
    """The readings as gateways send them and the rules service hands them to the engine: one
    message per gateway, kind and minute (here 40 car parks, 40 counters or 20 vehicles)."""
    out: dict[tuple[datetime, str, SensorKind], list[Reading]] = {}
    for r in readings:
        out.setdefault((r.ts, r.gateway, r.kind), []).append(r)
    return list(out.values())


def city_readings(series: int, readings_n: int, start: datetime, seed: int = 1) -> list[Reading]:
    """Ordinary data, as in a real city: values wander slowly around each series' own level
    (pulled back towards it, so that days of them stay ordinary); alerts are the exception."""
    rnd = random.Random(seed)
    readings: list[Reading] = []
    per_series = max(readings_n // series, 1)
    base = [rnd.uniform(0.3, 0.7) for _ in range(series)]
    level = list(base)
    for k in range(per_series):
        ts = start + timedelta(minutes=k)
        for s in range(series):
            step = 0.02 * (base[s] - level[s]) + rnd.gauss(0, 0.01)
            level[s] = min(max(level[s] + step, 0.05), 0.97)
            gw = f"gw-{s // 100}"
            kind = s % 5
            if kind < 2:
                fields: dict[str, Any] = occupancy_fields(round(level[s] * 500), 500)
                readings.append(_fast(SensorKind.PARKING, gw, f"p-{s}", ts, fields))
            elif kind < 4:
                fields = {
                    "vehicles": round(80 * level[s]) + rnd.randint(0, 3), "heavy": 2, "interval_s": 60,
                    "speed_kmh": 60 - 40 * level[s] + rnd.gauss(0, 1), "occupancy_pct": 40 * level[s],
                }  # fmt: skip
                readings.append(_fast(SensorKind.TRAFFIC, gw, f"t-{s}", ts, fields))
            else:
                lat, lon = 43.87 + 0.01 * level[s], 11.09 + 0.001 * k
                fields = {"lat": lat, "lon": lon, "speed_kmh": 30.0, "heading_deg": 0.0}
                readings.append(_fast(SensorKind.FLEET, gw, f"v-{s}", ts, fields))
    return readings


TEMPLATES = 5  # of city_readings: 2 car parks, 2 traffic counters, a vehicle


def template_history(minutes: int) -> list[Reading]:
    """WARM_DAYS days of TEMPLATES series of `city_readings` before START, and `minutes` more."""
    n = TEMPLATES * (WARM_DAYS * 1440 + minutes)
    return city_readings(TEMPLATES, n, START - timedelta(days=WARM_DAYS), seed=2)


def continued_readings(series: int, per_series: int) -> list[Reading]:
    """`per_series` minutes of `series` series from START, series s going on as template
    s % TEMPLATES did after its WARM_DAYS days: what a detector warmed on the template's
    history (`warm_detectors`) finds ordinary, as a warm detector in a real city would."""
    tail = template_history(per_series)[TEMPLATES * WARM_DAYS * 1440 :]
    out: list[Reading] = []
    for k in range(per_series):
        for s in range(series):
            t = tail[k * TEMPLATES + s % TEMPLATES]
            out.append(_fast(t.kind, f"gw-{s // 100}", f"{t.sensor.split('-')[0]}-{s}", t.ts, t.fields))
    return out


DETECTED = (
    (SensorKind.PARKING, "occupied"),
    (SensorKind.TRAFFIC, "vehicles"),
    (SensorKind.TRAFFIC, "speed_kmh"),
)
WARM_DAYS = 4


class ConstantDetector(Detector):
    """p = 1 for every reading, at no cost: what a rule costs around its detector."""

    __slots__ = ()

    def pvalue(self, ts: float, value: float) -> float:
        return 1.0


def detector_rules(detector: str, fields: tuple[tuple[SensorKind, str], ...]) -> list[Seasonal]:
    return [
        Seasonal(
            SeasonalConfig(
                name=f"unusual-{field.replace('_', '-')}", kind=kind, field=field, detector=detector
            )
        )
        for kind, field in fields
    ]


def warm_state(detector: str, kind: SensorKind, field: str) -> dict[str, Any]:
    """The state of a detector that has seen WARM_DAYS days of one series of `city_readings`."""
    d = get_detector(detector)()
    start = START - timedelta(days=WARM_DAYS)
    for r in city_readings(5, 5 * WARM_DAYS * 1440, start, seed=2):
        if r.kind is kind:
            d.pvalue(r.ts.timestamp(), float(r.fields[field]))
    return d.state()


def warm_detectors(rules: list[Rule[Any]], learners: list[Rule[Any]], series: int) -> float:
    """Every series of `rules` restored from a checkpoint, as the rules service starts after a
    restart; returns the seconds the restore took. `learners` are the same rules, to learn.

    The checkpoint is made through the service's own API: an engine with these rules learns
    the WARM_DAYS days of the TEMPLATES series and is saved (cloud/rules/checkpoint.py); each
    template's rows are then copied in the database to the keys of the series that go on as it
    (`continued_readings`): four days of 10,000 series through the engine would take longer
    than the measurement."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/checkpoint.db"
        learner = Engine(learners)
        for r in template_history(0):
            learner.observe(r)
        store = CheckpointStore(url)
        store.save(learner, Delivered(), every_series=True)
        with store.engine.begin() as conn:
            learnt = {
                (row.rule, int(row.sensor.split("-")[1])): row
                for row in conn.execute(sa.select(series_table))
            }
            copies = []
            for (rule, template), row in learnt.items():
                for s in range(template, series, TEMPLATES):
                    key = {"gateway": f"gw-{s // 100}", "sensor": f"{row.sensor.split('-')[0]}-{s}"}
                    copies.append({**row._asdict(), "rule": rule, **key})
            conn.execute(series_table.delete())
            conn.execute(series_table.insert(), copies)
        store.close()
        t0 = time.perf_counter()
        restored: list[Rule[Any]] = list(rules)
        found = CheckpointStore(url).restore(Engine(restored))
        assert found.series == len(copies), found
        return time.perf_counter() - t0


def detector_memory(detector: str, series: int) -> tuple[float, int]:
    """Bytes per series of `series` warm detectors (tracemalloc), and of one's state as JSON."""
    state = warm_state(detector, SensorKind.PARKING, "occupied")
    cls = get_detector(detector)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [cls.from_state(state) for _ in range(series)]
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(kept) == series
    return used / series, len(json.dumps(state))


def latency(samples: int) -> list[float]:  # noqa: PLR0915  (servers up, measure, servers down)
    out: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        mosquitto = Mosquitto(Path(tmp) / "mosquitto")
        influxd = Influxd(Path(tmp) / "influxd")
        mosquitto.start()
        influxd.start()
        try:
            settings = CloudSettings(
                mqtt_url=mosquitto.url, influx_url=influxd.url, influx_db="bench_alerts", write_linger_ms=50
            )
            rule = Threshold(
                ThresholdConfig(
                    name="park-full", kind=SensorKind.PARKING, field="occupancy_pct", above=95, clear=90
                )
            )
            service = RulesService(settings, Engine([rule]), store=AlertStore(f"sqlite:///{tmp}/alerts.db"))
            ingest = Ingest(settings)
            threads = [threading.Thread(target=s.run, daemon=True) for s in (ingest, service)]
            for t in threads:
                t.start()
            sent: dict[str, float] = {}
            got: dict[str, float] = {}
            done = threading.Event()

            def on_message(_c: object, _u: object, m: mqtt.MQTTMessage) -> None:
                entity = m.topic.rsplit("/", 1)[1]
                if entity in sent and entity not in got:
                    got[entity] = time.monotonic()
                    if len(got) == samples:
                        done.set()

            sub = mqtt.Client(CallbackAPIVersion.VERSION2)
            sub.on_message = on_message
            sub.connect("127.0.0.1", mosquitto.port)
            sub.subscribe(f"{topics.ROOT}/alerts/{ORG}/#", qos=1)
            sub.loop_start()
            pub = mqtt.Client(CallbackAPIVersion.VERSION2)
            pub.connect("127.0.0.1", mosquitto.port)
            pub.loop_start()
            deadline = time.monotonic() + 30
            while (
                not (ingest.conn.connected.is_set() and service.conn.connected.is_set())
                and time.monotonic() < deadline
            ):
                time.sleep(0.05)
            now = datetime.now(UTC)
            for i in range(samples):
                sensor = f"p-lat-{i}"
                reading = Reading(
                    kind=SensorKind.PARKING,
                    org=ORG,
                    gateway="gw-lat",
                    sensor=sensor,
                    ts=now,
                    fields=occupancy_fields(99, 100),
                )
                batch = Batch(
                    v=SCHEMA_VERSION,
                    org=ORG,
                    gateway="gw-lat",
                    kind=SensorKind.PARKING,
                    seq=i + 1,
                    sent_at=now,
                    readings=(reading,),
                )
                sent[sensor] = time.monotonic()
                pub.publish(topics.data(ORG, "gw-lat", SensorKind.PARKING), encode(batch), qos=1)
                time.sleep(0.02)  # a steady trickle, not a burst: latency, not queueing
            done.wait(60)
            out = sorted(got[s] - sent[s] for s in got)
            pub.loop_stop()
            sub.loop_stop()
            ingest.stop()
            service.stop()
            for t in threads:
                t.join(30)
        finally:
            mosquitto.stop()
            influxd.stop()
    return out


def print_quality(days: int, seed: int, detector: str) -> None:
    q = quality(days, seed, detector)
    warm = days // 2
    print(f"quality: {q['readings']:,} readings over {days} days ({warm} warm-up)")
    print(f"detector: {detector}; one alert threshold for every series: score >= {SCORE_ABOVE}")
    header = ("anomaly", "events", "tp", "fp", "fn", "precision", "recall", "F1")
    print("{:<10} {:>6} {:>4} {:>4} {:>4} {:>9} {:>7} {:>6}".format(*header))
    for kind, n, tp, fp, fn in q["rows"]:
        p, r, f = prf(tp, fp, fn)
        print(f"{kind:<10} {n:>6} {tp:>4} {fp:>4} {fn:>4} {p:>9.3f} {r:>7.3f} {f:>6.3f}")
    tp, fp, fn = q["overall"]
    p, r, f = prf(tp, fp, fn)
    print(f"{'overall':<10} {'':>6} {tp:>4} {fp:>4} {fn:>4} {p:>9.3f} {r:>7.3f} {f:>6.3f}")
    per_day = q["false_per_sensor_day"]
    print(f"false alerts: {q['false_alerts']} in {q['sensor_days']} sensor-days = {per_day:.3f}/sensor-day")
    print("(planned: tp = the drop called expected impact; called an anomaly, it is a false alert)")
    rate = q["readings"] / q["run_s"]
    print(f"engine time with learning detectors: {q['run_s']:.1f} s ({rate:,.0f} readings/s)\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--readings", type=int, default=300_000)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--detector", default=DEFAULT, choices=names(), help="default: %(default)s")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    host = f"{platform.node()} {platform.processor() or platform.machine()}"
    print(f"# {host}, Python {platform.python_version()}")
    print("# the machine may be shared: rates vary with other load\n")

    if not args.skip_quality:
        print_quality(args.days, args.seed, args.detector)

    if not args.skip_throughput:
        per_series = max(args.readings // args.series, 1)
        print(
            f"throughput: {args.series:,} series, {per_series} readings each, CPU time on one core; "
            "the engine gets them message by message (one per gateway, kind and minute)"
        )
        rate, alerts, _ = throughput(args.series, args.readings)
        print(f"  50 rules: {rate:,.0f} readings/s ({alerts:,} alert transitions)")
        d = args.detector
        warm = f"restored from a {WARM_DAYS}-day checkpoint"
        three = "occupancy, traffic flow and speed"
        runs: list[tuple[str, tuple[tuple[SensorKind, str], ...], dict[str, bool]]] = [
            (f"+ {d} on car-park occupancy, {warm}", DETECTED[:1], {"warm": True}),
            (f"+ {d} on {three}, learning from scratch", DETECTED, {}),
            (f"+ {d} on {three}, {warm}", DETECTED, {"warm": True}),
            (
                f"+ {d} on {three}, {warm}, one observe() call per reading",
                DETECTED,
                {"warm": True, "per_reading": True},
            ),
            (f"+ a do-nothing detector on {three} (the rules' own cost)", DETECTED, {"constant": True}),
        ]
        for label, fields, how in runs:
            rate, alerts, restore_s = throughput(args.series, args.readings, d, fields, **how)
            restored = f"; restore {restore_s:.1f} s" if restore_s else ""
            print(f"  50 rules {label}: {rate:,.0f} readings/s ({alerts:,} alert transitions{restored})")
        rate, alerts, restore_s = throughput(args.series, args.readings, warm=True, default_file=True)
        print(
            f"  the default rules file alone (cloud/rules/default.yaml: 7 rules, 3 of them {DEFAULT}), "
            f"{warm}: {rate:,.0f} readings/s ({alerts:,} alert transitions; restore {restore_s:.1f} s)"
        )
        per_series_b, state_b = detector_memory(args.detector, args.series)
        print(
            f"memory: {args.detector} per series {per_series_b:,.0f} bytes (tracemalloc over {args.series:,} "
            f"warm detectors); its state() as JSON {state_b:,} bytes"
        )
    if not args.skip_latency:
        lat = latency(args.latency_samples)
        if not lat:
            print("latency: no alert received", file=sys.stderr)
            return
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        print("latency: reading published -> alert received (MQTT, ingest, rules, alert store):")
        print(f"  n={len(lat)} p50={p50 * 1000:.0f} ms p99={p99 * 1000:.0f} ms max={lat[-1] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
