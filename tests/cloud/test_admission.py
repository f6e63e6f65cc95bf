"""The admission: one verdict on a reading (contract, time limits, installation records, declared kinds)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from cloud.core.admission import Admission, PolicyError, TimeLimits
from cloud.core.directory import (
    ForeignSensorError,
    SensorDirectory,
    SensorDirectoryError,
    SensorKindError,
    UnknownSensorError,
)
from edge.contract import ContractError, Reading, RejectedReading, SchemaError, SensorKind, format_ts, topics
from edge.contract.topics import GatewayTopic
from edge.drivers import SourceContext, get
from gateway.config import load
from gateway.meta import meta_payload

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "firmware_configs").glob("*.yaml"))
NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
LIMITS = TimeLimits(max_future=timedelta(seconds=300), max_age=timedelta(days=30))


def meta_topic(org: str, gateway: str) -> GatewayTopic:
    return topics.parse(topics.meta(org, gateway))


def declare(admission: Admission, config_path: Path) -> None:
    """What the gateway of this config publishes on its meta topic, as ingest receives it."""
    config = load(config_path)
    admission.learn(meta_topic(config.org, config.id), meta_payload(config, "v1"))


def meta(org: str, gateway: str, *sensors: dict[str, Any]) -> bytes:
    return orjson.dumps({"v": 1, "org": org, "gateway": gateway, "sensors": list(sensors)})


@pytest.fixture
def recorded() -> Admission:
    """The installation records of firmware_configs/, no gateway heard from yet."""
    return Admission(LIMITS, directory=SensorDirectory.from_config_dir(REPO / "firmware_configs"))


# ---------------------------------------------------------------------------------------------
# Installation records.


def test_a_recorded_sensor_on_its_gateway_is_admitted(recorded: Admission) -> None:
    assert recorded.sensor_error("comune-prato", "gw-mercatale", "p-mercatale", SensorKind.PARKING) is None
    assert recorded.sensor_error("comune-prato", "gw-traffico", "t-repubblica-in", SensorKind.TRAFFIC) is None
    assert recorded.sensor_error("alia", "gw-fleet-alia", "v-alia-01", SensorKind.FLEET) is None


@pytest.mark.parametrize(
    ("org", "gateway", "sensor", "reason"),
    [
        ("comune-prato", "gw-nowhere", "p-mercatale", "unknown gateway 'gw-nowhere'"),
        ("comune-prato", "gw-mercatale", "p-nowhere", "unknown sensor 'p-nowhere' on gateway"),
        (
            "comune-prato",
            "gw-mercatale",
            "p-stazione-centrale",
            "sensor 'p-stazione-centrale' belongs to gateway 'gw-stazione', not 'gw-mercatale'",
        ),
        ("alia", "gw-mercatale", "p-mercatale", "belongs to org 'comune-prato', not 'alia'"),
        ("nobody", "fleet", "v-1", "unknown utility 'nobody'"),
    ],
)
def test_a_reading_the_records_do_not_place_there_is_refused_as_an_unknown_sensor(
    recorded: Admission, org: str, gateway: str, sensor: str, reason: str
) -> None:
    err = recorded.sensor_error(org, gateway, sensor, SensorKind.PARKING)

    assert isinstance(err, UnknownSensorError)
    assert (err.reason, err.field, err.value) == ("unknown_sensor", "sensor", sensor)
    assert reason in err.message


def test_a_utility_s_fleet_naming_a_vehicle_another_organisation_installed_is_refused_as_forbidden() -> None:
    records = SensorDirectory.from_config_files(sorted(CONFIGS), utilities=["alia", "publiacqua"])
    admission = Admission(LIMITS, directory=records)

    err = admission.sensor_error("publiacqua", "fleet", "v-alia-01", SensorKind.FLEET)

    assert isinstance(err, ForeignSensorError)
    assert (err.reason, err.field, err.value) == ("forbidden", "sensor", "v-alia-01")
    assert err.message == "sensor 'v-alia-01' belongs to organisation 'alia'"
    assert admission.sensor_error("alia", "fleet", "v-alia-01", SensorKind.FLEET) is None
    assert admission.sensor_error("publiacqua", "fleet", "v-new-van", SensorKind.FLEET) is None


def test_a_partner_s_entities_are_refused_only_when_the_records_give_their_sensor_to_another_org(
    recorded: Admission,
) -> None:
    partners = recorded.for_partners()

    foreign = partners.sensor_error("firenze", "ngsi-ld", "p-mercatale", SensorKind.PARKING)

    assert partners.sensor_error("firenze", "ngsi-ld", "fortezza", SensorKind.PARKING) is None
    assert isinstance(foreign, ForeignSensorError)
    assert "belongs to organisation 'comune-prato'" in foreign.message
    assert (partners.limits, partners.max_payload_bytes) == (recorded.limits, recorded.max_payload_bytes)
    # The same sensor is not refused as another organisation's for its own organisation.
    assert partners.sensor_error("comune-prato", "ngsi-ld", "p-mercatale", SensorKind.PARKING) is None


def test_without_records_nobody_s_sensor_is_another_organisation_s() -> None:
    partners = Admission(LIMITS).for_partners()

    assert partners.sensor_error("firenze", "ngsi-ld", "p-mercatale", SensorKind.PARKING) is None


def test_a_gateway_recorded_twice_is_an_error_naming_both_files(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text("id: gw-a\norg: o\nsensors: [{driver: sim_fleet, id: v-1}]\n")

    with pytest.raises(SensorDirectoryError, match=r"b\.yaml: gateway 'gw-a' also in .*a\.yaml"):
        SensorDirectory.from_config_dir(tmp_path)


# ---------------------------------------------------------------------------------------------
# Declared kinds (the gateways' retained meta).


def test_a_reading_of_another_kind_than_its_gateway_declared_is_refused_with_that_reason(
    recorded: Admission,
) -> None:
    before = recorded.sensor_error("comune-prato", "gw-mercatale", "p-mercatale", SensorKind.TRAFFIC)
    declare(recorded, REPO / "firmware_configs" / "gw-mercatale.yaml")

    err = recorded.sensor_error("comune-prato", "gw-mercatale", "p-mercatale", SensorKind.TRAFFIC)

    assert before is None  # nothing declared yet: the kind is not checked
    assert isinstance(err, SensorKindError)
    assert (err.reason, err.field, err.value) == ("wrong_kind", "kind", "traffic")
    assert (
        err.message == "sensor 'p-mercatale' (sim_parking) is declared by gateway 'gw-mercatale' as 'parking'"
    )
    assert recorded.sensor_error("comune-prato", "gw-mercatale", "p-mercatale", SensorKind.PARKING) is None


def test_without_records_only_the_declared_kinds_are_checked_until_the_meta_is_withdrawn() -> None:
    admission = Admission(LIMITS)
    where = meta_topic("comune-prato", "gw-x")
    generation = admission.generation
    admission.learn(
        where, meta("comune-prato", "gw-x", {"id": "p-1", "kind": "parking", "driver": "sim_parking"})
    )

    assert admission.generation > generation
    assert isinstance(
        admission.sensor_error("comune-prato", "gw-x", "p-1", SensorKind.FLEET), SensorKindError
    )
    assert admission.sensor_error("comune-prato", "gw-x", "p-undeclared", SensorKind.FLEET) is None
    assert admission.sensor_error("comune-prato", "gw-other", "p-1", SensorKind.FLEET) is None

    admission.learn(where, b"")  # the retained meta cleared

    assert admission.sensor_error("comune-prato", "gw-x", "p-1", SensorKind.FLEET) is None


def test_a_newer_meta_replaces_the_declaration_before_it() -> None:
    admission = Admission(LIMITS)
    where = meta_topic("comune-prato", "gw-x")
    admission.learn(where, meta("comune-prato", "gw-x", {"id": "s-1", "kind": "parking", "driver": "a"}))
    admission.learn(where, meta("comune-prato", "gw-x", {"id": "s-1", "kind": "traffic", "driver": "b"}))

    assert admission.sensor_error("comune-prato", "gw-x", "s-1", SensorKind.TRAFFIC) is None
    assert isinstance(
        admission.sensor_error("comune-prato", "gw-x", "s-1", SensorKind.PARKING), SensorKindError
    )


def test_a_meta_on_another_gateway_s_topic_is_refused_and_teaches_nothing() -> None:
    admission = Admission(LIMITS)
    forged = meta("comune-prato", "gw-b", {"id": "p-1", "kind": "parking", "driver": "sim_parking"})

    with pytest.raises(SchemaError) as info:
        admission.learn(meta_topic("comune-prato", "gw-a"), forged)

    assert (info.value.field, info.value.value) == ("org/gateway", "comune-prato/gw-b")
    assert admission.sensor_error("comune-prato", "gw-b", "p-1", SensorKind.FLEET) is None


def test_a_broken_meta_is_refused_with_the_contract_s_error() -> None:
    with pytest.raises(ContractError) as info:
        Admission(LIMITS).learn(meta_topic("comune-prato", "gw-a"), b'{"v": 1}')

    assert info.value.reason == "schema"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_reading_of_a_firmware_gateway_passes_the_admission_its_own_meta_sets_up(path: Path) -> None:
    # The drivers' declared kinds against what they really send, through the cloud's verdict.
    admission = Admission(
        TimeLimits(max_future=timedelta(days=1), max_age=timedelta(days=1)),
        directory=SensorDirectory.from_config_dir(REPO / "firmware_configs"),
    )
    declare(admission, path)
    config = load(path)
    readings: list[Reading] = []
    for sensor in config.sensors:
        source = get(sensor.driver).open(sensor, SourceContext(config.org, config.id, seed=1, start=NOW))
        try:
            readings += source.poll(NOW + timedelta(hours=2))
        finally:
            source.close()

    assert readings
    assert [r.sensor for r in readings if admission.reading_error(r, NOW) is not None] == []


# ---------------------------------------------------------------------------------------------
# LoRaWAN sources of many devices.

BOSCH_GATEWAY = """\
id: gw-lora
org: comune-prato
sensors:
  - driver: bosch_parking
    id: lora-centro
    application_id: 5c3b0a8e-3f0e-4c1a-9d7e-2b7c1f0e9a11
{options}"""
LISTED = '    devices:\n      "70b3d5e75e00a1f0": {sensor: s-mazzoni-01}\n'
UNLISTED = "eui-70b3d5e75e00a1ff"


@pytest.mark.parametrize("accept", [True, False])
def test_a_lorawan_source_admits_its_listed_bays_and_unlisted_ones_only_if_it_accepts_them(
    tmp_path: Path, accept: bool
) -> None:
    path = tmp_path / "gw-lora.yaml"
    path.write_text(BOSCH_GATEWAY.format(options=f"    accept_unknown: {str(accept).lower()}\n{LISTED}"))
    assert load(path).sensors  # the gateway's own schema accepts this file
    admission = Admission(LIMITS, directory=SensorDirectory.from_config_files([path]))
    declare(admission, path)

    def error(sensor: str, kind: SensorKind = SensorKind.PARKING_SPOT) -> ContractError | None:
        return admission.sensor_error("comune-prato", "gw-lora", sensor, kind)

    assert error("s-mazzoni-01") is None
    assert isinstance(error("s-mazzoni-01", SensorKind.PARKING), SensorKindError)
    assert isinstance(error("lora-centro"), UnknownSensorError)  # a source, not a sensor
    assert (error(UNLISTED) is None) is accept


def test_a_source_listing_no_bay_admits_unlisted_bays_once_its_gateway_declares_that_it_reports_them(
    tmp_path: Path,
) -> None:
    # With neither `devices` nor `accept_unknown` the records cannot tell a source from a
    # sensor (cloud knows no driver); the gateway's meta says it, and the records list the entry.
    path = tmp_path / "gw-lora.yaml"
    path.write_text(BOSCH_GATEWAY.format(options=""))
    admission = Admission(LIMITS, directory=SensorDirectory.from_config_files([path]))
    before = admission.sensor_error("comune-prato", "gw-lora", UNLISTED, SensorKind.PARKING_SPOT)

    declare(admission, path)

    assert isinstance(before, UnknownSensorError)
    assert admission.sensor_error("comune-prato", "gw-lora", UNLISTED, SensorKind.PARKING_SPOT) is None
    assert isinstance(
        admission.sensor_error("comune-prato", "gw-lora", UNLISTED, SensorKind.PARKING), SensorKindError
    )


# ---------------------------------------------------------------------------------------------
# The whole verdict on a message.


FIELDS = {"occupied": 1, "capacity": 5, "occupancy_pct": 20.0}


def data_message(org: str, gateway: str, *readings: tuple[str, datetime]) -> bytes:
    return orjson.dumps(
        {
            "v": 1, "org": org, "gateway": gateway, "kind": "parking", "seq": 1, "sent_at": format_ts(NOW),
            "readings": [{"sensor": s, "ts": format_ts(ts), "fields": FIELDS} for s, ts in readings],
        }
    )  # fmt: skip


def test_each_reading_of_a_message_is_admitted_or_refused_in_the_message_s_order(recorded: Admission) -> None:
    payload = data_message(
        "comune-prato",
        "gw-mercatale",
        ("p-mercatale", NOW - timedelta(minutes=1)),
        ("p-mercatale", NOW + timedelta(hours=1)),  # too far in the future
        ("p-nowhere", NOW - timedelta(minutes=1)),  # not on this gateway
        ("P-1", NOW),  # not an id: the contract's refusal
        ("p-castello", NOW - timedelta(minutes=1)),
    )
    where = topics.parse(topics.data("comune-prato", "gw-mercatale", SensorKind.PARKING))

    judged = recorded.admit(where, payload, NOW)

    assert [
        v.sensor if isinstance(v, Reading) else (v.index, type(v.error).__name__) for v in judged.verdicts
    ] == ["p-mercatale", (1, "PolicyError"), (2, "UnknownSensorError"), (3, "SchemaError"), "p-castello"]
    assert [r.sensor for r in judged.readings] == ["p-mercatale", "p-castello"]
    assert all(isinstance(r, RejectedReading) for r in judged.rejects)
    assert isinstance(judged.rejects[0].error, PolicyError)


def test_a_message_whose_envelope_contradicts_its_topic_is_refused_whole() -> None:
    payload = data_message("comune-prato", "gw-b", ("p-1", NOW))
    where = topics.parse(topics.data("comune-prato", "gw-a", SensorKind.PARKING))

    with pytest.raises(SchemaError) as info:
        Admission(LIMITS).admit(where, payload, NOW)

    assert (info.value.field, info.value.value) == (
        "org/gateway/kind",
        "sr/v1/comune-prato/gw-a/data/parking",
    )


def test_the_payload_cap_is_the_admission_s() -> None:
    payload = data_message("comune-prato", "gw-a", ("p-1", NOW))

    with pytest.raises(ContractError) as info:
        Admission(LIMITS, max_payload_bytes=len(payload) - 1).judge(payload, NOW)

    assert info.value.reason == "too_large"
