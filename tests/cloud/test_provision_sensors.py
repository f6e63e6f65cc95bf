"""`SensorDirectory.check`: the reason a reading must be dead-lettered, or None to store it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from cloud.provision.cli import group as provision
from cloud.provision.registry import Registry
from cloud.provision.sensors import DRIVER_KINDS, SensorDirectory, SensorDirectoryError
from edge.contract import SensorKind
from edge.drivers import SourceContext, get
from gateway.config import load

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "firmware_configs").glob("*.yaml"))


@pytest.fixture(scope="module")
def directory() -> SensorDirectory:
    return SensorDirectory.from_config_dir(REPO / "firmware_configs")


def test_a_declared_sensor_of_the_right_kind_on_its_gateway_is_accepted(directory: SensorDirectory) -> None:
    assert directory.check("comune-prato", "gw-mercatale", "p-mercatale", SensorKind.PARKING) is None
    assert directory.check("comune-prato", "gw-traffico", "t-roma-in", "traffic") is None
    assert directory.check("alia", "gw-fleet-alia", "v-alia-01", SensorKind.FLEET) is None


@pytest.mark.parametrize(
    ("org", "gateway", "sensor", "kind", "reason"),
    [
        ("comune-prato", "gw-nowhere", "p-mercatale", "parking", "unknown gateway 'gw-nowhere'"),
        ("comune-prato", "gw-mercatale", "p-nowhere", "parking", "unknown sensor 'p-nowhere' on gateway"),
        (
            "comune-prato",
            "gw-mercatale",
            "p-stazione-centrale",
            "parking",
            "sensor 'p-stazione-centrale' belongs to gateway 'gw-stazione', not 'gw-mercatale'",
        ),
        ("comune-prato", "gw-mercatale", "p-mercatale", "traffic", "sends 'parking' readings, not 'traffic'"),
        ("alia", "gw-mercatale", "p-mercatale", "parking", "belongs to org 'comune-prato', not 'alia'"),
        ("nobody", "fleet", "v-1", "fleet", "unknown utility 'nobody'"),
    ],
)
def test_a_reading_that_does_not_belong_is_given_its_reason(
    directory: SensorDirectory, org: str, gateway: str, sensor: str, kind: str, reason: str
) -> None:
    found = directory.check(org, gateway, sensor, kind)

    assert found is not None
    assert reason in found


def test_the_directory_of_a_provisioning_registry_knows_its_gateways_and_utilities(tmp_path: Path) -> None:
    folder = tmp_path / "prov"
    for args in (
        [
            "gateway",
            "add",
            "--id",
            "gw-x",
            "--org",
            "comune-prato",
            "--sensor",
            "driver=sim_traffic,id=t-x,site=roma",
        ],
        ["org", "add", "--id", "alia"],
        [
            "gateway",
            "add",
            "--id",
            "gw-y",
            "--org",
            "comune-prato",
            "--sensor",
            "driver=sim_traffic,id=t-y,site=roma",
        ],
        ["revoke", "gw-y"],
    ):
        result = CliRunner().invoke(provision, ["--dir", str(folder), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output

    directory = SensorDirectory.from_registry(Registry(folder))

    assert directory.check("comune-prato", "gw-x", "t-x", "traffic") is None
    assert directory.check("alia", "fleet", "v-any", "fleet") is None  # a utility's vehicles are its own
    assert directory.check("alia", "fleet", "v-any", "parking") is not None
    assert (
        directory.check("comune-prato", "gw-y", "t-y", "traffic")
        == "unknown gateway 'gw-y' (org 'comune-prato')"
    )


def test_a_gateway_declared_twice_is_an_error_naming_both_files(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text("id: gw-a\norg: o\nsensors: [{driver: sim_fleet, id: v-1}]\n")

    with pytest.raises(SensorDirectoryError, match=r"b\.yaml: gateway 'gw-a' also in .*a\.yaml"):
        SensorDirectory.from_config_dir(tmp_path)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_the_driver_kind_table_matches_what_each_driver_really_sends(path: Path) -> None:
    # `cloud` may not import the drivers, so it keeps a table; this proves the table right.
    config = load(path)
    start = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    for sensor in config.sensors:
        source = get(sensor.driver).open(sensor, SourceContext(config.org, config.id, seed=1, start=start))
        try:
            kinds = {r.kind for r in source.poll(start + timedelta(hours=2))}
        finally:
            source.close()
        assert kinds == {DRIVER_KINDS[sensor.driver]}, sensor.id
