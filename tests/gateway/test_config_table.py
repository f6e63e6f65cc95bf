"""A table of bad gateway configs, each run through `sitroom gateway check-config` as a technician would.

Every case must be refused (exit 1) with one message naming the file, the field path and the
offending value; a good config beside it in the same call must still be reported ok.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import group

GOOD = """\
id: gw-good
org: comune-prato
name: Gateway di prova
location: {lat: 43.8825, lon: 11.1003, description: "lamp post"}
broker: {url: "mqtt://127.0.0.1:1883", username: gw-good, password_file: /etc/sitroom/password}
sensors:
  - {driver: sim_parking, id: p-mercatale, place: mercatale}
  - {driver: sim_parking_spot, id: s-1, street: via-mazzoni, zone: centro, lat: 43.8809, lon: 11.0966}
  - {driver: sim_traffic, id: t-1, site: roma, direction: inbound}
"""


@dataclass(frozen=True)
class Case:
    name: str
    old: str  # a line of GOOD to replace ("" appends `new` instead)
    new: str
    path: str  # the field path the message must name
    value: str  # the offending value as the message shows it

    def text(self) -> str:
        if not self.old:
            return GOOD + self.new
        assert self.old in GOOD, self.old
        return GOOD.replace(self.old, self.new, 1)


SENSOR_0 = "  - {driver: sim_parking, id: p-mercatale, place: mercatale}\n"
CASES = [
    Case("missing-id", "id: gw-good\n", "", "id", "field required"),
    Case("missing-org", "org: comune-prato\n", "", "org", "field required"),
    Case("wrong-type-health-interval", "", "health_interval_s: often\n", "health_interval_s", "'often'"),
    Case("wrong-type-batch", "", "batch: {max_readings: many}\n", "batch.max_readings", "'many'"),
    Case("batch-out-of-range", "", "batch: {max_readings: 0}\n", "batch.max_readings", "0"),
    Case(
        "unknown-driver",
        SENSOR_0,
        "  - {driver: teleporter, id: p-mercatale}\n",
        "sensors[0].driver",
        "'teleporter'",
    ),
    Case(
        "duplicate-sensor-id",
        "  - {driver: sim_traffic, id: t-1, site: roma, direction: inbound}\n",
        "  - {driver: sim_traffic, id: p-mercatale, site: roma, direction: inbound}\n",
        "sensors[2].id",
        "'p-mercatale'",
    ),
    Case(
        "sensor-without-driver",
        SENSOR_0,
        "  - {id: p-mercatale, place: mercatale}\n",
        "sensors[0].driver",
        "",
    ),
    Case(
        "unknown-place",
        SENSOR_0,
        "  - {driver: sim_parking, id: p-mercatale, place: atlantide}\n",
        "sensors[0].place",
        "'atlantide'",
    ),
    Case(
        "unknown-sensor-field",
        SENSOR_0,
        "  - {driver: sim_parking, id: p-mercatale, place: mercatale, baudrate: 9600}\n",
        "sensors[0].baudrate",
        "extra",
    ),
    Case(
        "sensor-coordinates-outside-the-city",
        "lat: 43.8809, lon: 11.0966}",
        "lat: 45.4642, lon: 9.1900}",
        "sensors[1]",
        "45.4642",
    ),
    Case("bad-gateway-id", "id: gw-good\n", "id: GW Good\n", "id", "'GW Good'"),
    Case("reserved-org", "org: comune-prato\n", "org: alerts\n", "org", "'alerts'"),
    Case(
        "bad-broker-url",
        'url: "mqtt://127.0.0.1:1883"',
        'url: "http://127.0.0.1:1883"',
        "broker.url",
        "http://",
    ),
    Case("unknown-top-level-key", "", "colour: red\n", "colour", "extra"),
    Case(
        "latitude-out-of-range",
        "lat: 43.8825, lon: 11.1003",
        "lat: 143.8825, lon: 11.1003",
        "location.lat",
        "143.8825",
    ),
    Case(
        "keepalive-too-short",
        "username: gw-good,",
        "username: gw-good, keepalive_s: 1,",
        "broker.keepalive_s",
        "1",
    ),
    Case(
        "gateway-outside-the-service-area",
        "lat: 43.8825, lon: 11.1003",
        "lat: 45.4642, lon: 9.1900",
        "location",
        "45.4642",
    ),
    Case(
        "lat-and-lon-swapped",
        "lat: 43.8825, lon: 11.1003",
        "lat: 11.1003, lon: 43.8825",
        "location",
        "swapped",
    ),
    Case(
        "serial-port-conflict",
        "",
        "  - {driver: nmea, id: v-1, port: /dev/ttyUSB0}\n"
        "  - {driver: traffic_counter, id: t-2, port: /dev/ttyUSB0}\n",
        "sensors[4].port",
        "'/dev/ttyUSB0'",
    ),
    Case(
        "lorawan-device-listed-twice",
        "",
        "  - {driver: bosch_parking, id: lora-a, application_id: app-1,\n"
        "     devices: {'70b3d5e75e00a1f0': {sensor: s-a}}}\n"
        "  - {driver: bosch_parking, id: lora-b, application_id: app-2,\n"
        "     devices: {'70B3D5E75E00A1F0': {sensor: s-b}}}\n",
        "sensors[4].devices",
        "70b3d5e75e00a1f0",  # DevEUIs compare case-insensitively (the driver lowercases them)
    ),
    Case("no-sensors", "", "", "sensors", ""),  # replaced below: an empty list
    Case(
        "cert-without-key",
        "username: gw-good,",
        "username: gw-good, cert_file: /etc/sitroom/c.crt,",
        "broker",
        "",
    ),
]


def _text(case: Case) -> str:
    if case.name == "no-sensors":
        return GOOD.split("sensors:\n", 1)[0] + "sensors: []\n"
    return case.text()


def check(*files: Path) -> tuple[int, str]:
    result = CliRunner().invoke(group, ["check-config", *map(str, files)])
    return result.exit_code, result.output


def test_the_table_has_at_least_fifteen_distinct_cases() -> None:
    assert len({c.name for c in CASES}) >= 15
    assert len({_text(c) for c in CASES}) == len(CASES)


def test_the_good_config_of_the_table_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "gw-good.yaml"
    path.write_text(GOOD)

    code, out = check(path)

    assert code == 0, out
    assert f"{path}: ok (comune-prato/gw-good, 3 sensors)" in out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_bad_config_is_refused_with_file_field_and_value(tmp_path: Path, case: Case) -> None:
    bad = tmp_path / f"{case.name}.yaml"
    bad.write_text(_text(case))
    good = tmp_path / "gw-good.yaml"
    good.write_text(GOOD)

    code, out = check(bad, good)

    assert code == 1, out
    problems = [line for line in out.splitlines() if line.startswith(f"{bad}: ")]
    assert len(problems) == 1, out  # one clear message, not a cascade
    message = problems[0].removeprefix(f"{bad}: ")
    assert message.startswith(case.path), message
    assert case.value in message, message
    assert f"{good}: ok" in out  # the good file beside it is still checked
