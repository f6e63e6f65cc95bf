"""Transports with real I/O: serial lines over pseudo-terminals, ChirpStack uplinks on Mosquitto."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from cloud.dev.servers import Mosquitto
from edge.contract import Reading
from edge.drivers import Source, SourceContext, get, stats_of
from edge.drivers.bosch_parking import encoder as bosch
from edge.drivers.nmea import encoder as nmea
from edge.drivers.traffic_counter import encoder as tcr
from edge.transports.pty import VirtualSerialPort

from support import wait_until

CTX = SourceContext(org="alia", gateway="gw-fleet", seed=0, start=datetime(2026, 11, 24, tzinfo=UTC))
T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
APP = "5c3b0a8e-3f0e-4c1a-9d7e-2b7c1f0e9a11"


def open_source(entry: dict[str, Any]) -> Source:
    driver = get(entry["driver"])
    return driver.open(driver.Config.model_validate(entry), CTX)


class Collector:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.readings: list[Reading] = []

    def until(self, n: int, what: str, timeout_s: float = 20) -> list[Reading]:
        def enough() -> bool:
            self.readings += self.source.poll(datetime.now(UTC))
            return len(self.readings) >= n

        wait_until(enough, timeout_s, what=what)
        return self.readings

    def connected(self) -> Collector:
        """Poll until the port is open: pyserial flushes the input buffer when it opens a port,
        so bytes a device sent before that are gone, as on real hardware."""
        wait_until(
            lambda: (
                self.readings.extend(self.source.poll(datetime.now(UTC)))
                or self.stats()["state"] == "connected"
            ),
            15,
            what="the serial line to connect",
        )
        return self

    def stats(self) -> dict[str, Any]:
        stats = stats_of(self.source)
        assert stats is not None
        return stats


def fixes(start: int, n: int) -> bytes:
    return b"".join(
        nmea.epoch(T0 + timedelta(seconds=i), 43.88 + i * 1e-5, 11.1 + i * 1e-5, 25.0, 90.0)
        for i in range(start, start + n)
    )


def test_nmea_source_reads_fixes_from_a_serial_line(tmp_path: Path):
    with VirtualSerialPort(tmp_path / "gps0") as port:
        source = open_source({"driver": "nmea", "id": "v-01", "port": str(port.link), "baudrate": 4800})
        try:
            c = Collector(source).connected()
            port.write(fixes(0, 3))
            readings = c.until(3, "three fixes")
            assert [r.ts for r in readings] == [T0 + timedelta(seconds=i) for i in range(3)]
            assert readings[0].fields["lat"] == 43.88
            stats = c.stats()
            assert stats["state"] == "connected"
            assert stats["sentences"] == {"RMC": 3, "VTG": 3, "GGA": 3}
            assert stats["satellites"] == 9
        finally:
            source.close()


def test_unplugged_and_recreated_device_resumes_on_the_same_path(tmp_path: Path):
    with VirtualSerialPort(tmp_path / "gps0") as port:
        source = open_source({"driver": "nmea", "id": "v-01", "port": str(port.link), "reconnect_max_s": 0.5})
        try:
            c = Collector(source).connected()
            port.write(fixes(0, 2))
            c.until(2, "fixes before the unplug")
            first_pty = port.slave_name
            port.unplug()
            wait_until(
                lambda: (source.poll(datetime.now(UTC)) or True) and c.stats()["state"] == "reconnecting",
                10,
                what="the source to notice the unplug",
            )
            port.replug()
            assert port.slave_name != first_pty or port.link.resolve() == Path(port.slave_name)
            wait_until(
                lambda: (
                    (c.readings.extend(source.poll(datetime.now(UTC))) or True)
                    and c.stats()["state"] == "connected"
                ),
                15,
                what="the source to reopen the re-created device",
            )
            port.write(fixes(2, 2))
            readings = c.until(4, "fixes after the replug")
            assert [r.ts for r in readings] == [T0 + timedelta(seconds=i) for i in range(4)]
            stats = c.stats()
            assert (stats["connects"], stats["disconnects"]) == (2, 1)
        finally:
            source.close()


def test_device_absent_at_start_is_picked_up_when_it_appears(tmp_path: Path):
    link = tmp_path / "counter0"
    source = open_source(
        {"driver": "traffic_counter", "id": "t-01", "port": str(link), "reconnect_max_s": 0.3}
    )
    try:
        c = Collector(source)
        source.poll(datetime.now(UTC))
        assert c.stats()["state"] == "reconnecting"
        assert "counter0" in c.stats()["last_io_error"]
        with VirtualSerialPort(link) as port:
            c.connected()
            port.write(
                tcr.record(
                    site="repubblica",
                    lane=1,
                    direction="inbound",
                    end=T0,
                    interval_s=300,
                    counts=tcr.split_classes(80, 6),
                    speed_kmh=41.0,
                    occupancy_pct=9.5,
                )
            )
            [r] = c.until(1, "one record")
            assert r.fields["vehicles"] == 80
    finally:
        source.close()


def test_garbage_on_the_line_is_counted_and_the_stream_resyncs(tmp_path: Path):
    with VirtualSerialPort(tmp_path / "gps0") as port:
        source = open_source({"driver": "nmea", "id": "v-01", "port": str(port.link), "parity": "E"})
        try:
            c = Collector(source).connected()
            good = fixes(0, 1)
            port.write(b"\x00\xff\xfe garbage " + good[:30] + b"\r\n" + b"$GPRMC,1*00\r\n" + good)
            c.until(1, "the fix after the noise")
            rejected = c.stats()["rejected"]
            assert rejected.get("garbage", 0) >= 1
            assert rejected.get("bad_checksum", 0) + rejected.get("no_checksum", 0) >= 2
        finally:
            source.close()


def test_a_baudrate_a_uart_cannot_do_is_refused_naming_the_choices():
    with pytest.raises(ValidationError, match=r"960 is not one of 1200, 2400, 4800, 9600"):
        get("nmea").Config.model_validate(
            {"driver": "nmea", "id": "v-01", "port": "/dev/gps0", "baudrate": 960}
        )


def test_chirpstack_uplinks_on_the_broker_become_readings_with_radio_health(mosquitto: Mosquitto):
    source = open_source(
        {
            "driver": "bosch_parking",
            "id": "lora-centro",
            "broker": mosquitto.url,
            "application_id": APP,
            "zone": "centro",
            "devices": {"70b3d5e75e00a1f0": {"sensor": "s-mazzoni-01", "street": "via-mazzoni"}},
        }
    )
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2)
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    try:
        wait_until(source.subscribed.is_set, 10, what="subscribed")  # type: ignore[attr-defined]
        c = Collector(source)
        for fcnt, eui in (
            (1, "70b3d5e75e00a1f0"),
            (2, "70b3d5e75e00a1f0"),
            (2, "70b3d5e75e00a1f0"),
            (7, "70b3d5e75e00a1f0"),
            (0, "0011223344556677"),
        ):
            payload = bosch.uplink_json(
                dev_eui=eui, application_id=APP, f_port=1, payload=bosch.status(fcnt % 2 == 1),
                f_cnt=fcnt, ts=T0 + timedelta(minutes=fcnt), rssi=-100 + fcnt,
            )  # fmt: skip
            publisher.publish(bosch.uplink_topic(APP, eui), payload, qos=1).wait_for_publish(5)
        publisher.publish(f"application/{APP}/device/70b3d5e75e00a1f0/event/join", b"{}", qos=1)
        readings = c.until(4, "four readings (one duplicate dropped)")
        assert [(r.sensor, r.fields["occupied"]) for r in readings] == [
            ("s-mazzoni-01", True),
            ("s-mazzoni-01", False),
            ("s-mazzoni-01", True),
            ("eui-0011223344556677", False),
        ]
        assert readings[0].tags == {"zone": "centro", "street": "via-mazzoni"}
        stats = c.stats()
        device = stats["devices"]["70b3d5e75e00a1f0"]
        assert (device["fcnt"], device["fcnt_gaps"], device["duplicates"], device["rssi"]) == (7, 4, 1, -93)
        assert stats["state"] == "connected"
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        source.close()
