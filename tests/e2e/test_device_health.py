"""Device health end to end: what a gateway counts about its devices — LoRaWAN frame counters,
RSSI/SNR, a Bosch sensor's heartbeat temperature, the GPS fix, the gateway's clock — reaches
InfluxDB through ingest, for the pipeline dashboard. Issue 18 point 10."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from cloud.core.settings import CloudSettings
from cloud.dev.servers import Mosquitto
from cloud.ingest.consumer import Ingest
from cloud.io.influx.client import InfluxClient
from edge.simulators.clock import SimClock
from gateway.agent import Agent
from gateway.config import parse

from support import wait_until

pytestmark = pytest.mark.e2e


def last_rows(influx: InfluxClient, measurement: str, by: str) -> dict[str, dict[str, Any]]:
    """The last value of every field, per value of the tag `by`."""
    out: dict[str, dict[str, Any]] = {}
    for s in influx.series(f'SELECT last(*) FROM "{measurement}" GROUP BY "{by}"'):
        row = dict(zip(s["columns"], s["values"][0], strict=True))
        out[s["tags"][by]] = {k.removeprefix("last_"): v for k, v in row.items() if v is not None}
    return out


def test_a_gateways_device_health_reaches_influxdb(
    settings: CloudSettings, mosquitto: Mosquitto, influx_db: InfluxClient, org: str, tmp_path: Path
) -> None:
    config = parse(
        {
            "id": "gw-devices",
            "org": org,
            "health_interval_s": 0.5,
            "batch": {"max_interval_s": 0.3},
            "sensors": [
                {
                    "driver": "sim_parking_spot",
                    "id": "s-mazzoni-01",
                    "street": "via-mazzoni",
                    "zone": "centro",
                },
                {"driver": "sim_fleet", "id": "v-bus-101", "route": "lam-blu"},
            ],
        }
    )
    ingest = Ingest(settings)
    thread = threading.Thread(target=ingest.run, daemon=True)
    thread.start()
    try:
        wait_until(ingest.conn.subscribed.is_set, 30, what="ingest subscribed")
        agent = Agent(
            config, clock=SimClock.replaying(60, horizon_s=4), state_dir=tmp_path, broker_url=mosquitto.url
        )
        agent.run(threading.Event(), duration_s=3)

        def devices() -> dict[str, dict[str, Any]]:
            return last_rows(influx_db, "sitroom_device_health", "sensor")

        wait_until(lambda: {"s-mazzoni-01", "v-bus-101"} <= devices().keys(), 30, what="device health stored")
        spot, bus = devices()["s-mazzoni-01"], devices()["v-bus-101"]
        assert {"rssi_dbm", "snr_db", "fcnt_gaps", "uplinks", "temperature_c"} <= spot.keys(), spot
        assert {"fix_quality", "satellites", "hdop"} <= bus.keys(), bus
        assert bus["fix_quality"] >= 1
        assert spot["fcnt_gaps"] == 0

        gateway = last_rows(influx_db, "sitroom_gateway_health", "gateway")["gw-devices"]
        assert "clock_max_error_s" in gateway, gateway
        assert gateway["clock_synchronized"] in (0, 1), gateway
        # Every field a float, whatever its values: a type is fixed on the first write.
        for measurement in ("sitroom_device_health", "sitroom_gateway_health"):
            (keys,) = influx_db.series(f'SHOW FIELD KEYS FROM "{measurement}"')
            assert {t for _, t in keys["values"]} == {"float"}, keys
    finally:
        ingest.stop()
        thread.join(30)
