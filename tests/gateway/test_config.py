"""Gateway configs: every shipped file loads; every error names file, path and value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from edge.contract import decode_meta
from edge.drivers import all_drivers
from edge.drivers.simulated.config import SimParkingConfig, SimTrafficConfig
from gateway.cli import group
from gateway.config import ConfigError, GatewayConfig, load, parse
from gateway.meta import meta_payload
from gateway.remote_config import version_of

REPO = Path(__file__).resolve().parents[2]
FIRMWARE_CONFIGS = sorted((REPO / "firmware_configs").glob("*.yaml"))


def test_there_are_firmware_configs_to_check() -> None:
    assert len(FIRMWARE_CONFIGS) >= 5


@pytest.mark.parametrize("path", FIRMWARE_CONFIGS, ids=lambda p: p.name)
def test_every_firmware_config_loads(path: Path) -> None:
    config = load(path)
    assert config.id == path.stem  # a file is named after the gateway it configures
    assert config.sensors


def test_sensor_entries_become_their_drivers_configs() -> None:
    config = load(REPO / "firmware_configs" / "gw-traffico.yaml")
    (first, *_) = config.sensors
    assert isinstance(first, SimTrafficConfig)
    assert (first.id, first.site, first.direction, first.lane) == (
        "t-repubblica-in",
        "repubblica",
        "inbound",
        1,
    )


def minimal(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": "gw-test",
        "org": "comune-prato",
        "sensors": [
            {"driver": "sim_parking", "id": "p-mercatale", "place": "mercatale"},
            {"driver": "sim_parking", "id": "p-castello", "place": "castello"},
        ],
    }
    raw.update(overrides)
    return raw


def test_a_minimal_config_gets_the_defaults() -> None:
    config = parse(minimal())
    assert isinstance(config, GatewayConfig)
    assert isinstance(config.sensors[0], SimParkingConfig)
    assert config.broker.url == "mqtt://127.0.0.1:1883"
    assert config.batch.max_readings == 500


def problems(tmp_path: Path, raw: Any) -> list[str]:
    """The error lines of loading `raw` from a file; each must start with the file's path."""
    path = tmp_path / "gw-test.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.source == str(path)
    lines = str(info.value).splitlines()
    assert lines
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert [line.removeprefix(f"{path}: ") for line in lines] == info.value.problems
    return info.value.problems


def test_an_unknown_driver_is_named_with_the_known_drivers(tmp_path: Path) -> None:
    raw = minimal(sensors=[{"driver": "nmea9", "id": "x"}])
    known = ", ".join(all_drivers())  # every registered driver, sorted by name
    assert "sim_fleet, sim_parking, sim_parking_spot, sim_traffic" in known
    assert problems(tmp_path, raw) == [f"sensors[0].driver: 'nmea9' is not a known driver; known: {known}"]


def test_a_bad_field_in_a_sensor_entry_names_its_path_and_value(tmp_path: Path) -> None:
    raw = minimal()
    raw["sensors"][1]["capacity"] = 0
    (line,) = problems(tmp_path, raw)
    assert line.startswith("sensors[1].capacity: 0 ")
    assert "greater than or equal to 1" in line


def test_a_bad_value_in_a_sensor_entry_lists_the_known_ones(tmp_path: Path) -> None:
    raw = minimal()
    raw["sensors"][0]["place"] = "nowhere"
    (line,) = problems(tmp_path, raw)
    assert line.startswith("sensors[0].place: 'nowhere' ")
    assert "known: buonamici, castello" in line


def test_every_bad_sensor_entry_is_reported_at_once(tmp_path: Path) -> None:
    raw = minimal()
    raw["sensors"][0]["capacity"] = -1
    raw["sensors"][1]["driver"] = "sim_teleport"
    found = problems(tmp_path, raw)
    assert [p.split(":")[0] for p in found] == ["sensors[0].capacity", "sensors[1].driver"]


def test_a_missing_required_field_is_named(tmp_path: Path) -> None:
    raw = minimal(sensors=[{"driver": "sim_traffic", "id": "t-repubblica-in", "site": "repubblica"}])
    assert problems(tmp_path, raw) == ["sensors[0].direction: field required"]
    raw = minimal()
    del raw["id"]
    assert problems(tmp_path, raw) == ["id: field required"]


def test_a_sensor_entry_without_a_driver_is_named(tmp_path: Path) -> None:
    raw = minimal(sensors=[{"id": "p-mercatale", "place": "mercatale"}])
    assert problems(tmp_path, raw) == ["sensors[0].driver: field required (the driver's name)"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"colour": "red"}, "colour: extra inputs are not permitted"),
        (
            {"broker": {"url": "mqtt://127.0.0.1", "pasword": "x"}},
            "broker.pasword: extra inputs are not permitted",
        ),
        (
            {"sensors": [{"driver": "sim_parking", "id": "p-a", "place": "mercatale", "baud": 9600}]},
            "sensors[0].baud: extra inputs are not permitted",
        ),
    ],
)
def test_an_unknown_key_is_refused(tmp_path: Path, overrides: dict[str, Any], expected: str) -> None:
    assert problems(tmp_path, minimal(**overrides)) == [expected]


def test_duplicate_sensor_ids_name_the_repeated_entry(tmp_path: Path) -> None:
    raw = minimal()
    raw["sensors"].append({"driver": "sim_parking", "id": "p-mercatale", "place": "serraglio"})
    assert problems(tmp_path, raw) == ["sensors[2].id: 'p-mercatale' is used twice"]


def test_a_reserved_org_is_refused(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, minimal(org="alerts"))
    assert line.startswith("org: 'alerts' ")
    assert "reserved" in line


def test_an_invalid_gateway_id_is_refused_with_its_value(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, minimal(id="GW 1"))
    assert line.startswith("id: 'GW 1' ")
    assert "[a-z0-9]" in line


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:1883", "expected mqtt://host[:port]"),
        ("mqtt://127.0.0.1:99999", "not a broker URL"),
        ("mqtt://", "expected mqtt://host[:port]"),
    ],
)
def test_an_invalid_broker_url_is_refused_with_its_value(tmp_path: Path, url: str, why: str) -> None:
    (line,) = problems(tmp_path, minimal(broker={"url": url}))
    assert line.startswith(f"broker.url: {why}")
    assert line.endswith(repr(url))


def test_an_empty_sensor_list_is_refused(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, minimal(sensors=[]))
    assert line.startswith("sensors: [] ")


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, ["just", "a", "list"]) == ["expected a mapping at the top level, got list"]


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="cannot read") as info:
        load(missing)
    assert str(info.value).startswith(f"{missing}: ")
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load(broken)


def test_check_config_exits_0_for_the_firmware_configs() -> None:
    result = CliRunner().invoke(group, ["check-config", *map(str, FIRMWARE_CONFIGS)])
    assert result.exit_code == 0, result.output
    for path in FIRMWARE_CONFIGS:
        assert f"{path}: ok (" in result.stdout


def test_check_config_exits_1_and_prints_the_path_of_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "gw-bad.yaml"
    raw = minimal()
    raw["sensors"][1]["capacity"] = 0
    bad.write_text(yaml.safe_dump(raw))
    good = FIRMWARE_CONFIGS[0]

    result = CliRunner().invoke(group, ["check-config", str(good), str(bad)])

    assert result.exit_code == 1
    assert f"{bad}: sensors[1].capacity: 0 " in result.stderr
    assert f"{good}: ok (" in result.stdout  # the good file is still checked and reported


def test_meta_prints_what_each_gateway_publishes_on_its_meta_one_per_line() -> None:
    result = CliRunner().invoke(group, ["meta", *map(str, FIRMWARE_CONFIGS)])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(FIRMWARE_CONFIGS)
    for path, line in zip(FIRMWARE_CONFIGS, lines, strict=True):
        config = load(path)
        assert line.encode() == meta_payload(config, version_of(config))
        assert {s.id for s in decode_meta(line.encode()).sensors} == {s.id for s in config.sensors}


def test_meta_exits_1_naming_a_bad_file_and_still_prints_the_good_ones(tmp_path: Path) -> None:
    bad = tmp_path / "gw-bad.yaml"
    raw = minimal()
    raw["sensors"][1]["capacity"] = 0
    bad.write_text(yaml.safe_dump(raw))

    result = CliRunner().invoke(group, ["meta", str(bad), str(FIRMWARE_CONFIGS[0])])

    assert result.exit_code == 1
    assert f"{bad}: sensors[1].capacity: 0 " in result.stderr
    assert decode_meta(result.stdout.strip().encode()).gateway == load(FIRMWARE_CONFIGS[0]).id
