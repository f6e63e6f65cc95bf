"""Bytes ⇄ Batch: round trips, hostile input, and rejects that name the field and the value."""

from __future__ import annotations

import json
import math
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.contract import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    ID_PATTERN,
    KINDS,
    Batch,
    ContractError,
    DecodedBatch,
    DecodeError,
    FieldSpec,
    PayloadTooLargeError,
    Reading,
    SchemaError,
    SensorKind,
    decode,
    decode_strict,
    encode,
    format_ts,
    short_repr,
)
from edge.contract.batch import MAX_READINGS_PER_BATCH, MAX_SEQ
from edge.contract.kinds import NOT_ABOVE, cross_field_error

# ---------------------------------------------------------------------------------------------
# Strategies: valid values straight from the declarations in edge.contract.kinds.

ids = st.from_regex(ID_PATTERN, fullmatch=True)
tag_values = st.text(alphabet=string.ascii_letters + string.digits + "_.:@-", min_size=1, max_size=64)
utc_offsets = st.timedeltas(
    min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
).map(timezone)
# A day's margin at both ends, so that every offset still has a UTC form in years 1..9999.
# hypothesis takes naive bounds and attaches the drawn timezone itself.
aware_datetimes = st.datetimes(
    min_value=datetime(1, 1, 2),  # noqa: DTZ001
    max_value=datetime(9999, 12, 30),  # noqa: DTZ001
    timezones=utc_offsets,
)
# The cross-field rules of kinds.cross_field_error, as (field that must not exceed, its bound).
CROSS_FIELD_BOUND = {name: bound for rules in NOT_ABOVE.values() for name, bound in rules}


def field_values(spec: FieldSpec) -> st.SearchStrategy[float | int | bool | str]:
    if spec.type == "bool":
        return st.booleans()
    if spec.type == "str":
        if spec.choices:
            return st.sampled_from(spec.choices)
        # Any text but control characters and lone surrogates, quotes and backslashes included.
        printable = st.characters(exclude_categories=["Cc", "Cs"])
        return st.text(printable, min_size=int(spec.minimum), max_size=int(spec.maximum))
    if spec.type == "int":
        return st.integers(int(spec.minimum), int(spec.maximum))
    return st.floats(spec.minimum, spec.maximum, allow_nan=False, allow_infinity=False)


@st.composite
def valid_fields(draw: st.DrawFn, kind: SensorKind) -> dict[str, float | int | bool | str]:
    fields = {f.name: draw(field_values(f)) for f in KINDS[kind].fields if f.required or draw(st.booleans())}
    crossed = cross_field_error(kind, fields)
    if crossed is not None:
        # Both fields share a range, so swapping them satisfies the rule.
        name, bound = crossed[0], CROSS_FIELD_BOUND[crossed[0]]
        fields[name], fields[bound] = fields[bound], fields[name]
    return fields


@st.composite
def readings(draw: st.DrawFn, kind: SensorKind, org: str, gateway: str) -> Reading:
    tag_keys = KINDS[kind].tags
    tags = draw(st.dictionaries(st.sampled_from(tag_keys), tag_values)) if tag_keys else {}
    if KINDS[kind].fixed_tags:
        tags = {key: draw(tag_values) for key in tag_keys}
    return Reading(
        kind=kind,
        org=org,
        gateway=gateway,
        sensor=draw(ids),
        ts=draw(aware_datetimes),
        fields=draw(valid_fields(kind)),
        tags=tags,
    )


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    kind, org, gateway = draw(st.sampled_from(SensorKind)), draw(ids), draw(ids)
    return Batch.of(
        draw(st.lists(readings(kind, org, gateway), min_size=1, max_size=8)),
        seq=draw(st.integers(0, MAX_SEQ)),
        sent_at=draw(aware_datetimes),
    )


# Any JSON value, including what only Python's json module writes (NaN, Infinity) and what
# only it reads back (lone surrogates), plus strings that are nearly valid contract values.
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=8),
    st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=2),
    st.sampled_from(
        [
            "",
            "parking",
            "comune-prato",
            "Comune",
            "a\n",
            "2026-11-24T08:00:00",
            "2026-11-24T08:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-23:59",
            "0999-01-01T00:00:00Z",
        ]
    ),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)

# ---------------------------------------------------------------------------------------------
# Hand-written payloads, made with Python's json module as a careless producer would.

SENT_AT = "2026-11-24T08:00:01.250Z"


def parking_item(sensor: str) -> dict[str, Any]:
    return {
        "sensor": sensor,
        "ts": "2026-11-24T08:00:00.000Z",
        "fields": {"occupied": 410, "capacity": 520, "occupancy_pct": 78.8},
        "tags": {"zone": "centro"},
    }


def wire(readings_: list[Any], **envelope: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "v": 1,
        "org": "comune-prato",
        "gateway": "gw-mercatale",
        "kind": "parking",
        "seq": 42,
        "sent_at": SENT_AT,
        "readings": readings_,
    }
    doc.update(envelope)
    return doc


def dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def three_with_middle(mutate: Callable[[dict[str, Any]], Any]) -> bytes:
    """Three parking readings; `mutate` changes (or replaces, by returning) the middle one."""
    items: list[Any] = [parking_item(f"p-{i}") for i in range(3)]
    replaced = mutate(items[1])
    if replaced is not None:
        items[1] = replaced
    return dumps(wire(items))


def decode_or_none(payload: bytes) -> DecodedBatch | None:
    """Decode hostile input: a ContractError is fine; anything else fails the test by escaping.
    Whatever is accepted must be valid and must survive a second round trip."""
    rejected: ContractError | None = None
    try:
        decoded = decode(payload)
    except ContractError as exc:
        rejected = exc
    if rejected is not None:
        # A whole-message reject becomes a dead letter, so it must print.
        assert str(rejected)
        assert short_repr(rejected.value)
        return None
    for reject in decoded.rejects:
        assert isinstance(reject.error, ContractError)
        assert reject.error.field.startswith(f"readings[{reject.index}]")
        assert str(reject.error)
    for reading in decoded.readings:
        assert Reading.model_validate(reading.model_dump()) == reading
        assert (reading.org, reading.gateway, reading.kind) == (
            decoded.envelope.org,
            decoded.envelope.gateway,
            decoded.envelope.kind,
        )
    if decoded.readings:
        batch = Batch(**decoded.envelope.model_dump(), readings=tuple(decoded.readings))
        assert decode_strict(encode(batch)) == batch
    return decoded


def only_reject(decoded: DecodedBatch) -> ContractError:
    assert len(decoded.rejects) == 1, decoded.rejects
    return decoded.rejects[0].error


# ---------------------------------------------------------------------------------------------
# Round trips and hostile input.


@settings(deadline=None)
@given(batches())
def test_any_valid_batch_encodes_and_decodes_to_an_equal_batch(batch: Batch) -> None:
    payload = encode(batch)
    decoded = decode(payload)
    assert decoded.rejects == []
    assert decode_strict(payload) == batch
    assert encode(decode_strict(payload)) == payload


@settings(deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_raise_only_contract_errors_and_yield_only_valid_readings(payload: bytes) -> None:
    decode_or_none(payload)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.data())
def test_a_corrupted_payload_raises_only_contract_errors_and_yields_only_valid_readings(
    batch: Batch, data: st.DataObject
) -> None:
    payload = bytearray(encode(batch))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(payload) - 1))
        payload[at] = data.draw(st.sampled_from(b'{}[]",:0-9.eE \\nNaIfty\xff\x00'))
    cut = data.draw(st.integers(1, len(payload)))
    decode_or_none(bytes(payload[:cut]))


def positions(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) pair in a JSON document, depth first."""
    found: list[tuple[Any, Any]] = []
    keys: list[Any] = list(node) if isinstance(node, dict) else list(range(len(node)))
    for key in keys:
        found.append((node, key))
        if isinstance(node[key], dict | list):
            found.extend(positions(node[key]))
    return found


@settings(deadline=None)
@given(st.data())
def test_any_json_value_anywhere_in_a_batch_is_rejected_or_yields_only_valid_readings(
    data: st.DataObject,
) -> None:
    doc = wire([parking_item("p-0"), parking_item("p-1")])
    container, key = data.draw(st.sampled_from(positions(doc)))
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "replace":
        container[key] = data.draw(json_values)
    elif action == "delete":
        del container[key]
    elif isinstance(container, dict):
        container[data.draw(st.text(max_size=8))] = data.draw(json_values)
    else:
        container.append(data.draw(json_values))
    decode_or_none(dumps(doc))


# ---------------------------------------------------------------------------------------------
# One bad reading is rejected with its path and value; its neighbours are kept.


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["NaN", "Infinity", "-Infinity"])
def test_nan_or_infinity_in_one_reading_rejects_that_reading_only(bad: float) -> None:
    payload = three_with_middle(lambda item: item["fields"].update(occupancy_pct=bad))
    assert b"NaN" in payload or b"Infinity" in payload  # json.dumps writes them; orjson would not

    decoded = decode(payload)

    assert [r.sensor for r in decoded.readings] == ["p-0", "p-2"]
    error = only_reject(decoded)
    assert isinstance(error, SchemaError)
    assert error.field == "readings[1].fields.occupancy_pct"
    assert error.message == "must be a finite number"
    assert (math.isnan(error.value) and math.isnan(bad)) or error.value == bad
    assert (decoded.rejects[0].index, decoded.rejects[0].sensor) == (1, "p-1")


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation that sets item[a][b]... for the dotted `path`."""

    def mutate(item: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for part in parents:
            item = item[part]
        item[last] = value

    return mutate


def _del(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(item: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for part in parents:
            item = item[part]
        del item[last]

    return mutate


@pytest.mark.parametrize(
    ("mutate", "field", "value", "message"),
    [
        (_set("fields.bogus", 1), "readings[1].fields.bogus", 1, "unknown field for kind parking"),
        (_set("tags.colour", "red"), "readings[1].tags.colour", "red", "unknown tag for kind parking"),
        (_del("fields.capacity"), "readings[1].fields.capacity", None, "required field missing"),
        (_set("fields.occupied", "410"), "readings[1].fields.occupied", "410", "expected a number"),
        (_set("fields.occupied", True), "readings[1].fields.occupied", True, "expected a number"),
        (_set("fields.occupied", None), "readings[1].fields.occupied", None, "expected a number"),
        (_set("fields.occupied", 410.5), "readings[1].fields.occupied", 410.5, "expected an integer"),
        (_set("fields.occupancy_pct", 100.5), "readings[1].fields.occupancy_pct", 100.5, "out of range"),
        (_set("fields.capacity", 0), "readings[1].fields.capacity", 0, "out of range [1, 20000]"),
        (_set("fields.occupied", -1), "readings[1].fields.occupied", -1, "out of range [0, 20000]"),
        (_set("fields.occupied", 521), "readings[1].fields.occupied", 521, "521 exceeds capacity 520"),
        (_set("fields", [410]), "readings[1].fields", [410], "valid dictionary"),
        (_set("tags", "centro"), "readings[1].tags", "centro", "valid dictionary"),
        (_del("sensor"), "readings[1].sensor", None, "Field required"),
        (_set("sensor", "P 1"), "readings[1].sensor", "P 1", "should match pattern"),
        (_set("sensor", 7), "readings[1].sensor", 7, "valid string"),
        (_del("ts"), "readings[1].ts", None, "Field required"),
        (_set("ts", "yesterday"), "readings[1].ts", "yesterday", "datetime"),
        (_set("unit", "spaces"), "readings[1].unit", "spaces", "Extra inputs are not permitted"),
        (_set("kind", "traffic"), "readings[1].kind", "traffic", "belongs to the envelope"),
        (_set("org", "comune-prato"), "readings[1].org", "comune-prato", "belongs to the envelope"),
        (lambda _item: 7, "readings[1]", 7, "expected an object"),
        (lambda _item: [], "readings[1]", [], "expected an object"),
    ],
    ids=[
        "unknown-field",
        "unknown-tag",
        "missing-required-field",
        "string-for-int",
        "bool-for-int",
        "null-for-int",
        "fraction-for-int",
        "above-maximum",
        "below-minimum-capacity",
        "negative-count",
        "occupied-over-capacity",
        "fields-not-object",
        "tags-not-object",
        "missing-sensor",
        "sensor-not-an-id",
        "sensor-not-a-string",
        "missing-ts",
        "ts-not-a-datetime",
        "unknown-reading-key",
        "kind-in-reading",
        "org-in-reading",
        "reading-is-a-number",
        "reading-is-a-list",
    ],
)
def test_a_bad_reading_is_rejected_with_its_path_and_value_and_neighbours_are_kept(
    mutate: Callable[[dict[str, Any]], Any], field: str, value: Any, message: str
) -> None:
    decoded = decode(three_with_middle(mutate))

    assert [r.sensor for r in decoded.readings] == ["p-0", "p-2"]
    error = only_reject(decoded)
    assert isinstance(error, SchemaError)
    assert (error.field, error.value) == (field, value)
    assert message in error.message
    assert str(error).startswith(f"{field}: ")
    assert decoded.rejects[0].index == 1


@pytest.mark.parametrize(
    "tag_value",
    ["a,b", "a b", "a=b", "a\nb", "centro\n", 'a"b', "a'b", "a/b", "a+b", "a#b", "a\\b", "", "x" * 65],
    ids=repr,
)
def test_a_tag_value_with_a_structural_character_is_rejected_with_its_path(tag_value: str) -> None:
    decoded = decode(three_with_middle(_set("tags.zone", tag_value)))

    assert [r.sensor for r in decoded.readings] == ["p-0", "p-2"]
    error = only_reject(decoded)
    assert (error.field, error.value) == ("readings[1].tags.zone", tag_value)


def test_a_bad_tag_key_is_rejected_with_a_path_naming_the_key() -> None:
    error = only_reject(decode(three_with_middle(_set("tags.Zone", "centro"))))

    # pydantic reports dict-key errors at (..., key, "[key]"); the path keeps that marker.
    assert error.field.startswith("readings[1].tags.Zone")
    assert error.value == "Zone"


def test_a_naive_reading_timestamp_rejects_that_reading_only() -> None:
    decoded = decode(three_with_middle(_set("ts", "2026-11-24T08:00:00")))

    error = only_reject(decoded)
    assert (error.field, error.value) == ("readings[1].ts", "2026-11-24T08:00:00")
    assert "timezone" in error.message
    assert len(decoded.readings) == 2


def test_a_reading_timestamp_with_no_utc_equivalent_is_rejected_not_crashing() -> None:
    # Regression: astimezone() raised OverflowError straight through pydantic and decode().
    decoded = decode(three_with_middle(_set("ts", "0001-01-01T00:00:00+01:00")))

    assert only_reject(decoded).field == "readings[1].ts"


def test_int_fields_are_normalised_to_int_and_float_fields_to_float() -> None:
    def as_floats_and_ints(item: dict[str, Any]) -> None:
        item["fields"] = {"occupied": 410.0, "capacity": 520, "occupancy_pct": 79}

    decoded = decode(three_with_middle(as_floats_and_ints))

    fields = decoded.readings[1].fields
    assert fields == {"occupied": 410, "capacity": 520, "occupancy_pct": 79.0}
    assert [type(fields[name]) for name in ("occupied", "capacity", "occupancy_pct")] == [int, int, float]
    batch = Batch(**decoded.envelope.model_dump(), readings=tuple(decoded.readings))
    assert b'"occupied":410,' in encode(batch)


# ---------------------------------------------------------------------------------------------
# A broken envelope, or unusable bytes, reject the whole message.


def test_a_too_large_payload_raises_payload_too_large_naming_the_size() -> None:
    payload = dumps(wire([parking_item(f"p-{i}") for i in range(50)]))
    limit = len(payload) - 1

    with pytest.raises(PayloadTooLargeError) as info:
        decode(payload, max_bytes=limit)

    assert (info.value.field, info.value.value, info.value.reason) == ("payload", len(payload), "too_large")
    assert str(len(payload)) in str(info.value)
    assert str(limit) in str(info.value)


def test_a_payload_exactly_at_the_size_limit_is_decoded() -> None:
    payload = dumps(wire([parking_item("p-0")]))

    assert len(decode(payload, max_bytes=len(payload)).readings) == 1


def test_the_default_size_limit_is_checked_before_parsing() -> None:
    with pytest.raises(PayloadTooLargeError):
        decode(b"{" * (DEFAULT_MAX_PAYLOAD_BYTES + 1))


@pytest.mark.parametrize(
    ("doc", "error_type", "field", "value"),
    [
        (wire([parking_item("p-0")], v=2), SchemaError, "v", 2),
        (wire([parking_item("p-0")], org="Comune-Prato"), SchemaError, "org", "Comune-Prato"),
        (wire([parking_item("p-0")], gateway="gw/1"), SchemaError, "gateway", "gw/1"),
        (wire([parking_item("p-0")], kind="bus"), SchemaError, "kind", "bus"),
        (wire([parking_item("p-0")], seq=-1), SchemaError, "seq", -1),
        (wire([parking_item("p-0")], seq=MAX_SEQ + 1), SchemaError, "seq", MAX_SEQ + 1),
        (wire([parking_item("p-0")], seq="forty-two"), SchemaError, "seq", "forty-two"),
        (wire([parking_item("p-0")], sent_at="2026-11-24T08:00:01"), SchemaError, "sent_at", None),
        (wire([parking_item("p-0")], extra=1), SchemaError, "extra", 1),
        (wire([]), SchemaError, "readings", []),
        (wire({"sensor": "p-0"}), SchemaError, "readings", {"sensor": "p-0"}),
        ({k: v for k, v in wire([]).items() if k != "org"}, SchemaError, "org", None),
        ({k: v for k, v in wire([]).items() if k != "readings"}, SchemaError, "readings", None),
        ([wire([parking_item("p-0")])], SchemaError, "payload", None),
        ("just a string", SchemaError, "payload", "just a string"),
    ],
    ids=[
        "unknown-version",
        "uppercase-org",
        "gateway-with-slash",
        "unknown-kind",
        "negative-seq",
        "seq-beyond-int64",
        "seq-not-a-number",
        "naive-sent-at",
        "unknown-envelope-field",
        "no-readings",
        "readings-not-a-list",
        "missing-org",
        "missing-readings",
        "payload-is-a-list",
        "payload-is-a-string",
    ],
)
def test_a_broken_envelope_rejects_the_whole_message_with_its_path(
    doc: Any, error_type: type[ContractError], field: str, value: Any
) -> None:
    with pytest.raises(error_type) as info:
        decode(dumps(doc))

    assert info.value.field == field
    if value is not None:
        assert info.value.value == value


def test_too_many_readings_reject_the_whole_message_naming_the_count() -> None:
    doc = wire([parking_item("p-0")] * (MAX_READINGS_PER_BATCH + 1))

    with pytest.raises(SchemaError) as info:
        decode(dumps(doc), max_bytes=100_000_000)

    assert (info.value.field, info.value.value) == ("readings", MAX_READINGS_PER_BATCH + 1)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"{",
        b"\xff\xfe{}",
        b'{"v": 1,}',
        # UTF-16 is JSON that Python's json module would sniff and read; the wire is UTF-8.
        json.dumps(wire([parking_item("p-0")])).encode("utf-16"),
        # A lone surrogate, next to a NaN so that the stdlib fallback parser is the one reading it.
        b'{"v": 1, "seq": NaN, "org": "\\ud800"}',
        b'{"v": 1, "fields": {"\\udc80": NaN}}',
    ],
    ids=["empty", "truncated", "bad-utf8", "trailing-comma", "utf16", "surrogate-value", "surrogate-key"],
)
def test_bytes_that_are_not_utf8_json_raise_decode_error(payload: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        decode(payload)

    assert (info.value.field, info.value.reason) == ("payload", "bad_json")


def test_a_lone_surrogate_in_a_field_name_is_a_decode_error_not_a_crash() -> None:
    # Regression: the stdlib fallback accepted it, and pydantic then failed to encode the
    # error message naming the field with UnicodeEncodeError.
    doc = wire([parking_item("p-0")])
    doc["readings"][0]["fields"]["\ud800"] = float("nan")

    with pytest.raises(DecodeError):
        decode(dumps(doc))


def test_decode_strict_raises_the_first_rejected_reading() -> None:
    with pytest.raises(SchemaError) as info:
        decode_strict(three_with_middle(_set("fields.occupied", 9999)))

    assert info.value.field == "readings[1].fields.occupied"


def test_the_documented_wire_example_decodes_to_the_documented_values() -> None:
    payload = (
        b'{"v": 1, "org": "comune-prato", "gateway": "gw-mercatale", "kind": "parking", "seq": 42,'
        b' "sent_at": "2026-11-24T08:00:01.250Z",'
        b' "readings": [{"sensor": "p-mercatale", "ts": "2026-11-24T08:00:00.000Z",'
        b' "fields": {"occupied": 410, "capacity": 520, "occupancy_pct": 78.8},'
        b' "tags": {"zone": "centro"}}]}'
    )

    batch = decode_strict(payload)

    assert (batch.org, batch.gateway, batch.kind, batch.seq) == (
        "comune-prato",
        "gw-mercatale",
        SensorKind.PARKING,
        42,
    )
    assert batch.sent_at == datetime(2026, 11, 24, 8, 0, 1, 250_000, tzinfo=UTC)
    (reading,) = batch.readings
    assert reading.fields == {"occupied": 410, "capacity": 520, "occupancy_pct": 78.8}
    assert reading.tags == {"zone": "centro"}


# ---------------------------------------------------------------------------------------------
# The Batch model and the timestamp form.


def _parking(gateway: str = "gw-mercatale", kind: SensorKind = SensorKind.PARKING) -> Reading:
    fields: dict[str, Any] = (
        {"occupied": 1, "capacity": 2, "occupancy_pct": 50.0}
        if kind is SensorKind.PARKING
        else {"occupied": True}
    )
    return Reading(
        kind=kind,
        org="comune-prato",
        gateway=gateway,
        sensor="p-1",
        ts=datetime(2026, 11, 24, 8, tzinfo=UTC),
        fields=fields,
    )


@pytest.mark.parametrize(
    "stranger",
    [_parking(gateway="gw-other"), _parking(kind=SensorKind.PARKING_SPOT)],
    ids=["other-gateway", "other-kind"],
)
def test_a_batch_refuses_a_reading_of_another_gateway_or_kind(stranger: Reading) -> None:
    with pytest.raises(ValueError, match=r"readings\[1\]: reading belongs to"):
        Batch.of([_parking(), stranger], seq=1, sent_at=datetime(2026, 11, 24, tzinfo=UTC))


def test_a_batch_refuses_a_seq_that_the_encoder_could_not_write() -> None:
    # Regression: seq 2**64 was a valid Batch that orjson then refused to encode.
    with pytest.raises(ValueError, match="seq"):
        Batch.of([_parking()], seq=2**64, sent_at=datetime(2026, 11, 24, tzinfo=UTC))


@pytest.mark.parametrize(
    ("ts", "wire_form"),
    [
        (
            datetime(2026, 11, 24, 9, 0, 1, 250_999, tzinfo=timezone(timedelta(hours=1))),
            "2026-11-24T08:00:01.250Z",
        ),
        (datetime(2026, 11, 24, 8, tzinfo=UTC), "2026-11-24T08:00:00.000Z"),
        (datetime(999, 1, 1, tzinfo=UTC), "0999-01-01T00:00:00.000Z"),
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000Z"),
    ],
)
def test_timestamps_are_written_as_utc_milliseconds_with_a_z(ts: datetime, wire_form: str) -> None:
    # Regression: strftime("%Y") wrote year 999 as "999", which no RFC 3339 parser reads.
    assert format_ts(ts) == wire_form
