"""Every registered driver: README present, sample.yaml valid, vectors.yaml decoding exactly."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from edge.contract import Reading
from edge.drivers import (
    NotADecoderError,
    SourceContext,
    UnknownDriverError,
    all_drivers,
    decoding_drivers,
    folder,
    get,
    get_decoding,
)
from edge.drivers.vectors import load, sample_configs

CTX = SourceContext(org="comune-prato", gateway="gw-test", seed=0, start=datetime(2026, 11, 24, tzinfo=UTC))
DRIVERS = sorted(all_drivers())
DECODING = sorted(decoding_drivers())
EXAMPLES = [
    pytest.param(name, i, id=f"{name}[{i}]")
    for name in DECODING
    for i in range(len(load(folder(get(name)) / "vectors.yaml")))
]


def test_the_three_device_drivers_are_registered():
    assert {"nmea", "traffic_counter", "bosch_parking"} <= set(DECODING)
    assert {"sim_parking", "sim_parking_spot", "sim_traffic", "sim_fleet"} <= set(DRIVERS)


@pytest.mark.parametrize("name", DRIVERS)
def test_driver_folder_has_a_readme_that_names_it(name: str):
    readme = folder(get(name)) / "README.md"
    assert readme.is_file(), f"{name}: README.md missing in {readme.parent}"
    assert name in readme.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", DRIVERS)
def test_sample_yaml_holds_a_valid_entry_of_the_driver(name: str):
    configs = sample_configs(name)
    assert configs, f"{name}: no `sensors:` entry with driver {name} in sample.yaml"
    assert all(c.driver == name for c in configs)


@pytest.mark.parametrize("name", DECODING)
def test_sample_yaml_shows_every_option_of_the_driver(name: str):
    driver = get(name)
    raw = yaml.safe_load((folder(driver) / "sample.yaml").read_text(encoding="utf-8"))
    shown = set().union(*(e.keys() for e in raw["sensors"] if e["driver"] == name))
    assert shown == set(driver.Config.model_fields)


@pytest.mark.parametrize("name", DECODING)
def test_decoding_driver_ships_vectors_beside_its_decoder(name: str):
    path = folder(get(name)) / "vectors.yaml"
    assert path.is_file()
    examples = load(path)
    assert len(examples) >= 4
    assert any(e.readings for e in examples), "at least one example decodes into readings"
    assert any(e.rejects for e in examples), "at least one example shows a reject"


@pytest.mark.parametrize(("name", "index"), EXAMPLES)
def test_vector_decodes_exactly_into_the_expected_readings(name: str, index: int):
    driver = get_decoding(name)
    example = load(folder(driver) / "vectors.yaml")[index]
    config = sample_configs(name)[0]
    decoder = driver.decoder(config, CTX)
    decoded = decoder.feed(example.input)
    got = [_as_expected(r, e) for r, e in zip(decoded.readings, example.readings, strict=False)]
    assert len(decoded.readings) == len(example.readings), example.description
    assert got == example.readings, example.description
    assert [r.reason for r in decoded.rejects] == example.rejects, example.description


def _as_expected(reading: Reading, expected: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {
        "ts": reading.ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "fields": reading.fields,
    }
    if "sensor" in expected:
        out["sensor"] = reading.sensor
    if "tags" in expected:
        out["tags"] = reading.tags
    return out


def test_unknown_driver_names_the_known_ones():
    with pytest.raises(UnknownDriverError, match="nmea"):
        get("nmea2000")


def test_simulated_driver_is_not_a_decoder():
    with pytest.raises(NotADecoderError, match="bosch_parking, nmea, traffic_counter"):
        get_decoding("sim_fleet")
