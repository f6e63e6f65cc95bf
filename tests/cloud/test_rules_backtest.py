"""Backtesting: the rules engine replayed over history from InfluxDB or from a CSV of readings."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloud.io.influx.client import InfluxClient
from cloud.io.influx.lineprotocol import reading_lines
from cloud.rules.backtest import Skipped, backtest, readings_from_influx
from cloud.rules.engine import load_rules
from edge.contract import Reading, SensorKind

T0 = datetime(2026, 11, 20, 8, tzinfo=UTC)
RULES = """
rules:
  - {rule: threshold, name: parking-full, kind: parking, field: occupancy_pct,
     above: 95, clear: 90, hold_min: 10}
"""


def parking(minutes: int, pct: float, sensor: str = "p-a") -> Reading:
    return Reading(
        kind=SensorKind.PARKING, org="comune-prato", gateway="gw-x", sensor=sensor,
        ts=T0 + timedelta(minutes=minutes),
        fields={"occupied": round(pct * 5), "capacity": 500, "occupancy_pct": pct},
    )  # fmt: skip


def history() -> list[Reading]:
    pcts = [80, 90, 96, 97, 98, 99, 99, 92, 85, 80]
    return [parking(5 * i, float(p)) for i, p in enumerate(pcts)] + [
        parking(5 * i, 50.0, "p-b") for i in range(10)
    ]


def test_replaying_influxdb_history_reports_what_would_have_fired(
    tmp_path: Path, influx_db: InfluxClient
) -> None:
    influx_db.write(reading_lines(history()))
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    skipped: list[Skipped] = []
    readings = readings_from_influx(
        influx_db, T0 - timedelta(hours=1), T0 + timedelta(hours=2), skipped.append
    )
    assert skipped == []
    assert len(readings) == 20
    alerts = backtest(load_rules(path), readings)
    assert [(a.state, a.entity, a.ts) for a in alerts] == [
        ("firing", "p-a", T0 + timedelta(minutes=20)),
        ("resolved", "p-a", T0 + timedelta(minutes=40)),
    ]


def test_sitroom_rules_replay_over_a_readings_csv_lists_alerts_and_skips_bad_rows(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    lines = ["timestamp,kind,org,gateway,sensor,occupied,capacity,occupancy_pct"]
    for r in history():
        f = r.fields
        lines.append(
            f"{r.ts.isoformat()},parking,{r.org},{r.gateway},{r.sensor},{f['occupied']},500,{f['occupancy_pct']}"
        )
    lines.append("not-a-time,parking,comune-prato,gw-x,p-a,1,500,0.2")
    csv_path = tmp_path / "readings.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    sitroom = Path(sys.executable).with_name("sitroom")
    done = subprocess.run(
        [str(sitroom), "rules", "replay", "--rules", str(rules), "--readings", str(csv_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = done.stdout.splitlines()
    assert len(out) == 2
    assert "firing" in out[0]
    assert "comune-prato/p-a" in out[0]
    assert f"{csv_path}:22: skipped" in done.stderr
    assert "20 readings, 1 skipped; would have fired: parking-full 1" in done.stderr


def test_rules_mode_needs_a_source() -> None:
    sitroom = Path(sys.executable).with_name("sitroom")
    done = subprocess.run(
        [str(sitroom), "rules", "replay", "--input", "/dev/null"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "give --input and --output" in done.stderr
