"""Reading: fields checked against the kind's declarations, normalised, and rejected by path."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from edge.contract import (
    KINDS,
    ContractError,
    FieldSpec,
    KindSpec,
    Reading,
    SchemaError,
    SensorKind,
    schema_error,
    to_utc_ms,
)
from edge.contract.kinds import NOT_ABOVE

TS = datetime(2026, 11, 24, 8, tzinfo=UTC)

# One valid field set per kind, each value mid-range.
VALID_FIELDS: dict[SensorKind, dict[str, Any]] = {
    SensorKind.PARKING: {"occupied": 410, "capacity": 520, "occupancy_pct": 78.8},
    SensorKind.PARKING_SPOT: {"occupied": True},
    SensorKind.TRAFFIC: {
        "vehicles": 120,
        "heavy": 9,
        "interval_s": 60,
        "speed_kmh": 42.5,
        "occupancy_pct": 11.0,
    },
    SensorKind.FLEET: {"lat": 43.8777, "lon": 11.1022, "speed_kmh": 31.0, "heading_deg": 270.0},
    SensorKind.TRANSIT_VEHICLE: {
        "lat": 43.8806,
        "lon": 11.0967,
        "bearing_deg": 92.0,
        "speed_kmh": 18.5,
        "trip": "LAM-BLU_feriale_0712",
        "stop": "PO-STAZ-CENTRALE",
        "stop_status": "in_transit_to",
        "occupancy": "few_seats_available",
        "occupancy_pct": 64,
        "delay_s": 95,
    },
    SensorKind.TRANSIT_DELAY: {"trip": "LAM-BLU_feriale_0712", "stop_sequence": 7, "status": "scheduled",
                               "delay_s": -40},
    SensorKind.EV_CHARGING: {"capacity": 4, "available": 1, "in_service": True},
}  # fmt: skip
NUMERIC_FIELDS = [
    (spec.kind, f) for spec in KINDS.values() for f in spec.fields if f.type in ("int", "float")
]
STRING_FIELDS = [(spec.kind, f) for spec in KINDS.values() for f in spec.fields if f.type == "str"]


def reading(kind: SensorKind = SensorKind.PARKING, **overrides: Any) -> Reading:
    values: dict[str, Any] = {
        "kind": kind,
        "org": "comune-prato",
        "gateway": "gw-mercatale",
        "sensor": "p-mercatale",
        "ts": TS,
        "fields": dict(VALID_FIELDS[kind]),
        # A kind with a fixed tag set needs all of its tags on every reading.
        "tags": dict.fromkeys(KINDS[kind].tags, "r-1") if KINDS[kind].fixed_tags else {},
    }
    values.update(overrides)
    return Reading(**values)


def with_fields(kind: SensorKind = SensorKind.PARKING, **changes: Any) -> dict[str, Any]:
    return {**VALID_FIELDS[kind], **changes}


def rejected(kind: SensorKind = SensorKind.PARKING, **overrides: Any) -> ContractError:
    """The ContractError, with field path and value, that building this reading raises."""
    with pytest.raises(ValidationError) as info:
        reading(kind, **overrides)
    return schema_error(info.value)


def field_id(item: tuple[SensorKind, FieldSpec]) -> str:
    return f"{item[0].value}.{item[1].name}"


# ---------------------------------------------------------------------------------------------
# The declarations themselves.


def test_every_kind_declares_its_fields_once_with_a_range_and_a_unit() -> None:
    assert set(KINDS) == set(SensorKind)
    for kind, spec in KINDS.items():
        assert spec.kind is kind
        names = [f.name for f in spec.fields]
        assert len(names) == len(set(names)), kind
        assert set(spec.by_name) == set(names)
        assert len(spec.tags) == len(set(spec.tags)), kind
        for f in spec.fields:
            assert f.minimum <= f.maximum, f
            assert f.description, f
            assert f.unit or f.type in ("bool", "str"), f
            assert not f.choices or f.type == "str", f


def test_no_kind_has_a_field_named_like_a_tag_for_influxdb_3_refuses_that() -> None:
    for kind, spec in KINDS.items():
        assert not set(spec.by_name) & {*spec.tags, "org", "gateway", "sensor"}, kind


def test_declaring_a_field_named_like_a_tag_fails_at_once() -> None:
    with pytest.raises(ValueError, match="both a tag and a field"):
        KindSpec(SensorKind.FLEET, "x", (FieldSpec("route", "str", "", 1, 9, "x"),), tags=("route",))
    with pytest.raises(ValueError, match="both a tag and a field"):
        KindSpec(SensorKind.FLEET, "x", (FieldSpec("sensor", "str", "", 1, 9, "x"),))


def test_every_kind_accepts_its_example_fields_and_every_declared_tag() -> None:
    for kind, spec in KINDS.items():
        r = reading(kind, tags=dict.fromkeys(spec.tags, "x-1"))
        assert r.fields == VALID_FIELDS[kind]
        assert set(r.tags) == set(spec.tags)


# ---------------------------------------------------------------------------------------------
# Field values.


@pytest.mark.parametrize(("kind", "spec"), NUMERIC_FIELDS, ids=[field_id(x) for x in NUMERIC_FIELDS])
@given(data=st.data())
def test_an_in_range_number_is_accepted_and_normalised_to_the_declared_type(
    kind: SensorKind, spec: FieldSpec, data: st.DataObject
) -> None:
    if spec.type == "int":
        value: float = data.draw(st.integers(int(spec.minimum), int(spec.maximum)))
        sent: float = data.draw(st.sampled_from([value, float(value)]))
    else:
        value = data.draw(st.floats(spec.minimum, spec.maximum))
        sent = int(value) if value.is_integer() and data.draw(st.booleans()) else value
    fields = with_fields(kind, **{spec.name: sent})
    # Keep the cross-field rules out of this test: the bound follows the value.
    for name, bound in NOT_ABOVE.get(kind, ()):
        if spec.name == name:
            fields[bound] = max(int(KINDS[kind].by_name[bound].minimum), int(value))
        if spec.name == bound:
            fields[name] = int(KINDS[kind].by_name[name].minimum)

    normalised = reading(kind, fields=fields).fields[spec.name]

    assert normalised == value
    assert type(normalised) is (int if spec.type == "int" else float)


@pytest.mark.parametrize(("kind", "spec"), NUMERIC_FIELDS, ids=[field_id(x) for x in NUMERIC_FIELDS])
@given(data=st.data())
def test_a_number_outside_the_declared_range_is_rejected_naming_field_and_value(
    kind: SensorKind, spec: FieldSpec, data: st.DataObject
) -> None:
    below = st.floats(max_value=spec.minimum, exclude_max=True, allow_nan=False, allow_infinity=False)
    above = st.floats(min_value=spec.maximum, exclude_min=True, allow_nan=False, allow_infinity=False)
    value = data.draw(below | above)
    if spec.type == "int":
        value = math.floor(value) if value < spec.minimum else math.ceil(value)

    error = rejected(kind, fields=with_fields(kind, **{spec.name: value}))

    assert isinstance(error, SchemaError)
    assert (error.field, error.value) == (f"fields.{spec.name}", value)
    assert error.message == f"out of range [{spec.minimum:g}, {spec.maximum:g}]"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_nan_and_infinity_are_rejected_as_not_finite(value: float) -> None:
    error = rejected(fields=with_fields(occupancy_pct=value))

    assert error.field == "fields.occupancy_pct"
    assert error.message == "must be a finite number"


def test_a_fraction_in_an_int_field_is_rejected() -> None:
    error = rejected(fields=with_fields(occupied=410.5))

    assert (error.field, error.value, error.message) == ("fields.occupied", 410.5, "expected an integer")


@pytest.mark.parametrize(
    ("kind", "name", "value", "message"),
    [
        (SensorKind.PARKING, "occupied", True, "expected a number, got bool"),
        (SensorKind.PARKING, "occupancy_pct", "78.8", "expected a number, got str"),
        (SensorKind.PARKING, "capacity", None, "expected a number, got NoneType"),
        (SensorKind.PARKING, "capacity", [520], "expected a number, got list"),
        (SensorKind.PARKING_SPOT, "occupied", 1, "expected a boolean, got int"),
        (SensorKind.PARKING_SPOT, "occupied", "true", "expected a boolean, got str"),
    ],
    ids=["bool-as-int", "string-as-float", "null", "list", "int-as-bool", "string-as-bool"],
)
def test_a_value_of_the_wrong_type_is_rejected_naming_field_and_value(
    kind: SensorKind, name: str, value: Any, message: str
) -> None:
    error = rejected(kind, fields=with_fields(kind, **{name: value}))

    assert (error.field, error.value, error.message) == (f"fields.{name}", value, message)


def test_an_unknown_field_is_rejected_listing_the_known_ones() -> None:
    error = rejected(fields=with_fields(free_spaces=110))

    assert (error.field, error.value) == ("fields.free_spaces", 110)
    assert "occupied, capacity, occupancy_pct" in error.message


@pytest.mark.parametrize("name", [f.name for f in KINDS[SensorKind.TRAFFIC].fields])
def test_a_missing_required_field_is_rejected_naming_it(name: str) -> None:
    fields = with_fields(SensorKind.TRAFFIC)
    del fields[name]

    error = rejected(SensorKind.TRAFFIC, fields=fields)

    assert (error.field, error.value, error.message) == (f"fields.{name}", None, "required field missing")


def test_occupied_beyond_capacity_is_rejected_with_both_numbers() -> None:
    error = rejected(fields=with_fields(occupied=521, capacity=520))

    assert (error.field, error.value) == ("fields.occupied", 521)
    assert error.message == "521 exceeds capacity 520"


def test_occupied_equal_to_capacity_is_a_full_car_park() -> None:
    assert reading(fields=with_fields(occupied=520, capacity=520)).fields["occupied"] == 520


def test_more_heavy_vehicles_than_vehicles_is_rejected() -> None:
    error = rejected(SensorKind.TRAFFIC, fields=with_fields(SensorKind.TRAFFIC, vehicles=5, heavy=6))

    assert (error.field, error.value, error.message) == ("fields.heavy", 6, "6 exceeds vehicles 5")


def test_the_cross_field_rule_sees_normalised_values() -> None:
    # 521.0 is normalised to the int 521 before the rule runs, so the rule cannot be dodged
    # by sending whole numbers as floats.
    error = rejected(fields=with_fields(occupied=521.0, capacity=520.0))

    assert error.field == "fields.occupied"


# ---------------------------------------------------------------------------------------------
# Tags.


def test_an_unknown_tag_is_rejected_listing_the_known_ones() -> None:
    error = rejected(tags={"colour": "red"})

    assert (error.field, error.value) == ("tags.colour", "red")
    assert "known: zone" in error.message


def test_an_unknown_tag_lists_every_tag_of_the_kind() -> None:
    assert "known: zone, street" in rejected(SensorKind.PARKING_SPOT, tags={"lane": "1"}).message


@pytest.mark.parametrize(
    "value",
    ["a,b", "a b", "a=b", "a\nb", "centro\n", "a\tb", 'a"b', "a'b", "a/b", "a+b", "a#b", "", "x" * 65],
    ids=repr,
)
def test_a_tag_value_with_a_line_protocol_or_topic_character_is_rejected(value: str) -> None:
    error = rejected(tags={"zone": value})

    assert (error.field, error.value) == ("tags.zone", value)


@pytest.mark.parametrize("value", ["centro", "Santo_Stefano", "v1.2", "lane:1", "a@b", "x" * 64])
def test_a_plain_tag_value_is_accepted(value: str) -> None:
    assert reading(tags={"zone": value}).tags == {"zone": value}


def test_a_tag_value_is_ascii_so_every_json_schema_tool_agrees_with_the_code() -> None:
    assert rejected(tags={"zone": "città"}).field == "tags.zone"


def test_a_tag_value_must_be_a_string() -> None:
    assert rejected(tags={"zone": 3}).field == "tags.zone"


# ---------------------------------------------------------------------------------------------
# Ids and timestamps.


@pytest.mark.parametrize("name", ["org", "gateway", "sensor"])
@pytest.mark.parametrize("value", ["Comune", "gw 1", "gw/1", "+", "#", "-gw", "", "x" * 64])
def test_ids_are_lowercase_ascii_and_dashes(name: str, value: str) -> None:
    error = rejected(**{name: value})

    assert (error.field, error.value) == (name, value)


def test_a_naive_timestamp_is_rejected() -> None:
    error = rejected(ts=datetime(2026, 11, 24, 8))  # noqa: DTZ001 - naive on purpose

    assert error.field == "ts"
    assert "timezone" in error.message


def test_a_naive_timestamp_string_is_rejected() -> None:
    assert rejected(ts="2026-11-24T08:00:00").field == "ts"


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis attaches the timezone
        max_value=datetime(2100, 1, 1),  # noqa: DTZ001
        timezones=st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m))),
    )
)
def test_timestamps_become_utc_truncated_to_the_millisecond(ts: datetime) -> None:
    stored = reading(ts=ts).ts

    assert stored.utcoffset() == timedelta(0)
    assert stored.microsecond % 1000 == 0
    assert timedelta(0) <= ts - stored < timedelta(milliseconds=1)


def test_a_timestamp_with_no_utc_equivalent_is_rejected_with_its_field() -> None:
    # Regression: year 1 at UTC+1 is the last day of year 0 in UTC; astimezone overflowed.
    error = rejected(ts=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))))

    assert error.field == "ts"
    with pytest.raises(ValueError, match="no UTC equivalent"):
        to_utc_ms(datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-2))))


# ---------------------------------------------------------------------------------------------
# Identity and immutability.


def test_the_series_key_is_the_dedupe_identity_without_fields_or_time() -> None:
    first = reading(tags={"zone": "centro"})
    later = reading(tags={"zone": "centro"}, ts=TS + timedelta(minutes=1), fields=with_fields(occupied=1))

    assert first.series_key == later.series_key
    assert first.series_key == ("parking", "comune-prato", "gw-mercatale", "p-mercatale", "zone=centro")
    assert reading(tags={"zone": "nord"}).series_key != first.series_key


def test_tags_order_does_not_change_the_series_key() -> None:
    a = reading(SensorKind.TRAFFIC, tags={"site": "s1", "lane": "1"})
    b = reading(SensorKind.TRAFFIC, tags={"lane": "1", "site": "s1"})

    assert a.series_key == b.series_key


def test_a_reading_is_immutable() -> None:
    r = reading()

    with pytest.raises(ValidationError):
        r.sensor = "other"  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# String fields (ids from other systems, such as GTFS trip and stop ids) and fixed tag sets.


@pytest.mark.parametrize(("kind", "spec"), STRING_FIELDS, ids=[field_id(x) for x in STRING_FIELDS])
@given(data=st.data())
def test_a_string_without_control_characters_within_its_length_or_choices_is_accepted(
    kind: SensorKind, spec: FieldSpec, data: st.DataObject
) -> None:
    if spec.choices:
        value = data.draw(st.sampled_from(spec.choices))
    else:
        printable = st.characters(exclude_categories=["Cc", "Cs"])
        value = data.draw(st.text(printable, min_size=int(spec.minimum), max_size=int(spec.maximum)))

    assert reading(kind, fields=with_fields(kind, **{spec.name: value})).fields[spec.name] == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "length 0 out of range [1, 255]"),
        ("x" * 256, "length 256 out of range [1, 255]"),
        ("LAM\nBLU", "must not contain control characters"),
        ("trip\n", "must not contain control characters"),
        ("a\x00b", "must not contain control characters"),
        ("a\x85b", "must not contain control characters"),
        ("a\ud800b", "must not contain control characters"),
        (42, "expected a string, got int"),
        (None, "expected a string, got NoneType"),
    ],
    ids=["empty", "too-long", "newline", "final-newline", "nul", "c1", "lone-surrogate", "int", "null"],
)
def test_a_bad_string_is_rejected_naming_field_and_value(value: Any, message: str) -> None:
    kind = SensorKind.TRANSIT_DELAY
    error = rejected(kind, fields=with_fields(kind, trip=value))

    assert (error.field, error.value, error.message) == ("fields.trip", value, message)


def test_a_string_outside_its_choices_is_rejected_listing_them() -> None:
    kind = SensorKind.TRANSIT_DELAY
    error = rejected(kind, fields=with_fields(kind, status="late"))

    assert (error.field, error.value) == ("fields.status", "late")
    assert error.message == "not one of scheduled, skipped, cancelled, no_data"


def test_quotes_and_backslashes_are_plain_characters_in_a_string_field() -> None:
    kind = SensorKind.TRANSIT_VEHICLE
    trip = 'linea "2" \\ feriale'

    assert reading(kind, fields=with_fields(kind, trip=trip)).fields["trip"] == trip


def test_a_kind_with_a_fixed_tag_set_refuses_a_reading_without_one_of_its_tags() -> None:
    error = rejected(SensorKind.TRANSIT_VEHICLE, tags={})

    assert (error.field, error.value, error.message) == ("tags.route", None, "required tag missing")


def test_the_older_kinds_tags_stay_optional() -> None:
    assert reading(SensorKind.FLEET, tags={}).tags == {}
