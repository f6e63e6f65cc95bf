"""A fault of one rule on one message costs that message, never the rules service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cloud.core.settings import CloudSettings
from cloud.rules.engine import Engine, load_rules
from cloud.rules.service import Inbound, RulesService
from edge.contract import Batch, Reading, SensorKind, encode, topics

RULES = "rules: [{rule: threshold, name: parking-full, kind: parking, field: occupancy_pct, above: 95}]"


def message(org: str, seq: int, pct: float) -> Inbound:
    fields = {"occupied": int(pct * 2), "capacity": 200, "occupancy_pct": pct}
    reading = Reading(kind=SensorKind.PARKING, org=org, gateway="gw-1", sensor="p-1",
                      ts=datetime.now(UTC), fields=fields)  # fmt: skip
    batch = Batch.of([reading], seq=seq, sent_at=reading.ts)
    return Inbound(topics.data(org, "gw-1", SensorKind.PARKING), encode(batch), seq + 1, 1, 0)


def test_a_rule_failing_on_one_message_is_counted_and_the_next_message_is_judged(
    tmp_path: Path, settings: CloudSettings, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    service = RulesService(settings, Engine(load_rules(path)))
    engine = service.engine
    judge = engine.observe_many
    failures = [RuntimeError("a bug in a rule")]

    def faulty(readings: Sequence[Reading], arrived: Any = None) -> Any:
        if failures:
            raise failures.pop()
        return judge(readings, arrived)

    engine.observe_many = faulty  # type: ignore[method-assign]
    org = settings.org_filter

    assert service._take(message(org, 0, 99.0)) == []
    alerts = service._take(message(org, 1, 99.0))

    assert service.handle_errors == 1
    assert "a bug in a rule" in caplog.text
    assert [(a.rule, a.state) for a in alerts] == [("parking-full", "firing")]
