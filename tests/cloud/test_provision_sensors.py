"""`SensorDirectory.check`: the reason a reading must be dead-lettered, or None to store it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from cloud.provision.cli import group as provision
from cloud.provision.registry import IdentityRegistry
from cloud.provision.sensors import DRIVER_KINDS, SensorDirectory, SensorDirectoryError
from edge.contract import SensorKind
from edge.drivers import SourceContext, all_drivers, decoding_drivers, folder, get, get_decoding
from edge.drivers.vectors import load as load_vectors
from edge.drivers.vectors import sample_configs
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

    directory = SensorDirectory.from_registry(IdentityRegistry(folder))

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


def test_every_registered_driver_has_a_kind_in_the_table() -> None:
    missing = sorted(set(all_drivers()) - set(DRIVER_KINDS))

    assert not missing, f"add {missing} to DRIVER_KINDS in cloud/provision/sensors.py"


@pytest.mark.parametrize("name", sorted(decoding_drivers()))
def test_the_driver_kind_table_matches_what_each_device_decoder_produces(name: str) -> None:
    driver = get_decoding(name)
    ctx = SourceContext("comune-prato", "gw-test", seed=0, start=datetime(2026, 11, 24, tzinfo=UTC))
    decoder = driver.decoder(sample_configs(name)[0], ctx)
    kinds = {
        r.kind
        for example in load_vectors(folder(driver) / "vectors.yaml")
        for r in decoder.feed(example.input).readings
    }

    assert kinds == {DRIVER_KINDS[name]}


BOSCH_GATEWAY = """\
id: gw-lora
org: comune-prato
sensors:
  - driver: bosch_parking
    id: lora-centro
    application_id: 5c3b0a8e-3f0e-4c1a-9d7e-2b7c1f0e9a11
    accept_unknown: {accept}
    devices:
      "70b3d5e75e00a1f0": {{sensor: s-mazzoni-01}}
"""


@pytest.mark.parametrize("accept", [True, False])
def test_a_lorawan_source_knows_its_listed_bays_and_unlisted_ones_only_if_it_accepts_them(
    tmp_path: Path, accept: bool
) -> None:
    path = tmp_path / "gw-lora.yaml"
    path.write_text(BOSCH_GATEWAY.format(accept=str(accept).lower()))
    assert load(path).sensors  # the gateway's own schema accepts this file
    directory = SensorDirectory.from_config_files([path])

    unlisted = directory.check("comune-prato", "gw-lora", "eui-70b3d5e75e00a1ff", "parking_spot")

    assert directory.check("comune-prato", "gw-lora", "s-mazzoni-01", "parking_spot") is None
    assert directory.check("comune-prato", "gw-lora", "s-mazzoni-01", "parking") is not None
    assert directory.check("comune-prato", "gw-lora", "lora-centro", "parking_spot") is not None  # a source
    assert (unlisted is None) is accept
