"""`sitroom edge decode|tail|check-batch|drivers`: the technician's tools."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from edge.cli import root
from edge.contract import Batch, Reading, encode
from edge.drivers.bosch_parking import encoder as bosch
from edge.drivers.nmea import encoder as nmea
from edge.transports.pty import VirtualSerialPort

from support import wait_until

RMC = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n"
APP = "5c3b0a8e-3f0e-4c1a-9d7e-2b7c1f0e9a11"


def run(*args: str, stdin: bytes | None = None) -> tuple[int, list[dict[str, object]], str]:
    result = CliRunner().invoke(root, list(args), input=stdin)
    lines = [orjson.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.exit_code, lines, result.stderr


def test_decode_prints_readings_as_json_lines_with_iso_utc_timestamps(tmp_path: Path):
    capture = tmp_path / "bus.nmea"
    capture.write_bytes(
        (RMC + "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n").encode()
    )
    code, lines, err = run("edge", "decode", "nmea", str(capture))
    assert code == 0
    assert err == ""
    assert lines == [
        {
            "ts": "1994-03-23T12:35:19.000Z",
            "kind": "fleet",
            "sensor": "capture",
            "fields": {"lat": 48.1173, "lon": 11.5166667, "speed_kmh": 41.485, "heading_deg": 84.4},
        }
    ]


def test_decode_reads_stdin_and_reports_rejects_on_stderr_with_line_numbers():
    data = (RMC + RMC.replace("*6A", "*6B") + "noise\r\n" + RMC).encode()
    code, lines, err = run("edge", "decode", "nmea", "-", stdin=data)
    assert code == 0
    assert len(lines) == 2
    assert "line 2: bad_checksum" in err
    assert "line 3: garbage" in err


def test_decode_of_a_last_line_without_line_end_still_decodes():
    code, lines, _ = run("edge", "decode", "nmea", "-", stdin=RMC.rstrip().encode())
    assert (code, len(lines)) == (0, 1)


def test_decode_traffic_counter_export_with_stats(tmp_path: Path):
    line = b"$TCR,1,repubblica,1,inbound,20261124T081500Z,300,1,3,61,9,1,4,1,2,2,42.7,11.4*79B0\r\n"
    capture = tmp_path / "export.txt"
    capture.write_bytes(line + line[:40] + b"\r\n")
    code, lines, err = run("edge", "decode", "traffic_counter", str(capture), "--stats")
    assert code == 0
    assert lines[0]["fields"] == {
        "vehicles": 84, "heavy": 9, "interval_s": 300, "speed_kmh": 42.7, "occupancy_pct": 11.4,
    }  # fmt: skip
    assert lines[0]["tags"] == {"site": "repubblica", "lane": "1", "direction": "inbound"}
    assert "line 2: no_checksum" in err
    assert '"frames_ok":1' in err


def test_decode_chirpstack_events_one_per_line_or_one_pretty_printed_per_file(tmp_path: Path):
    ts = datetime(2026, 11, 24, 8, tzinfo=UTC)
    events = [
        bosch.uplink_json(dev_eui="70b3d5e75e00a1f0", application_id=APP, f_port=1,
                          payload=bosch.status(i % 2 == 0), f_cnt=i, ts=ts + timedelta(minutes=i))
        for i in range(3)
    ]  # fmt: skip
    jsonl = tmp_path / "uplinks.jsonl"
    jsonl.write_bytes(b"\n".join([events[0], b"{broken", events[1], events[2]]))
    code, lines, err = run("edge", "decode", "bosch_parking", str(jsonl))
    assert code == 0
    assert [(x["sensor"], x["fields"]) for x in lines] == [
        ("eui-70b3d5e75e00a1f0", {"occupied": True}),
        ("eui-70b3d5e75e00a1f0", {"occupied": False}),
        ("eui-70b3d5e75e00a1f0", {"occupied": True}),
    ]
    assert "line 2: bad_json" in err
    pretty = tmp_path / "one.json"
    pretty.write_bytes(orjson.dumps(orjson.loads(events[1]), option=orjson.OPT_INDENT_2))
    code, lines, _ = run("edge", "decode", "bosch_parking", str(pretty))
    assert (code, lines[0]["ts"]) == (0, "2026-11-24T08:01:00.000Z")


def test_decode_with_a_config_names_the_sensor_and_its_tags(tmp_path: Path):
    config = tmp_path / "bus.yaml"
    config.write_text("driver: nmea\nid: v-bus-101\nport: /dev/gps0\nvehicle_type: bus\n")
    _, lines, _ = run("edge", "decode", "nmea", "-", "--config", str(config), stdin=RMC.encode())
    assert (lines[0]["sensor"], lines[0]["tags"]) == ("v-bus-101", {"vehicle_type": "bus"})


def test_decode_of_an_unreadable_file_fails_and_unknown_drivers_are_named():
    code, _, err = run("edge", "decode", "nmea", "/nonexistent/capture.nmea")
    assert code != 0
    assert "capture.nmea" in err
    code, _, err = run("edge", "decode", "gps", "-", stdin=b"")
    assert code == 2
    assert "known: bosch_parking" in err


def test_tail_prints_the_readings_of_a_live_serial_device(tmp_path: Path):
    with VirtualSerialPort(tmp_path / "gps0") as port:
        feeding = threading.Event()

        def device() -> None:
            t0 = datetime(2026, 11, 24, 8, tzinfo=UTC)
            i = 0
            while not feeding.wait(0.2):
                port.write(nmea.epoch(t0 + timedelta(seconds=i), 43.88, 11.1, 20.0, 45.0))
                i += 1

        thread = threading.Thread(target=device)
        thread.start()
        try:
            code, lines, _ = run("edge", "tail", "nmea", "--port", str(port.link), "--duration", "3")
        finally:
            feeding.set()
            thread.join()
    assert code == 0
    assert len(lines) >= 2
    assert lines[0]["fields"] == {"lat": 43.88, "lon": 11.1, "speed_kmh": 20.0, "heading_deg": 45.0}


def test_drivers_lists_the_decoding_drivers():
    result = CliRunner().invoke(root, ["edge", "drivers"])
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == [
        "bosch_parking",
        "nmea",
        "traffic_counter",
    ]


@pytest.mark.parametrize("valid", [True, False])
def test_check_batch_validates_a_gateway_data_message(tmp_path: Path, valid: bool):
    reading = Reading(
        kind="parking_spot", org="comune-prato", gateway="gw-1", sensor="s-1",
        ts=datetime(2026, 11, 24, tzinfo=UTC), fields={"occupied": True},
    )  # fmt: skip
    payload = encode(Batch.of([reading], seq=0, sent_at=datetime(2026, 11, 24, tzinfo=UTC)))
    path = tmp_path / "batch.json"
    path.write_bytes(payload if valid else payload.replace(b"true", b"7"))
    result = CliRunner().invoke(root, ["edge", "check-batch", str(path)])
    assert result.exit_code == (0 if valid else 1)
    assert ("ok " in result.stdout) is valid


def test_simulated_counter_on_a_pty_is_read_by_tail(tmp_path: Path):
    link = tmp_path / "counter0"
    device = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "edge", "simulate", "counter", "--link", str(link),
         "--sim", "{interval_s: 60}", "--speed", "120", "--duration", "20"],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(link.exists, 30, what="the virtual counter's symlink")
        code, lines, _ = run("edge", "tail", "traffic_counter", "--port", str(link), "--duration", "4")
    finally:
        device.terminate()
        device.wait(10)
    assert code == 0
    assert lines
    assert {tuple(x["tags"].values()) for x in lines} == {("repubblica", "1", "inbound")}  # type: ignore[union-attr]


def test_tail_without_a_device_says_what_is_missing():
    code, _, err = run("edge", "tail", "nmea")
    assert code == 2
    assert "--port" in err
    code, _, err = run("edge", "tail", "bosch_parking")
    assert "--application-id" in err


def _modules_loaded_by(*args: str) -> tuple[str, set[str]]:
    """What `sitroom ARGS` prints, and the modules of ours it imported on the way."""
    probe = (
        "import sys, runpy\n"
        f"sys.argv = ['sitroom', *{list(args)!r}]\n"
        "try:\n"
        "    runpy.run_module('edge.cli', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('MODULES', *sorted(m for m in sys.modules if m.split('.')[0] in ('cloud', 'gateway')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    text, _, modules = done.stdout.rpartition("MODULES")
    return text, set(modules.split())


def test_the_root_help_lists_every_packages_group_with_its_help_without_importing_them() -> None:
    text, loaded = _modules_loaded_by("--help")

    for name, help_start in [("cloud", "Cloud services"), ("gateway", "The street gateway agent"),
                             ("worksites", "Road worksites"), ("provision", "Onboard gateways")]:  # fmt: skip
        assert any(line.split()[:1] == [name] and help_start in line for line in text.splitlines()), name
    # Finding a command's source imports the packages above it (their __init__), nothing more.
    assert loaded <= {"cloud", "cloud.apps", "cloud.apps.cli", "gateway"}, loaded


def test_a_gateway_command_loads_no_module_of_the_cloud() -> None:
    text, loaded = _modules_loaded_by("gateway", "--help")

    assert "run" in text
    assert "gateway.cli" in loaded
    assert not {m for m in loaded if m.startswith("cloud")}, loaded
