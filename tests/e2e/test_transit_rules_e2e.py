"""Public transport in the rules service, end to end on real servers: the production wiring
(`apps/rules.build_rules_service` with SITROOM_TRANSIT_DB), readings through Mosquitto and the
same admission as ingest, alerts in the alert store.

A full central car park names the park-and-ride and the next buses toward it with the delay a
bus reported on the stream; a live worksite across Viale Piave tells the municipality and the
operator of each route on it; buses later than that hour's usual near the worksite fire.
"""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.apps.rules import build_rules_service
from cloud.core.alerts import StoredAlert
from cloud.core.geo import ServiceAreas
from cloud.core.orgs import Caller, Organisation, Role
from cloud.core.settings import CloudSettings
from cloud.dev.servers import Mosquitto
from cloud.rules.service import RulesService
from cloud.rules.store import AlertStore
from cloud.transit.store import TransitStore
from cloud.worksites.models import WorksiteCreate
from cloud.worksites.store import WorksiteStore
from edge.contract import SCHEMA_VERSION, Batch, Reading, SensorKind, encode, topics
from edge.contract.gtfs.ids import sensor_id
from edge.simulators.transit import prato_feed_zip

from support import wait_until

pytestmark = pytest.mark.e2e
ROME = ZoneInfo("Europe/Rome")
HOLIDAYS = {date(2026, 12, 8), date(2026, 12, 25), date(2027, 1, 1), date(2027, 1, 6)}  # calendar_dates.txt
M_LAT, M_LON = 1 / 111_132, 1 / (111_132 * 0.7212)


def last_weekday_8am(now: datetime) -> datetime:
    """08:00 in Prato on the latest past Tuesday that is no holiday (buses on the weekday timetable)."""
    day = now.astimezone(ROME).date() - timedelta(days=1)
    while day.weekday() != 1 or day in HOLIDAYS:
        day -= timedelta(days=1)
    return datetime.combine(day, time(8), tzinfo=ROME).astimezone(UTC)


T = last_weekday_8am(datetime.now(UTC))


def piave_box() -> dict[str, object]:
    lat, lon = 43.8778, 11.1000
    w, e, s, n = lon - 25 * M_LON, lon + 25 * M_LON, lat - 15 * M_LAT, lat + 15 * M_LAT
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


@dataclass
class Running:
    org: str
    store: AlertStore
    service: RulesService
    publisher: mqtt.Client
    seq: int = 0

    def publish(self, gateway: str, kind: SensorKind, readings: list[Reading]) -> None:
        self.seq += 1
        batch = Batch(
            v=SCHEMA_VERSION, org=self.org, gateway=gateway, kind=kind, seq=self.seq,
            sent_at=datetime.now(UTC), readings=tuple(readings),
        )  # fmt: skip
        self.publisher.publish(topics.data(self.org, gateway, kind), encode(batch), qos=1).wait_for_publish(
            30
        )

    def active(self, rule: str) -> list[StoredAlert]:
        return [a for a in self.store.active() if a.rule == rule]


@pytest.fixture
def running(settings: CloudSettings, mosquitto: Mosquitto, tmp_path: Path, org: str) -> Iterator[Running]:
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = WorksiteStore.open(db, areas=ServiceAreas.load())
    registry.orgs.add(Organisation(id="comune-prato", name="Comune di Prato", role=Role.MUNICIPALITY))
    registry.create(
        Caller("comune-prato", Role.MUNICIPALITY),
        WorksiteCreate(
            id="ws-piave",
            title="Scavo Viale Piave",
            street="Viale Piave",
            work_type="water",
            geometry=piave_box(),
            planned_start=T - timedelta(days=1),
            planned_end=datetime.now(UTC) + timedelta(days=5),
            status="active",
        ),
    )
    buses = TransitStore(registry.engine)
    buses.migrate()
    buses.import_feed(prato_feed_zip(), operator=org)  # the test's own org is the bus operator
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        textwrap.dedent(
            f"""
            worksites: registry:{db}
            rules:
              - {{rule: parking_saturation, name: parking-saturated, hold_min: 0}}
              - {{rule: worksite_on_route, name: worksite-on-bus-route, check_s: 1}}
              - {{rule: worksite_bus_delay, name: bus-delay-near-worksite, notify: []}}
            """
        )
    )
    alerts_db = f"sqlite:///{tmp_path / 'alerts.db'}"
    service = build_rules_service(
        settings.model_copy(update={"transit_db": db}), rules_file=rules, alerts_db=alerts_db, reload=False
    )
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2)
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    try:
        wait_until(service.conn.connected.is_set, 30, what="the rules service")
        yield Running(org, AlertStore(alerts_db), service, publisher)
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        service.stop()
        thread.join(30)
        registry.close()


def parking(org: str, sensor: str, ts: datetime, occupied: int, capacity: int) -> Reading:
    pct = round(100 * occupied / capacity, 1)
    return Reading(
        kind=SensorKind.PARKING, org=org, gateway="gw-parking", sensor=sensor, ts=ts,
        fields={"occupied": occupied, "capacity": capacity, "occupancy_pct": pct},
    )  # fmt: skip


def test_a_full_central_car_park_names_the_park_and_ride_and_its_next_buses_with_their_reported_delay(
    running: Running,
) -> None:
    org = running.org
    # The Circolare's bus says it runs six minutes late; then Piazza Mercatale fills up.
    bus = Reading(
        kind=SensorKind.TRANSIT_VEHICLE, org=org, gateway="gtfs-rt", sensor="bus-17",
        ts=T - timedelta(minutes=8), tags={"route": "CIRC"},
        fields={"lat": 43.8900, "lon": 11.0990, "trip": "CIRC_ALL_0_template", "delay_s": 360},
    )  # fmt: skip
    running.publish("gtfs-rt", SensorKind.TRANSIT_VEHICLE, [bus])
    running.publish(
        "gw-parking", SensorKind.PARKING, [parking(org, "p-serraglio", T - timedelta(minutes=7), 50, 150)]
    )
    running.publish(
        "gw-parking", SensorKind.PARKING, [parking(org, "p-mercatale", T - timedelta(minutes=5), 516, 520)]
    )

    (alert,) = wait_until(lambda: running.active("parking-saturated"), 30, what="the saturation alert")

    assert alert.entity == "p-mercatale"
    # At 07:55: LAM Rossa at 07:58, the Circolare's 08:00 run six minutes late, LAM Rossa at 08:10.
    assert alert.message.endswith(
        "buses from Stazione Porta al Serraglio: LAM Rossa 07:58 to Piazza Mercatale 08:01, "
        "Circolare 08:06 (+6 min) to Piazza Mercatale 08:08, LAM Rossa 08:10 to Piazza Mercatale 08:13"
    )
    ride = alert.context["hint"]["park_and_ride"]
    assert ride["sensor"] == "p-serraglio"
    assert [d["delay_s"] for d in ride["departures"]] == [None, 360, None]


def test_a_live_worksite_on_viale_piave_tells_the_municipality_and_the_operator_of_each_route(
    running: Running,
) -> None:
    running.publish("gw-parking", SensorKind.PARKING, [parking(running.org, "p-castello", T, 10, 120)])

    def all_six() -> list[StoredAlert]:
        found = running.active("worksite-on-bus-route")
        return found if len(found) >= 6 else []

    found = wait_until(all_six, 30, what="route alerts")

    by_org = {(a.org, a.entity) for a in running.active("worksite-on-bus-route")}
    assert by_org == {
        (org, f"ws-piave--{route}")
        for org in ("comune-prato", running.org)
        for route in ("lam-blu", "2", "circ")
    }
    assert any("is on bus route LAM Blu" in a.message for a in found)


def test_buses_later_than_that_hours_usual_near_the_worksite_fire(running: Running) -> None:
    org, stop = running.org, sensor_id("PO-PIAVE")

    def delay(ts: datetime, delay_s: int) -> Reading:
        fields = {"trip": "LAM-BLU_FER_0_0750", "stop_sequence": 4, "status": "scheduled", "delay_s": delay_s}
        return Reading(
            kind=SensorKind.TRANSIT_DELAY, org=org, gateway="gtfs-rt", sensor=stop, ts=ts,
            tags={"route": "LAM-BLU"}, fields=fields,
        )  # fmt: skip

    # A week before, no worksite: the usual delay at 08:xx on a Tuesday is a minute.
    week_before = [delay(T - timedelta(days=7, minutes=-m), 60) for m in (1, 11, 21)]
    running.publish("gtfs-rt", SensorKind.TRANSIT_DELAY, week_before)
    # With the worksite: seven minutes.
    running.publish(
        "gtfs-rt", SensorKind.TRANSIT_DELAY, [delay(T + timedelta(minutes=m), 420) for m in (3, 13, 23)]
    )

    (alert,) = wait_until(lambda: running.active("bus-delay-near-worksite"), 30, what="the delay alert")

    assert alert.entity == "ws-piave--lam-blu"
    assert alert.value == 360
    assert alert.message.startswith(
        "buses of route LAM-BLU +6.0 min later than usual near worksite Scavo Viale Piave"
    )
