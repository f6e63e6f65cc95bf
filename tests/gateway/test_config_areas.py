"""Where a gateway may stand: the deployment's areas file (edge/contract/areas.py), not the code."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.contract.areas import AreasFileError, load_areas, parse_areas
from gateway.cli import group
from gateway.config import ConfigError, load, parse
from gateway.remote_config import RejectedConfigError, validate

from support import REPO

METRO = REPO / "deploy" / "areas" / "prato-florence.yaml"
# A traffic counter at Peretola, in the Florence plain.
FLORENCE = """\
id: gw-peretola
org: comune-firenze
location: {lat: 43.8010, lon: 11.2010, description: "cabinet, Viale XI Agosto"}
sensors:
  - {driver: sim_traffic, id: t-1, site: roma, direction: inbound}
"""


def write(tmp_path: Path, text: str = FLORENCE) -> Path:
    path = tmp_path / "gw-peretola.yaml"
    path.write_text(text)
    return path


def check(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(group, ["check-config", *args], env=env)
    return result.exit_code, result.output


def test_a_gateway_outside_every_configured_area_is_refused_with_the_area_list(tmp_path: Path) -> None:
    path = write(tmp_path)

    code, out = check(str(path))

    assert code == 1, out
    [problem] = [line for line in out.splitlines() if line.startswith(f"{path}: ")]
    assert problem.startswith(f"{path}: location: ")
    assert "(43.801, 11.201) is outside every configured area (prato (Prato: lon 10.98..11.18" in problem
    assert "are lat and lon swapped?" in problem


def test_the_same_gateway_is_accepted_when_its_area_is_configured(tmp_path: Path) -> None:
    path = write(tmp_path)

    code, out = check("--areas", str(METRO), str(path))

    assert code == 0, out
    assert f"{path}: ok (comune-firenze/gw-peretola, 1 sensors)" in out


def test_the_areas_file_comes_from_sitroom_areas_as_for_every_process(tmp_path: Path) -> None:
    code, out = check(str(write(tmp_path)), env={"SITROOM_AREAS": str(METRO)})

    assert code == 0, out


def test_a_gateway_outside_both_metropolitan_areas_lists_both(tmp_path: Path) -> None:
    milan = FLORENCE.replace("lat: 43.8010, lon: 11.2010", "lat: 45.4642, lon: 9.1900")

    with pytest.raises(ConfigError) as refused:
        load(write(tmp_path, milan), load_areas(METRO))

    [problem] = refused.value.problems
    assert "prato (Prato: " in problem
    assert "piana-fiorentina (Piana fiorentina: lon 11.02..11.36, lat 43.71..43.97)" in problem


def test_a_pushed_config_is_checked_against_the_areas_of_the_running_gateway(tmp_path: Path) -> None:
    running = load(write(tmp_path), load_areas(METRO))
    moved = FLORENCE.replace("lat: 43.8010, lon: 11.2010", "lat: 43.8060, lon: 11.2100")
    lost = FLORENCE.replace("lat: 43.8010, lon: 11.2010", "lat: 11.2010, lon: 43.8010")

    accepted = validate(moved.encode(), running)
    with pytest.raises(RejectedConfigError) as refused:
        validate(lost.encode(), running)

    assert accepted.config.location is not None
    assert accepted.config.location.lon == 11.21
    assert "outside every configured area" in str(refused.value)


def test_every_firmware_config_stands_in_the_default_areas() -> None:
    for path in sorted((REPO / "firmware_configs").glob("*.yaml")):
        load(path)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"areas": []}, "areas: List should have at least 1 item"),
        (
            {"areas": [{"id": "x", "name": "X", "municipality": "comune-x", "timezone": "Mars/Olympus",
                        "boundary": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}]},
            "'Mars/Olympus' is not an IANA time zone",
        ),
        (
            {"areas": [{"id": "x", "name": "X", "municipality": "comune-x",
                        "boundary": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}}]},
            "areas[0].boundary: Value error, a ring must be closed",
        ),
        (
            {"areas": [{"id": "X Y", "name": "X", "municipality": "comune-x",
                        "boundary": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}]},
            "areas[0].id: String should match pattern",
        ),
        (
            {"areas": [{"id": "x", "name": "X", "municipality": "comune-x",
                        "boundary": {"type": "Polygon",
                                     "coordinates": [[[0, 0], [1, 0], [1, 91], [0, 0]]]}}]},
            "[1, 91]",
        ),
    ],
    ids=["empty", "time-zone", "open-ring", "bad-id", "latitude"],
)  # fmt: skip
def test_a_broken_areas_file_is_refused_naming_the_field_and_value(raw: object, expected: str) -> None:
    with pytest.raises(AreasFileError) as refused:
        parse_areas(raw, "areas.yaml")

    assert str(refused.value).startswith("areas.yaml: ")
    assert expected in str(refused.value)


def test_an_area_listed_twice_is_refused() -> None:
    area = {"id": "x", "name": "X", "municipality": "comune-x",
            "boundary": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}  # fmt: skip

    with pytest.raises(AreasFileError, match=r"areas\[1\].id: 'x' is listed twice"):
        parse_areas({"areas": [area, area]})


def test_a_hole_in_an_area_is_outside_it() -> None:
    ring = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]
    hole = [[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]]
    areas = parse_areas(
        {"areas": [{"id": "x", "name": "X", "municipality": "comune-x",
                    "boundary": {"type": "Polygon", "coordinates": [ring, hole]}}]}
    )  # fmt: skip

    assert areas.locate(2, 2) is not None
    assert areas.locate(5, 5) is None
    assert areas.locate(11, 5) is None


def test_a_config_parsed_without_areas_is_checked_against_prato() -> None:
    with pytest.raises(ConfigError, match="outside every configured area"):
        parse({"id": "gw-x", "org": "o", "location": {"lat": 43.77, "lon": 11.25},
               "sensors": [{"driver": "sim_traffic", "id": "t-1", "site": "roma"}]})  # fmt: skip
