"""`sitroom dashboards check --influx` on InfluxDB loaded by a short demo run: every panel has data."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from cloud.apps.cli.dashboards import group
from cloud.dev.servers import Influxd

from support import REPO

pytestmark = pytest.mark.e2e


def test_every_panel_of_every_dashboard_returns_demo_data(influxd: Influxd, demo_data_db: str) -> None:
    result = CliRunner().invoke(
        group, ["check", "--dir", str(REPO / "dashboards"), "--influx", influxd.url, "--db", demo_data_db]
    )
    assert result.exit_code == 0, result.output
    last = result.output.splitlines()[-1]
    checked, returned = (int(w) for w in last.replace(",", "").split() if w.isdigit())
    assert last == f"panels: {checked} checked, {checked} returned data"
    assert checked >= 6
    assert returned == checked
