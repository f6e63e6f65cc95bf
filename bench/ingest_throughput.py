"""Ingest throughput: readings/s from MQTT into InfluxDB through `cloud.ingest`, end to end.

Starts its own Mosquitto and InfluxDB (cloud.devservers), publishes N readings in batches of B
at QoS 1 from one paho client, and times until InfluxDB holds them all. Prints the figures.

    .venv/bin/python bench/ingest_throughput.py [--readings 200000] [--batch 500]
"""

from __future__ import annotations

import argparse
import platform
import resource
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud.devservers import Influxd, Mosquitto
from cloud.influx.client import InfluxClient
from cloud.ingest.consumer import Ingest
from cloud.settings import CloudSettings
from edge.contract import Batch, Reading, SensorKind, encode, topics


def batches(n_readings: int, batch_size: int) -> list[tuple[str, bytes]]:
    t0 = datetime.now(UTC) - timedelta(days=1)
    out = []
    for seq, start in enumerate(range(0, n_readings, batch_size)):
        readings = [
            Reading(
                kind=SensorKind.PARKING,
                org="bench",
                gateway="gw-bench",
                sensor=f"p-{i % 1000}",
                ts=t0 + timedelta(seconds=i // 1000),
                fields={"occupied": i % 500, "capacity": 500, "occupancy_pct": (i % 500) / 5},
                tags={"zone": "centro"},
            )
            for i in range(start, min(start + batch_size, n_readings))
        ]
        batch = Batch.of(readings, seq=seq, sent_at=datetime.now(UTC))
        out.append((topics.data("bench", "gw-bench", SensorKind.PARKING), encode(batch)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()
    messages = batches(args.readings, args.batch)
    with (
        tempfile.TemporaryDirectory() as tmp,
        Mosquitto(Path(tmp) / "mq") as mq,
        Influxd(Path(tmp) / "ix") as ix,
    ):
        settings = CloudSettings(mqtt_url=mq.url, influx_url=ix.url, influx_db="bench")
        ingest = Ingest(settings)
        thread = threading.Thread(target=ingest.run, daemon=True)
        thread.start()
        ingest.conn.connected.wait(10)
        time.sleep(0.5)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub")
        pub.max_inflight_messages_set(1000)
        pub.connect("127.0.0.1", mq.port)
        pub.loop_start()
        t0 = time.perf_counter()
        infos = [pub.publish(t, p, qos=1) for t, p in messages]
        for info in infos:
            info.wait_for_publish(60)
        t_pub = time.perf_counter() - t0
        while ingest.stats.snapshot()["readings_written"] < args.readings:
            time.sleep(0.01)
        t_all = time.perf_counter() - t0
        ingest.stop()
        thread.join(30)
        pub.disconnect()
        pub.loop_stop()
        stored = InfluxClient(ix.url, "bench").series('SELECT count("occupied") FROM "parking"')
        n_stored = stored[0]["values"][0][1]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"machine: {platform.node()} {platform.machine()}, python {platform.python_version()}")
    print(f"readings: {args.readings:,} in batches of {args.batch} ({len(messages):,} messages)")
    print(f"published (all PUBACKed): {t_pub:.2f} s")
    print(f"stored in InfluxDB:       {t_all:.2f} s  -> {args.readings / t_all:,.0f} readings/s end to end")
    print(f"points counted in InfluxDB: {n_stored:,}")
    print(f"bench process max RSS (publisher + ingest): {rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
