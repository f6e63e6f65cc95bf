"""Per-gateway batch accounting with several ingest workers on one shared subscription.

The same traffic — batches skipped (gaps), sent twice (redeliveries), sent late (a gap filled)
— goes once through one worker and once through two workers sharing a subscription; what the
pipeline dashboard shows per gateway (gaps, duplicates, highest seq) must be the same, and the
truth of the traffic. Issue 18 point 9, issue 19's scale-out acceptance.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.core.settings import CloudSettings
from cloud.dashboards.build import pipeline
from cloud.dashboards.queries import expand
from cloud.ingest.consumer import Ingest
from cloud.io.influx.client import InfluxClient
from edge.contract import SensorKind, format_ts, topics

from support import count_points, unique, wait_until

pytestmark = pytest.mark.e2e

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
GATEWAYS = [f"gw-{g}" for g in range(3)]


def traffic() -> list[tuple[str, int]]:
    """(gateway, seq) in publish order, interleaved so that each gateway's batches are split
    between the workers. Per gateway: 0..29 with 7 and 12 skipped, 15 and 16 never sent
    (gaps), 3 and 20 sent again later (duplicates), 12 sent last (a late batch fills its gap)."""
    per_gateway = [s for s in range(30) if s not in (7, 12, 15, 16)] + [3, 20, 12]
    return [(gw, seq) for seq in per_gateway for gw in GATEWAYS]


EXPECTED = {"seq": 29, "gaps": 3, "duplicates": 2}


def publish(port: int, org: str, batches: list[tuple[str, int]]) -> int:
    """Publish the batches at QoS 1; the number of readings InfluxDB keeps (a batch sent twice
    rewrites the same points)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub-"))
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for gw, seq in batches:
            ts = format_ts(T0 + timedelta(seconds=seq))
            body = {"v": 1, "org": org, "gateway": gw, "kind": "parking", "seq": seq,
                    "sent_at": format_ts(datetime.now(UTC)),
                    "readings": [{"sensor": f"p-{i}", "ts": ts,
                                  "fields": {"occupied": i, "capacity": 10, "occupancy_pct": i * 10.0}}
                                 for i in range(3)]}  # fmt: skip
            client.publish(
                topics.data(org, gw, SensorKind.PARKING), orjson.dumps(body), qos=1
            ).wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()
    return 3 * len(set(batches))


def shown(influx: InfluxClient, org: str) -> dict[str, dict[str, int]]:
    """Per gateway, what the pipeline dashboard's sequence table shows for `org`."""
    (table,) = [p for p in pipeline()["panels"] if p["title"].startswith("Gateway: sequenze")]
    query = expand(table["targets"][0]["query"], variables={"org": org})
    out: dict[str, dict[str, int]] = {}
    for series in influx.series(query):
        row = dict(zip(series["columns"], series["values"][0], strict=True))
        out[series["tags"]["gateway"]] = {k: row[v] for k, v in (("seq", "seq"), ("gaps", "lacune"),
                                                                ("duplicates", "duplicati"))}  # fmt: skip
    return out


@contextmanager
def running(workers: list[Ingest]) -> Iterator[None]:
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: all(w.conn.subscribed.is_set() for w in workers), 30, what="workers subscribed")
        yield
    finally:
        for w in workers:
            w.stop()
        for t in threads:
            t.join(30)


def test_two_workers_on_a_shared_subscription_count_gaps_and_duplicates_as_one_worker_does(
    settings: CloudSettings, influx_db: InfluxClient
) -> None:
    port = int(settings.mqtt_url.rsplit(":", 1)[1])
    batches = traffic()
    alone, shared = settings.org_filter, unique("org-")
    fast = {"stats_interval_s": 0.3}

    one = Ingest(settings.model_copy(update=fast))
    with running([one]):
        stored = publish(port, alone, batches)
        wait_until(lambda: count_points(influx_db) == stored, 60, what="one worker wrote all")
        wait_until(lambda: shown(influx_db, alone) == dict.fromkeys(GATEWAYS, EXPECTED), 30,
                   what="one worker's counts on the dashboard")  # fmt: skip

    group = unique("g")
    pair = [
        Ingest(
            settings.model_copy(
                update=fast | {"org_filter": shared, "share_group": group, "instance": unique("w-")}
            )
        )
        for _ in range(2)
    ]
    with running(pair):
        stored += publish(port, shared, batches)
        wait_until(lambda: count_points(influx_db) == stored, 60, what="two workers wrote all")
        assert all(w.stats.snapshot()["readings_written"] > 0 for w in pair), "both workers took a share"
        wait_until(lambda: shown(influx_db, shared) == shown(influx_db, alone), 30,
                   what="two workers' counts equal one worker's")  # fmt: skip

        # And each worker of the pair holds those counts itself, not only the larger of the two.
        def per_gateway(w: Ingest) -> dict[str, dict[str, int]]:
            return {gw: counts for (_, gw), counts in w.stats.accounts.snapshot().items()}

        assert all(per_gateway(w) == per_gateway(one) for w in pair), [per_gateway(w) for w in pair]
