"""Real device bytes end to end: a gateway reads a GPS and a traffic counter on serial lines
(pseudo-terminals) and Bosch parking sensors' ChirpStack uplinks on Mosquitto, and everything
it reads reaches InfluxDB; the GPS is unplugged and re-created meanwhile, and the gateway,
never restarted, carries on."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from cloud.core.settings import CloudSettings
from cloud.dev.servers import Mosquitto
from cloud.io.influx.client import InfluxClient
from cloud.io.influx.lineprotocol import timestamp_ns
from edge.contract import Reading, SensorKind
from edge.drivers import SourceContext, get, stats_of
from edge.drivers.nmea.decoder import NmeaDecoder
from edge.drivers.traffic_counter.decoder import TrafficCounterDecoder
from edge.simulators.clock import SimClock
from edge.simulators.devices import (
    ChirpStackUplinks,
    VirtualDevice,
    counter_record,
    gps_sentences,
    serial_sink,
)
from edge.transports.pty import VirtualSerialPort
from gateway.agent import Agent
from gateway.config import parse

from support import Recorder, cloud_services, wait_until

pytestmark = pytest.mark.e2e

SPEED = 60.0  # a simulated minute per second: a fix every 1/6 s, a counter record every second
APP = "5c3b0a8e-3f0e-4c1a-9d7e-2b7c1f0e9a11"
EUIS = {"s-mazzoni-01": "70b3d5e75e00a1f0", "s-mazzoni-02": "70b3d5e75e00a1f2"}


def sim_source(entry: dict[str, Any], org: str, start: datetime) -> Any:
    driver = get(entry["driver"])
    return driver.open(driver.Config.model_validate(entry), SourceContext(org, "gw-devices", 11, start))


def stored(influx: InfluxClient, kind: SensorKind) -> dict[tuple[str, int], dict[str, Any]]:
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for s in influx.series(f'SELECT * FROM "{kind.value}"'):
        cols = s["columns"]
        for row in s["values"]:
            rec = dict(zip(cols, row, strict=True))
            out[(rec["sensor"], rec["time"])] = rec
    return out


def ms(ts: datetime) -> int:
    return timestamp_ns(ts) // 1_000_000


def test_gateway_on_real_device_bytes_delivers_to_influxdb_and_survives_a_gps_unplug(
    settings: CloudSettings, mosquitto: Mosquitto, influx_db: InfluxClient, org: str, tmp_path: Path
) -> None:
    gps_port = VirtualSerialPort(tmp_path / "gps0")
    counter_port = VirtualSerialPort(tmp_path / "counter0")
    config = parse(
        {
            "id": "gw-devices",
            "org": org,
            "health_interval_s": 1,
            "batch": {"max_readings": 100, "max_interval_s": 0.3},
            "sensors": [
                {"driver": "nmea", "id": "v-bus-101", "port": str(gps_port.link), "baudrate": 9600,
                 "vehicle_type": "bus", "route": "lam-blu", "reconnect_max_s": 0.5},
                {"driver": "traffic_counter", "id": "t-repubblica", "port": str(counter_port.link),
                 "site": "repubblica"},
                {"driver": "bosch_parking", "id": "lora-centro", "broker": mosquitto.url,
                 "application_id": APP, "zone": "centro",
                 "devices": {eui: {"sensor": s, "street": "via-mazzoni"} for s, eui in EUIS.items()}},
            ],
        }
    )  # fmt: skip
    clock = SimClock.replaying(SPEED, horizon_s=120)
    start = clock.now()
    health = Recorder("127.0.0.1", mosquitto.port, [f"sr/v1/{org}/gw-devices/health"]).start()
    stop = threading.Event()
    devices: list[VirtualDevice] = []
    uplinks = ChirpStackUplinks(mosquitto.url, APP, EUIS)
    with cloud_services(settings):
        agent = Agent(config, clock=clock, state_dir=tmp_path / "state", broker_url=mosquitto.url)
        gateway = threading.Thread(target=agent.run, args=(stop,))
        gateway.start()
        try:
            sources = agent.sources
            wait_until(
                lambda: (
                    stats_of(sources["v-bus-101"])["state"] == "connected"  # type: ignore[index]
                    and stats_of(sources["t-repubblica"])["state"] == "connected"  # type: ignore[index]
                    and sources["lora-centro"].subscribed.is_set()
                ),  # type: ignore[attr-defined]
                30,
                what="the gateway to open both serial lines and subscribe to ChirpStack",
            )
            gps = VirtualDevice(
                sim_source({"driver": "sim_fleet", "id": "v-bus-101", "route": "lam-blu"}, org, start),
                clock,
                serial_sink(gps_port, gps_sentences),
            )
            counter = VirtualDevice(
                sim_source(
                    {"driver": "sim_traffic", "id": "t-repubblica", "site": "repubblica",
                     "direction": "inbound", "interval_s": 60},
                    org,
                    start,
                ),
                clock,
                serial_sink(counter_port, counter_record),
            )  # fmt: skip
            bays = VirtualDevice(
                sim_source(
                    {"driver": "sim_parking_spot", "id": "s-mazzoni-01", "street": "via-mazzoni",
                     "zone": "centro", "interval_s": 30},
                    org,
                    start,
                ),
                clock,
                uplinks.send,
            )  # fmt: skip
            devices = [gps.start(), counter.start(), bays.start()]

            def fleet_count() -> int:
                return len(stored(influx_db, SensorKind.FLEET))

            wait_until(lambda: fleet_count() >= 5, 60, what="fixes stored before the unplug")

            # Unplug: the receiver is off (it sends nothing), its pty is gone.
            gps.pause()
            # What the receiver sent before it went off is read before the plug is pulled
            # (bytes still in a pty that closes are lost, as in a real unplug).
            wait_until(
                lambda: stats_of(sources["v-bus-101"])["bytes"] == gps_port.bytes_written,  # type: ignore[index]
                30,
                what="the gateway to read the GPS's last bytes",
            )
            gps_port.unplug()
            wait_until(
                lambda: stats_of(sources["v-bus-101"])["state"] == "reconnecting",  # type: ignore[index]
                30,
                what="the gateway to notice the unplugged GPS",
            )
            before = fleet_count()
            # Plugged in again: a new pty behind the same path; the gateway is the same process.
            gps_port.replug()
            wait_until(
                lambda: stats_of(sources["v-bus-101"])["state"] == "connected",  # type: ignore[index]
                30,
                what="the gateway to reopen the re-created GPS",
            )
            gps.resume()
            wait_until(lambda: fleet_count() >= before + 5, 60, what="fixes stored after the replug")
        finally:
            for d in devices:
                d.stop()
            stop.set()
            gateway.join(60)
            uplinks.close()
            gps_port.close()
            counter_port.close()
        assert not gateway.is_alive()
        sent = [r for d in devices for r in d.sent]
        wait_until(
            lambda: sum(len(stored(influx_db, k)) for k in SensorKind) == len(sent),
            60,
            what=f"all {len(sent)} readings the devices sent stored",
        )
        health.stop()

    rows = {k: stored(influx_db, k) for k in SensorKind}
    gps_sent, counter_sent, bays_sent = (d.sent for d in devices)
    for r in gps_sent:
        row = rows[SensorKind.FLEET][("v-bus-101", ms(r.ts))]
        assert (row["lat"], row["lon"]) == (round(r.fields["lat"], 7), round(r.fields["lon"], 7))
        assert row["speed_kmh"] == pytest.approx(r.fields["speed_kmh"], abs=0.002)
        assert row["heading_deg"] == pytest.approx(r.fields["heading_deg"], abs=0.005)
        assert (row["vehicle_type"], row["route"]) == ("bus", "lam-blu")
    for r in counter_sent:
        row = rows[SensorKind.TRAFFIC][("t-repubblica", ms(r.ts))]
        assert {f: row[f] for f in r.fields} == r.fields
        assert (row["site"], row["lane"], row["direction"]) == ("repubblica", "1", "inbound")
    for r in bays_sent:
        row = rows[SensorKind.PARKING_SPOT][("s-mazzoni-01", ms(r.ts))]
        assert row["occupied"] is r.fields["occupied"]
        assert (row["zone"], row["street"]) == ("centro", "via-mazzoni")
    assert len(gps_sent) >= 10
    assert counter_sent
    assert bays_sent

    # The drivers' stats travel in the gateway's health: link state, frames, rejects, radio.
    last = orjson.loads(health.on(f"sr/v1/{org}/gw-devices/health")[-1][1])
    drivers = last["drivers"]
    assert drivers["v-bus-101"]["disconnects"] == 1
    assert drivers["v-bus-101"]["connects"] == 2
    assert drivers["lora-centro"]["devices"][EUIS["s-mazzoni-01"]]["rssi"] == -95


def test_readings_round_trip_through_device_bytes_exactly_as_the_simulators_made_them() -> None:
    """The virtual devices' encoders lose nothing the contract keeps (7-decimal degrees)."""
    start = datetime(2026, 11, 24, 7, tzinfo=UTC)
    fleet = sim_source({"driver": "sim_fleet", "id": "v-1", "route": "lam-blu"}, "o", start)
    traffic = sim_source(
        {"driver": "sim_traffic", "id": "t-1", "site": "repubblica", "direction": "inbound"}, "o", start
    )
    later = datetime(2026, 11, 24, 9, tzinfo=UTC)
    made: list[Reading] = fleet.poll(later)
    decoded = NmeaDecoder(org="o", gateway="gw-devices", sensor="v-1").feed(
        b"".join(map(gps_sentences, made))
    )
    assert [(r.ts, r.fields["lat"], r.fields["lon"]) for r in decoded.readings] == [
        (r.ts, round(r.fields["lat"], 7), round(r.fields["lon"], 7)) for r in made
    ]
    made = traffic.poll(later)
    decoded = TrafficCounterDecoder(org="o", gateway="gw-devices", sensor="t-1").feed(
        b"".join(map(counter_record, made))
    )
    assert [(r.ts, r.fields, r.tags) for r in decoded.readings] == [(r.ts, r.fields, r.tags) for r in made]
