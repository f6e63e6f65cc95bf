"""Checkpoints of what the rules learn (cloud/rules/checkpoint.py): saved, restored, refused."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloud.core.alerts import Alert
from cloud.rules.checkpoint import SEQ_WINDOW, CheckpointStore, Delivered
from cloud.rules.engine import Engine
from cloud.rules.field import ScoredFieldRule
from cloud.rules.kinds.seasonal import Seasonal, SeasonalConfig
from edge.contract import Reading, SensorKind

T0 = datetime(2026, 11, 2, tzinfo=UTC)


def readings(days: int, sensor: str = "t-roma-in", drop_at: int | None = None) -> list[Reading]:
    rnd = random.Random(sensor)
    out = []
    for i in range(days * 288):
        ts = T0 + timedelta(minutes=5 * i)
        hour = ts.hour + ts.minute / 60
        vehicles = int(120 + 80 * math.sin(math.pi * hour / 12) + rnd.gauss(0, 5))
        if drop_at is not None and drop_at <= i < drop_at + 12:
            vehicles = 3
        fields = {
            "vehicles": vehicles,
            "heavy": 0,
            "interval_s": 300,
            "speed_kmh": 40.0,
            "occupancy_pct": 9.0,
        }
        out.append(
            Reading(kind=SensorKind.TRAFFIC, org="o", gateway="g", sensor=sensor, ts=ts, fields=fields)
        )
    return out


def flow_rule(**changes: object) -> Seasonal:
    return Seasonal(SeasonalConfig(name="flow", kind=SensorKind.TRAFFIC, field="vehicles", **changes))  # type: ignore[arg-type]


def run(engine: Engine, rs: list[Reading]) -> list[Alert]:
    return [a for r in rs for a in engine.observe(r)]


def test_a_restored_engine_scores_and_alerts_as_one_that_never_stopped(tmp_path: Path) -> None:
    rs = readings(6, drop_at=6 * 288 - 100)
    cut = 6 * 288 - 95  # in the middle of the drop: its alert is open at the checkpoint
    whole = run(Engine([flow_rule()]), rs)
    assert [a.state for a in whole] == ["firing", "resolved"]

    first = Engine([flow_rule()])
    before = run(first, rs[:cut])
    store = CheckpointStore(f"sqlite:///{tmp_path / 'cp.db'}")
    assert store.save(first, Delivered()) == 1

    again = Engine([flow_rule()])
    found = CheckpointStore(f"sqlite:///{tmp_path / 'cp.db'}").restore(again)
    assert (found.checkpoint, found.series, found.refused, found.open_alerts) == (1, 1, 0, 1)
    assert before + run(again, rs[cut:]) == whole


def test_a_checkpoint_writes_only_the_series_changed_since_the_last_one(tmp_path: Path) -> None:
    engine = Engine([flow_rule()])
    store = CheckpointStore(f"sqlite:///{tmp_path / 'cp.db'}")
    run(engine, readings(1, "t-roma-in") + readings(1, "t-galilei-in"))
    assert store.save(engine, Delivered()) == 2
    run(engine, readings(1, "t-roma-in")[:3])
    assert store.save(engine, Delivered()) == 1
    assert store.save(engine, Delivered()) == 0
    assert store.save(engine, Delivered(), every_series=True) == 2


def test_a_rule_whose_config_changed_relearns_instead_of_taking_the_old_state(tmp_path: Path) -> None:
    engine = Engine([flow_rule()])
    run(engine, readings(1))
    store = CheckpointStore(f"sqlite:///{tmp_path / 'cp.db'}")
    store.save(engine, Delivered())
    changed = Engine([flow_rule(score_above=0.9)])
    found = store.restore(changed)
    assert (found.series, found.refused) == (0, 1)
    rule = changed.rules[0]
    assert isinstance(rule, ScoredFieldRule)
    assert rule.detectors == {}
    assert store.restore(Engine([flow_rule(score_above=0.9)])).refused == 0, "the old rows are gone"


def test_checkpoints_of_another_instance_are_not_restored(tmp_path: Path) -> None:
    engine = Engine([flow_rule()])
    run(engine, readings(1))
    CheckpointStore(f"sqlite:///{tmp_path / 'cp.db'}", "a").save(engine, Delivered())
    assert CheckpointStore(f"sqlite:///{tmp_path / 'cp.db'}", "b").restore(Engine([flow_rule()])).series == 0


def test_a_batch_taken_in_once_is_a_duplicate_after_a_restore_and_a_restarted_gateway_is_not() -> None:
    delivered = Delivered()
    assert delivered.take("o", "g", 7, 1_000)
    assert not delivered.take("o", "g", 7, 1_000)
    restored = Delivered.from_state(delivered.state())
    assert not restored.take("o", "g", 7, 1_000)
    assert restored.take("o", "g", 7, 9_000), "seq 7 again with other readings: the gateway started over"
    assert restored.take("o", "other", 7, 1_000)


def test_the_duplicate_window_is_bounded_per_gateway() -> None:
    delivered = Delivered()
    for seq in range(SEQ_WINDOW + 1):
        delivered.take("o", "g", seq, seq)
    assert delivered.take("o", "g", 0, 0), "the oldest left the window"
    assert not delivered.take("o", "g", SEQ_WINDOW, SEQ_WINDOW)
