"""Provisioning checks a gateway's location and an organisation's areas against the areas file."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from cloud.apps.cli.provision import group as provision
from cloud.io.orgstore import OrgStore

from support import REPO

METRO = REPO / "deploy" / "areas" / "prato-florence.yaml"
SENSOR = "driver=sim_traffic,id=t-1,site=roma"


def run(folder: Path, *args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(provision, ["--dir", str(folder), *args], catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result


def test_a_gateway_outside_every_configured_area_is_not_provisioned(tmp_path: Path) -> None:
    folder = tmp_path / "prov"
    peretola = ("gateway", "add", "--id", "gw-peretola", "--org", "comune-firenze", "--sensor", SENSOR,
                "--lat", "43.801", "--lon", "11.201")  # fmt: skip

    refused = run(folder, *peretola, ok=False)
    run(folder, *peretola, "--areas", str(METRO))

    assert (
        "gateway 'gw-peretola': location (43.801, 11.201) is outside every configured area" in refused.output
    )
    assert "prato (Prato: lon 10.98..11.18, lat 43.8..43.98)" in refused.output
    assert (folder / "identities" / "gw-peretola" / "gateway.yaml").exists()


def test_a_csv_row_outside_the_areas_onboards_nothing_and_names_its_line(tmp_path: Path) -> None:
    folder = tmp_path / "prov"
    sheet = tmp_path / "gateways.csv"
    sheet.write_text(
        "id,org,lat,lon,sensors\n"
        f'gw-1,comune-prato,43.88,11.10,"{SENSOR}"\n'
        f'gw-2,comune-firenze,43.801,11.201,"{SENSOR}"\n'
    )

    refused = run(folder, "gateway", "import", str(sheet), ok=False)

    assert f"{sheet}:3: lat,lon: (43.801, 11.201) is outside every configured area" in refused.output
    assert "gw-1" not in run(folder, "list").output


def test_an_organisation_is_registered_with_its_configured_areas(tmp_path: Path) -> None:
    folder, db = tmp_path / "prov", f"sqlite:///{tmp_path / 'registry.db'}"
    add = ("org", "add", "--id", "publiacqua", "--db", db, "--areas", str(METRO))

    unknown = run(folder, *add, "--area", "mugello", ok=False)
    run(folder, *add, "--area", "prato", "--area", "piana-fiorentina")

    assert "--area: mugello not configured; configured: prato, piana-fiorentina" in unknown.output
    assert OrgStore.open(db).organisation("publiacqua").areas == ("prato", "piana-fiorentina")
