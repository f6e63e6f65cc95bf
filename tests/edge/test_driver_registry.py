"""Every registered driver: README present, sample.yaml valid, vectors.yaml decoding exactly."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from edge.contract import UNLISTED_DEVICE_PATTERN, Reading, SensorKind, SensorMeta
from edge.drivers import (
    NotADecoderError,
    SourceContext,
    UnknownDriverError,
    all_drivers,
    declaration,
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


@pytest.mark.parametrize("name", DECODING)
def test_a_device_driver_declares_the_kind_its_decoder_produces(name: str) -> None:
    driver = get_decoding(name)
    decoder = driver.decoder(sample_configs(name)[0], CTX)
    examples = load(folder(driver) / "vectors.yaml")
    kinds = {r.kind for example in examples for r in decoder.feed(example.input).readings}

    assert kinds == {driver.kind}


@pytest.mark.parametrize("name", sorted(set(DRIVERS) - set(DECODING)))
def test_a_simulated_driver_declares_the_kind_its_source_produces(name: str) -> None:
    driver = get(name)
    source = driver.open(sample_configs(name)[0], CTX)
    try:
        kinds = {r.kind for r in source.poll(CTX.start + timedelta(hours=2))}
    finally:
        source.close()

    assert kinds == {driver.kind}


def test_a_sensor_is_declared_with_its_id_kind_and_driver() -> None:
    config = sample_configs("sim_parking")[0]

    assert declaration(config) == SensorMeta(id=config.id, kind=SensorKind.PARKING, driver="sim_parking")


def test_a_lorawan_source_declares_its_devices_and_that_unlisted_ones_report_too() -> None:
    config = sample_configs("bosch_parking")[0]
    meta = declaration(config)

    assert (meta.id, meta.kind, meta.devices, meta.unlisted_devices) == (
        "lora-centro",
        SensorKind.PARKING_SPOT,
        ("s-mazzoni-01", "s-mazzoni-02"),
        True,
    )
    silent = declaration(config.model_copy(update={"accept_unknown": False}))
    assert not silent.unlisted_devices


def test_the_name_of_an_unlisted_bosch_device_is_the_contract_s_unlisted_device_name() -> None:
    driver = get_decoding("bosch_parking")
    decoder = driver.decoder(sample_configs("bosch_parking")[0].model_copy(update={"devices": {}}), CTX)
    sensors = {
        r.sensor
        for example in load(folder(driver) / "vectors.yaml")
        for r in decoder.feed(example.input).readings
    }

    assert sensors
    assert all(re.fullmatch(UNLISTED_DEVICE_PATTERN, s) for s in sensors), sensors
