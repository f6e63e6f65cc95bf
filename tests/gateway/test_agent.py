"""The agent with a real broker: replay order, live data first, health as the contract says."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml
from jsonschema import Draft7Validator

from cloud.devservers import Mosquitto
from edge.contract import SensorKind, decode, topics
from edge.drivers import SourceContext, get
from edge.simulators.clock import SimClock
from gateway import batches
from gateway.agent import Agent
from gateway.config import parse
from gateway.spool import Message, Spool

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
        messages.append(Message(topics.data(org, "gw-replay", SensorKind.FLEET), data, readings=1,
                                sent_at_offset=offset))  # fmt: skip
    spool.append(messages)
    spool.set_meta({"next_seq": str(BACKLOG)})
    spool.close()


def test_a_backlog_replays_in_order_while_live_batches_overtake_it(
    mosquitto: Mosquitto, org: str, tmp_path: Path
) -> None:
    prefill(tmp_path, org)
    recorder = Recorder("127.0.0.1", mosquitto.port, [f"sr/v1/{org}/gw-replay/data/+"]).start()
    start = datetime.now(UTC) - timedelta(hours=2)
    agent = Agent(
        parse(raw_config(org)), clock=SimClock(600, start), state_dir=tmp_path, broker_url=mosquitto.url
    )
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: agent.spool.messages < 5 and agent.counters.readings_read > 0, 60, what="drained")
    finally:
        stop.set()
        thread.join(60)
        recorder.stop()
    seqs = [decode(p).envelope.seq for _, p in recorder.messages]
    backlog = [s for s in seqs if s < BACKLOG]
    assert backlog == list(range(BACKLOG)), "the backlog arrives whole and in order"
    last_backlog = seqs.index(BACKLOG - 1)
    assert any(s >= BACKLOG for s in seqs[:last_backlog]), "live batches do not wait for the backlog"
    live = [s for s in seqs if s >= BACKLOG]
    assert live == sorted(live)
    assert {r.sensor for _, p in recorder.messages for r in decode(p).readings} == {"v-bus-101"}


def test_health_matches_the_contract_and_carries_each_drivers_own_state(org: str, tmp_path: Path) -> None:
    agent = Agent(
        parse(raw_config(org)),
        clock=SimClock(600, datetime.now(UTC) - timedelta(hours=1)),
        state_dir=tmp_path,
        broker_url="mqtt://127.0.0.1:9",  # nothing listens: health is built offline
    )
    try:
        source = agent.sources["v-bus-101"]
        source.stats = lambda: {"state": "connected", "rssi_dbm": -97, "snr_db": 7.5}  # type: ignore[attr-defined]
        agent.tick(force_flush=True)
        health = agent.health()
        doc = yaml.safe_load((REPO / "docs" / "contract" / "asyncapi.yaml").read_text())
        schema = {"allOf": [doc["components"]["schemas"]["Health"]], "components": doc["components"]}
        Draft7Validator(schema).validate(orjson.loads(orjson.dumps(health)))
        assert health["drivers"] == {"v-bus-101": {"state": "connected", "rssi_dbm": -97, "snr_db": 7.5}}
        assert health["queue_depth"] == agent.counters.readings_read > 0
        assert health["oldest_queued_age_s"] is not None
        assert health["connected"] is False
        for key in ("cpu_pct", "rss_mb", "disk_free_mb", "config_version"):
            assert key in health
        agent.enqueue_health()
        assert agent.spool.messages >= 1, "health is spooled while offline, never lost"
    finally:
        agent.spool.close()
