"""Batch payloads as the contract encodes them; remote config validation; reconnect backoff."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from edge.contract import Batch, SensorKind, decode_strict, encode
from edge.drivers import SourceContext, get
from gateway import batches
from gateway.config import parse
from gateway.publisher import Backoff
from gateway.remote_config import LastGood, RejectedConfigError, validate, version_of

START = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def config(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": "gw-a",
        "org": "comune-prato",
        "broker": {"url": "mqtt://broker.example:1883"},
        "sensors": [
            {"driver": "sim_parking", "id": "p-mercatale", "place": "mercatale"},
            {"driver": "sim_fleet", "id": "v-bus-101", "route": "lam-blu"},
        ],
    }
    raw.update(overrides)
    return raw


def fleet_readings(n_minutes: int) -> list[Any]:
    cfg = parse(config())
    source = get("sim_fleet").open(cfg.sensors[1], SourceContext("comune-prato", "gw-a", 1, START))
    return source.poll(START + timedelta(minutes=n_minutes))


def test_a_batch_built_from_staged_json_is_byte_for_byte_what_the_contract_encodes() -> None:
    readings = fleet_readings(3)
    sent_at = datetime(2026, 11, 24, 8, 3, 0, 250_000, tzinfo=UTC)
    data, offset = batches.payload(
        org="comune-prato", gateway="gw-a", kind=SensorKind.FLEET, seq=41, sent_at=sent_at,
        readings=batches.fragment(readings[:5]) + b"," + batches.fragment(readings[5:]),
    )  # fmt: skip
    assert data == encode(Batch.of(readings, seq=41, sent_at=sent_at))
    later = sent_at + timedelta(minutes=7)
    patched = batches.with_sent_at(data, offset, later)
    assert decode_strict(patched).sent_at == later
    assert decode_strict(patched).readings == decode_strict(data).readings


def test_staged_pieces_are_regrouped_into_batches_within_the_reading_and_byte_limits() -> None:
    readings = fleet_readings(30)  # 181 readings
    pieces = [(1, batches.fragment([r])) for r in readings[:100]] + [(81, batches.fragment(readings[100:]))]
    out = list(batches.chunks(pieces, max_readings=50, max_bytes=1_000_000))
    assert [n for n, _ in out] == [50, 50, 50, 31]
    small = list(batches.chunks(pieces, max_readings=500, max_bytes=4096))
    assert all(len(body) <= 4096 for _, body in small)
    assert sum(n for n, _ in small) == 181
    assert b",".join(body for _, body in small) == b",".join(f for _, f in pieces)


def test_a_valid_pushed_config_is_accepted_and_keeps_the_running_broker() -> None:
    running = parse(config())
    pushed = config(
        version="v2", sensors=[{"driver": "sim_parking", "id": "p-castello", "place": "castello"}]
    )
    del pushed["broker"]
    accepted = validate(orjson.dumps(pushed), running)
    assert accepted.version == "v2"
    assert accepted.config.broker == running.broker
    assert [s.id for s in accepted.config.sensors] == ["p-castello"]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "payload: not JSON or YAML"),
        (b"[1, 2]", "payload: expected a mapping, got list"),
        (orjson.dumps(config(id="gw-b")), "id: 'gw-b' is not this gateway's id 'gw-a'"),
        (orjson.dumps(config(org="altro")), "org: 'altro' is not this gateway's org"),
        (orjson.dumps(config(broker={"url": "mqtt://elsewhere:1883"})), "broker: cannot be changed remotely"),
        (orjson.dumps(config(sensors=[{"driver": "nmea9", "id": "x"}])), "sensors[0].driver: 'nmea9'"),
        (orjson.dumps(config(batch={"max_readings": 0})), "batch.max_readings: 0"),
    ],
    ids=[
        "not-utf8",
        "not-a-mapping",
        "other-gateway",
        "other-org",
        "other-broker",
        "unknown-driver",
        "bad-field",
    ],
)
def test_a_bad_pushed_config_is_refused_with_a_reason_naming_the_field(payload: bytes, reason: str) -> None:
    with pytest.raises(RejectedConfigError) as info:
        validate(payload, parse(config()))
    assert reason in str(info.value)


def _counter(port: str) -> dict[str, Any]:
    return {"driver": "traffic_counter", "id": "t-roma", "port": port, "site": "roma"}


@pytest.mark.parametrize(
    "port",
    ["/etc/shadow", "/dev/tty/../../etc/passwd", "/dev/ttyUSB0/../../../root/.ssh/id_rsa", "/tmp/fifo",
     "/dev/sda", "/proc/self/environ", "relative/ttyS0", "/dev/serial/by-id/../../mem",
     "/dev/serial/by-id/..", "/dev/serial/by-path/pci-0000:00:14.0-usb-0:1:1.0-port0"],
)  # fmt: skip
def test_a_pushed_config_may_point_a_serial_driver_only_at_a_serial_device(port: str) -> None:
    # Issue 18 point 7: whoever may write the retained config could make the gateway open any file.
    with pytest.raises(RejectedConfigError) as info:
        validate(orjson.dumps(config(sensors=[_counter(port)])), parse(config()))
    assert "sensors[0].port" in str(info.value)
    assert "/dev/tty*" in str(info.value)


@pytest.mark.parametrize(
    "port", ["/dev/ttyUSB1", "/dev/ttyS0", "/dev/ttyACM0", "/dev/serial/by-id/usb-FTDI_FT232R-if00"]
)
def test_a_pushed_config_may_move_a_serial_driver_to_another_serial_device(port: str) -> None:
    accepted = validate(orjson.dumps(config(sensors=[_counter(port)])), parse(config()))
    assert accepted.config.sensors[0].port == port  # type: ignore[attr-defined]


def test_a_pushed_config_may_keep_a_port_the_local_config_already_names() -> None:
    # The technician's local file is trusted with any path (a udev symlink, a test's pty).
    running = parse(config(sensors=[_counter("/dev/gps0")]))
    accepted = validate(orjson.dumps(config(sensors=[_counter("/dev/gps0")], version="v2")), running)
    assert accepted.version == "v2"


def test_the_version_of_an_unlabelled_config_is_a_digest_of_its_content() -> None:
    a = parse(config())
    b = parse(dict(reversed(list(config().items()))))
    assert version_of(a) == version_of(b)
    assert version_of(a).startswith("sha256:")
    assert version_of(parse(config(health_interval_s=5))) != version_of(a)
    assert version_of(parse(config(version="2026-11-24.1"))) == "2026-11-24.1"


def test_the_last_good_config_is_kept_and_a_damaged_file_is_ignored(tmp_path: Path) -> None:
    running = parse(config())
    store = LastGood(tmp_path / "gw-a.config.json")
    assert store.load(running) is None
    accepted = validate(orjson.dumps(config(version="v3")), running)
    store.save(accepted)
    loaded = store.load(running)
    assert loaded is not None
    assert loaded.version == "v3"
    (tmp_path / "gw-a.config.json").write_bytes(b'{"version": "v3", "con')
    assert store.load(running) is None


def test_reconnect_delays_grow_with_jitter_up_to_the_cap_and_reset_on_success() -> None:
    backoff = Backoff(1, 60, random.Random(1))
    delays = [backoff.next_delay() for _ in range(12)]
    assert delays[0] == 1
    assert all(1 <= d <= 60 for d in delays)
    assert max(delays[-4:]) >= 30
    assert delays == sorted(delays) or len(set(delays[-4:])) > 1  # jittered at the cap
    other = Backoff(1, 60, random.Random(2))
    assert [other.next_delay() for _ in range(12)] != delays, "two gateways do not retry in lockstep"
    backoff.reset()
    assert backoff.next_delay() == 1
