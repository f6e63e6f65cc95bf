"""The agent with a real broker: replay order, live data first, health as the contract says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml
from jsonschema import Draft7Validator

from cloud.dev.servers import Mosquitto
from edge.contract import SensorKind, decode, topics
from edge.drivers import SourceContext, get
from edge.simulators.clock import ManualClock
from gateway import batches
from gateway.agent import Agent
from gateway.config import parse
from gateway.spool import OutgoingMessage, Spool

from support import Recorder, wait_until

REPO = Path(__file__).resolve().parents[2]
BACKLOG = 600


def raw_config(org: str, **overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": "gw-replay",
        "org": org,
        "health_interval_s": 0.5,
        "batch": {"max_interval_s": 0.2},
        "broker": {"max_inflight": 2},
        "sensors": [{"driver": "sim_fleet", "id": "v-bus-101", "route": "lam-blu"}],
    }
    raw.update(overrides)
    return raw


def prefill(state_dir: Path, org: str) -> None:
    """A backlog of BACKLOG one-reading batches, seq 0..BACKLOG-1, as a long outage leaves."""
    cfg = parse(raw_config(org))
    start = datetime(2026, 11, 20, tzinfo=UTC)
    source = get("sim_fleet").open(cfg.sensors[0], SourceContext(org, "gw-replay", 0, start))
    readings = source.poll(start + timedelta(seconds=10 * BACKLOG))[:BACKLOG]
    spool = Spool(state_dir / "gw-replay.spool.sqlite")
    messages = []
    for seq, r in enumerate(readings):
        data, offset = batches.payload(
            org=org, gateway="gw-replay", kind=SensorKind.FLEET, seq=seq, sent_at=start,
            readings=batches.fragment([r]),
        )  # fmt: skip
        messages.append(OutgoingMessage(topics.data(org, "gw-replay", SensorKind.FLEET), data, readings=1,
                                sent_at_offset=offset))  # fmt: skip
    spool.append(messages)
    spool.set_meta({"next_seq": str(BACKLOG)})
    spool.close()


def test_a_backlog_replays_in_order_while_live_batches_overtake_it(
    mosquitto: Mosquitto, org: str, tmp_path: Path
) -> None:
    prefill(tmp_path, org)
    recorder = Recorder("127.0.0.1", mosquitto.port, [f"sr/v1/{org}/gw-replay/data/+"]).start()
    clock = ManualClock(datetime(2026, 11, 24, 8, 0, tzinfo=UTC))
    agent = Agent(parse(raw_config(org)), clock=clock, state_dir=tmp_path, broker_url=mosquitto.url)
    agent.link.start()
    try:
        wait_until(lambda: agent.link.connects, 20, what="connected (CONNACK handled)")
        agent.pump()  # the first window of backlog (2 messages) goes out
        clock.advance(60)
        agent.tick(force_flush=True)  # six live fixes, sealed into a batch
        sealed = agent.spool.messages
        while agent.spool.messages:
            agent.pump()
            agent.flush_acks(now=True)  # the run loop groups deletes over 0.1 s; here at once
            if agent.spool.messages:
                wait_until(lambda: agent.link.acks, 10, interval_s=0.001, what="acks")
        assert sealed == BACKLOG + 1, "the backlog (in flight or not) and one live batch"
        wait_until(lambda: len(recorder.messages) >= BACKLOG + 1, 20, what="every message on the broker")
    finally:
        agent.link.stop()
        agent.spool.close()
        recorder.stop()
    seqs = [decode(p).envelope.seq for _, p in recorder.messages]
    backlog = [s for s in seqs if s < BACKLOG]
    assert backlog == list(range(BACKLOG)), "the backlog arrives whole and in order"
    assert seqs.index(BACKLOG) < 10, "the live batch overtakes the backlog at the first room in the window"
    assert {r.sensor for _, p in recorder.messages for r in decode(p).readings} == {"v-bus-101"}


def test_health_matches_the_contract_and_carries_each_drivers_own_state(org: str, tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 11, 24, 8, 0, tzinfo=UTC))
    agent = Agent(
        parse(raw_config(org)),
        clock=clock,
        state_dir=tmp_path,
        broker_url="mqtt://127.0.0.1:9",  # nothing listens: health is built offline
    )
    try:
        stats = {"state": "connected", "rssi_dbm": -97, "snr_db": 7.5}
        agent.sources["v-bus-101"].stats = lambda: stats  # type: ignore[method-assign]
        clock.advance(60)
        agent.tick(force_flush=True)
        health = agent.health()
        doc = yaml.safe_load((REPO / "docs" / "contract" / "asyncapi.yaml").read_text())
        schema = {"allOf": [doc["components"]["schemas"]["Health"]], "components": doc["components"]}
        Draft7Validator(schema).validate(orjson.loads(orjson.dumps(health)))
        assert health["drivers"] == {"v-bus-101": stats}
        assert health["queue_depth"] == agent.counters.readings_read > 0
        assert health["oldest_queued_age_s"] is not None
        assert health["connected"] is False
        for key in ("cpu_pct", "rss_mb", "disk_free_mb", "config_version"):
            assert key in health
        agent.enqueue_health()
        assert agent.spool.messages >= 1, "health is spooled while offline, never lost"
    finally:
        agent.spool.close()
