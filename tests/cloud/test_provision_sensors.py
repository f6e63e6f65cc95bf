"""The sensor directory of a provisioning registry: its active gateways and its utilities."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from cloud.apps.cli.provision import group as provision
from cloud.core.directory import SensorKindError, UnknownSensorError
from cloud.provision.registry import IdentityRegistry
from cloud.provision.sensors import directory_from_registry

SENSOR = "driver=sim_traffic,site=roma"


def test_the_directory_of_a_provisioning_registry_knows_its_gateways_and_utilities(tmp_path: Path) -> None:
    folder = tmp_path / "prov"
    for args in (
        ["gateway", "add", "--id", "gw-x", "--org", "comune-prato", "--sensor", f"{SENSOR},id=t-x"],
        ["org", "add", "--id", "alia"],
        ["gateway", "add", "--id", "gw-y", "--org", "comune-prato", "--sensor", f"{SENSOR},id=t-y"],
        ["revoke", "gw-y"],
    ):
        result = CliRunner().invoke(provision, ["--dir", str(folder), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output

    directory = directory_from_registry(IdentityRegistry(folder))

    assert directory.check("comune-prato", "gw-x", "t-x", "traffic") is None
    assert directory.check("alia", "fleet", "v-any", "fleet") is None  # a utility's vehicles are its own
    assert isinstance(directory.check("alia", "fleet", "v-any", "parking"), SensorKindError)
    revoked = directory.check("comune-prato", "gw-y", "t-y", "traffic")
    assert isinstance(revoked, UnknownSensorError)
    assert revoked.message == "unknown gateway 'gw-y' (org 'comune-prato')"
