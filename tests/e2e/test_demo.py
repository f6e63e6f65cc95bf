"""`sitroom demo` as a user runs it: its own servers, gateway processes, a summary that adds up."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.contract import BrokerAddress

from support import REPO, wait_until

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
    # Published counts what the partners had acknowledged too: the utility's vans through the
    # push API, the partner's car parks its broker notified (cloud/apps/demo_exchange.py).
    assert summary["readings_pushed"] > 0
    assert summary["readings_notified"] > 0
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
    assert summary["restarts_total"] == 0
    assert "0 restarts." in proc.stdout


DEMO = [sys.executable, "-m", "edge.cli", "demo"]


def _start(data_dir: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """The demo in the background, its output in `log` (a pipe nobody reads would block it)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [*DEMO, "--data-dir", str(data_dir), *args], cwd=REPO, stdout=out, stderr=subprocess.STDOUT
        )


def _state(data_dir: Path) -> dict[str, Any]:
    """The running demo's pid file: its pid, its processes, its URLs."""
    try:
        data = orjson.loads((data_dir / "demo.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _is_alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _running(data_dir: Path, n_processes: int) -> dict[str, Any]:
    """Wait until the demo started every process and serves its console; its pid file."""

    def started() -> dict[str, Any] | None:
        s = _state(data_dir)
        is_up = len(s.get("processes", {})) >= n_processes and "console" in s.get("urls", {})
        return s if is_up else None

    state: dict[str, Any] = wait_until(started, 120, what="the demo running")
    return state


def _published_so_far(log: Path) -> int:
    counts = re.findall(r"published ([\d,]+) \(", log.read_text(errors="replace"))
    return int(counts[-1].replace(",", "")) if counts else 0


def _anonymous_verdict(mqtt_url: str) -> str:
    b = BrokerAddress.parse(mqtt_url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    verdict: list[str] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: verdict.append(str(reason))
    client.connect(b.host, b.port)
    client.loop_start()
    wait_until(lambda: verdict, 10, what="a CONNACK")
    client.loop_stop()
    return verdict[0]


# mosquitto, influxd, ingest, rules, api and one process per gateway.
N_PROCESSES = 5 + len(list((REPO / "firmware_configs").glob("*.yaml")))


@pytest.mark.timeout(300)
def test_a_demo_killed_with_sigkill_leaves_no_process_and_the_next_run_adds_up_on_a_damaged_alerts_store(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "demo"
    first = _start(data_dir, tmp_path / "first.log", "--duration", "600", "--speed", "120")
    try:
        state = _running(data_dir, N_PROCESSES)
        assert _anonymous_verdict(state["urls"]["mqtt"]) == "Not authorized", "no anonymous client"
        # A second demo on the folder says who runs there, in one line, and stops.
        second = subprocess.run(
            [*DEMO, "--data-dir", str(data_dir), "--duration", "5"],
            cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert second.returncode == 1
        assert f"a demo is already running on {data_dir} (pid {first.pid};" in second.stderr
        assert state["urls"]["console"] in second.stderr
        assert "Traceback" not in second.stderr + second.stdout
    finally:
        first.kill()  # SIGKILL: no code of the demo runs
        first.wait()
    pids = {name: p["pid"] for name, p in state["processes"].items()}
    wait_until(
        lambda: not [n for n, pid in pids.items() if _is_alive(pid)], 5, what=f"no process of {pids} alive"
    )

    # What a crash leaves at worst: a truncated alert store beside a stale -wal and -shm.
    alerts = data_dir / "alerts.db"
    os.truncate(alerts, alerts.stat().st_size // 2)
    (data_dir / "alerts.db-wal").write_bytes(b"")
    (data_dir / "alerts.db-shm").write_bytes(b"\0" * 32768)
    summary_path = tmp_path / "summary.json"
    again = subprocess.run(
        [*DEMO, "--data-dir", str(data_dir), "--duration", "10", "--speed", "120",
         "--summary", str(summary_path)],
        cwd=REPO, capture_output=True, text=True, timeout=200, check=False,
    )  # fmt: skip
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-3000:]
    assert "Traceback" not in output
    said = [line for line in again.stdout.splitlines() if f"{alerts} could not be opened" in line]
    assert len(said) == 1, again.stdout[:3000]
    assert "--fresh" in said[0]
    summary = orjson.loads(summary_path.read_bytes())
    assert summary["readings_stored"] == summary["readings_published"] > 0


@pytest.mark.timeout(300)
def test_the_demo_restarts_ingest_killed_mid_run_and_still_stores_every_reading(tmp_path: Path) -> None:
    data_dir, log, summary_path = tmp_path / "demo", tmp_path / "demo.log", tmp_path / "summary.json"
    demo = _start(data_dir, log, "--duration", "16", "--speed", "120", "--summary", str(summary_path))
    try:
        state = _running(data_dir, N_PROCESSES)
        wait_until(lambda: _published_so_far(log) > 0, 60, what="readings published")
        os.kill(state["processes"]["ingest"]["pid"], signal.SIGKILL)
        assert demo.wait(240) == 0, log.read_text()[-3000:]
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    output = log.read_text()
    summary = orjson.loads(summary_path.read_bytes())
    assert summary["readings_stored"] == summary["readings_published"] > 0
    assert summary["restarts"]["ingest"] == 1
    assert summary["restarts_total"] == 1
    assert "ingest stopped (killed by SIGKILL): restarting" in output
    assert "1 restart (ingest 1)." in output
