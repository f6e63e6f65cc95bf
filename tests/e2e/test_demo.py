"""`sitroom demo` as a user runs it: its own servers, gateway processes, a summary that adds up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from support import REPO

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(180)
def test_demo_stores_every_published_reading_and_raises_alerts(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli", "demo", "--duration", "30", "--speed", "120",
         "--summary", str(summary_path), "--data-dir", str(tmp_path / "demo")],
        cwd=REPO, capture_output=True, text=True, timeout=170, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = orjson.loads(summary_path.read_bytes())
    assert summary["readings_published"] > 0
    assert summary["readings_stored"] == summary["readings_published"]
    assert summary["alerts_raised"] > 0
    # The default rules' detectors: the car park whose counter the simulator zeroes is reported,
    # its alert explains itself, and nothing the simulator did not inject is.
    judged = summary["detector_alerts"]
    assert [(a["entity"], a["injected"]) for a in judged if a["rule"] == "parking-unusual"] == [
        ("p-castello", "zero")
    ]
    assert "p-castello: occupied 0 spaces, expected" in judged[0]["message"]
    assert summary["false_alarms"] == 0, judged
    assert "false alarms" in proc.stdout
    # The demo's operator acknowledges the first alert; the rules service republishes it.
    assert summary["alerts_acknowledged"] == 1
    assert "acknowledges alert" in proc.stdout
    # ... and writes the worksite registry's state for the Worksites dashboard.
    assert summary["worksite_points"] > 0
    assert summary["gateways"] == len(list((REPO / "firmware_configs").glob("*.yaml")))
    assert len(summary["gateways_reporting"]) == summary["gateways"]
    # The demo's misconfigured legacy feed is dead-lettered, each message once, and nothing else.
    assert summary["dead_letters"] == summary["dead_letters_injected"] > 0
    picture = Path(summary["picture"])
    assert picture == summary_path.with_suffix(".png")
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "the run is drawn, beside its summary"
    assert "gateways" in proc.stdout, "the demo shows live progress"
    assert "published" in proc.stdout
