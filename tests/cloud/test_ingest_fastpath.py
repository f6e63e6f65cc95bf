"""The ingest fast path accepts exactly what the contract accepts and writes identical line protocol."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.core.admission import Admission, TimeLimits
from cloud.core.directory import GatewayEntry, SensorDirectory, SensorEntry
from cloud.ingest.fastpath import FastDecoder, MessageVerdict, reference_decode
from cloud.io.influx.lineprotocol import timestamp_ns
from edge.contract import KINDS, ContractError, SensorKind, format_ts, topics
from edge.contract.kinds import NOT_ABOVE

NOW = datetime(2026, 11, 24, 8, 0, 0, 123456, tzinfo=UTC)
LIMITS = TimeLimits(max_future=timedelta(seconds=300), max_age=timedelta(days=30))
MAX_BYTES = 1_048_576
ADMISSION = Admission(LIMITS, max_payload_bytes=MAX_BYTES)  # no records, nothing declared


def verdict(decode: Any) -> tuple[Any, ...]:
    """Everything ingest uses from a decoded message, comparable between the two paths."""
    try:
        m: MessageVerdict = decode()
    except ContractError as exc:
        return ("raised", type(exc).__name__, str(exc), exc.field, repr(exc.value))
    rejects = [
        (r.index, r.sensor, type(r.error).__name__, str(r.error), r.error.field, repr(r.error.value))
        for r in m.rejects
    ]
    return (m.envelope, m.lines, m.sensors, rejects, m.newest_us, m.readings)


def both(payload: bytes, decoder: FastDecoder | None = None) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    fast = decoder or FastDecoder(ADMISSION)
    return (
        verdict(lambda: fast.decode(payload, NOW)),
        verdict(lambda: reference_decode(payload, NOW, fast.admission)),
    )


def envelope(kind: str, readings: Any, **over: Any) -> dict[str, Any]:
    env = {"v": 1, "org": "comune-prato", "gateway": "gw-x", "kind": kind, "seq": 3,
           "sent_at": "2026-11-24T07:59:59.000Z", "readings": readings}  # fmt: skip
    env.update(over)
    return env


# -- strategies: mostly valid readings, with every kind of small breakage ---------------------------

# hypothesis takes naive bounds and attaches the timezone itself.
GOOD_TS = st.datetimes(
    min_value=datetime(2026, 10, 20),  # noqa: DTZ001
    max_value=datetime(2026, 11, 24, 8, 6),  # noqa: DTZ001
    timezones=st.just(UTC),
).map(format_ts)
ODD_TS = st.sampled_from(
    [
        "2026-11-24T07:00:00Z",
        "2026-11-24T07:00:00.5Z",
        "2026-11-24T07:00:00.123456Z",
        "2026-11-24T08:00:00.000+01:00",
        "2026-11-24 07:00:00.000Z",
        "2026-02-30T07:00:00.000Z",
        "2026-11-24T07:00:60.000Z",
        "2026-11-24T24:00:00.000Z",
        "2026-11-24T07:00:00.000z",
        "2026-11-24T07:00:0٣.000Z",
        "2026-11-24T07:00:00.000",
        "1999-01-01T00:00:00.000Z",
        "2099-01-01T00:00:00.000Z",
        "0000-01-01T00:00:00.000Z",
        "garbage-garbage-garbage!",
        "",
    ]
)
NUMBERS = st.one_of(
    st.integers(-5, 25_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 100),
    st.sampled_from([0, 1, 1.0, 50.0, 99.5, 2**70, -0.0]),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)
# Text as GTFS ids and labels come: plain, with quotes, backslashes, commas, equals signs and
# spaces (line protocol's specials), accents, and the control characters the contract refuses.
ODD_TEXT = st.sampled_from(
    ["", "x" * 255, "x" * 256, "a\nb", "trip\n", "\r", "a\x00b", "a\x85", "tab\there", "\x7f", "\u2028"]
)
TEXT = st.one_of(
    st.sampled_from(
        ["LAM-BLU_F_0712", "PO:Duomo 2", 'say "hi"', "back\\slash", "a,b=c d", "città", "é" * 255]
    ),
    st.text(max_size=12),
    ODD_TEXT,
    NUMBERS,
)
OCCUPANCY = st.one_of(
    st.sampled_from(["empty", "full", "few_seats_available", "FULL", "", "full\n"]), NUMBERS
)
FIELDS = {
    "parking": {
        "occupied": st.integers(0, 600),
        "capacity": st.integers(1, 600),
        "occupancy_pct": st.floats(0, 100),
    },
    "parking_spot": {"occupied": st.booleans()},
    "traffic": {
        "vehicles": st.integers(0, 300),
        "heavy": st.integers(0, 300),
        "interval_s": st.integers(1, 3600),
        "speed_kmh": st.one_of(st.floats(0, 250), st.integers(0, 250)),
        "occupancy_pct": st.floats(0, 100),
    },
    "fleet": {
        "lat": st.floats(-90, 90),
        "lon": st.floats(-180, 180),
        "speed_kmh": st.floats(0, 300),
        "heading_deg": st.floats(0, 360),
    },
    "transit_vehicle": {
        "lat": st.floats(-90, 90),
        "lon": st.one_of(st.floats(-180, 180), st.integers(-180, 180)),
        "bearing_deg": st.floats(0, 360),
        "speed_kmh": st.floats(0, 300),
        "trip": TEXT,
        "stop": TEXT,
        "stop_status": st.sampled_from(["incoming_at", "stopped_at", "in_transit_to", "moving"]),
        "occupancy": OCCUPANCY,
        "occupancy_pct": st.integers(-1, 301),
        "delay_s": st.integers(-90_000, 90_000),
    },
    "transit_delay": {
        "trip": TEXT,
        "stop_sequence": st.integers(-1, 2**31),
        "status": st.sampled_from(["scheduled", "skipped", "cancelled", "no_data", "late", ""]),
        "delay_s": st.integers(-90_000, 90_000),
    },
}
TAGS = {"parking": ["zone"], "parking_spot": ["zone", "street"], "traffic": ["site", "lane", "direction"],
        "fleet": ["vehicle_type", "route"], "transit_vehicle": ["route"],
        "transit_delay": ["route"]}  # fmt: skip
# Optional fields a reading may leave out (the others are required).
OPTIONAL = {
    (kind, name)
    for kind in FIELDS
    for name in FIELDS[kind]
    if not KINDS[SensorKind(kind)].by_name[name].required
}
TAG_VALUES = st.one_of(
    st.sampled_from(["centro", "a-1", "x.y:z@w", "Bad Value", "", "é", "a" * 65]), st.integers()
)
SENSORS = st.one_of(
    st.sampled_from(["p-1", "p-2", "s-9", "gw-x"]),
    st.sampled_from(["P-1", "-p", "", "a" * 64, "p 1", "p-1\n", 7, None]),
)


@st.composite
def readings(draw: st.DrawFn, kind: str) -> Any:
    fields = {
        name: draw(strategy)
        for name, strategy in FIELDS[kind].items()
        if (kind, name) not in OPTIONAL or draw(st.booleans())
    }
    if draw(st.booleans()):  # break something about the fields
        name = draw(st.sampled_from([*FIELDS[kind], "bogus"]))
        action = draw(st.sampled_from(["drop", "replace"]))
        if action == "drop":
            fields.pop(name, None)
        else:
            fields[name] = draw(st.one_of(NUMBERS, TEXT))
    if draw(st.booleans()):  # shuffle field order: the line has the declared order all the same
        fields = dict(reversed(list(fields.items())))
    item: dict[str, Any] = {
        "sensor": draw(SENSORS),
        "ts": draw(st.one_of(GOOD_TS, GOOD_TS, ODD_TS, st.integers())),
        "fields": fields,
    }
    if draw(st.booleans()):
        keys = draw(st.lists(st.sampled_from([*TAGS[kind], "other", "Zone"]), max_size=3, unique=True))
        item["tags"] = {k: draw(TAG_VALUES) for k in keys}
    if draw(st.integers(0, 9)) == 0:
        item[draw(st.sampled_from(["extra", "org", "kind"]))] = "gw-x"
    if draw(st.integers(0, 14)) == 0:
        return draw(
            st.sampled_from([None, [], "p-1", {"sensor": "p-1"}, {"fields": "x", "ts": 1, "sensor": 1}])
        )
    return item


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(list(FIELDS)))
    items = draw(st.lists(readings(kind), min_size=1, max_size=6))
    env = envelope(kind, items)
    if draw(st.integers(0, 9)) == 0:
        env[draw(st.sampled_from(["v", "seq", "org", "sent_at", "kind"]))] = draw(
            st.sampled_from([2, -1, "Bad Org", "services", None, "yesterday", "rain"])
        )
    # json, not orjson: it also writes NaN, Infinity and integers beyond 64 bits, as a sender might.
    return json.dumps(env).encode()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_the_fast_path_gives_the_contracts_verdict_on_any_message(payload: bytes) -> None:
    fast, reference = both(payload)
    assert fast == reference


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages(), min_size=2, max_size=6))
def test_the_fast_paths_caches_never_change_a_later_verdict(payloads: list[bytes]) -> None:
    decoder = FastDecoder(ADMISSION)
    for payload in [*payloads, *reversed(payloads)]:
        fast, reference = both(payload, decoder)
        assert fast == reference


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_get_the_contracts_verdict_on_the_fast_path(payload: bytes) -> None:
    fast, reference = both(payload)
    assert fast == reference


# Well-formed messages only, at the edges of what is valid: the typed path's ground.
EDGE_VALUES = {
    "int": lambda f: st.one_of(
        st.integers(int(f.minimum), int(f.maximum)), st.sampled_from([int(f.minimum), int(f.maximum)])
    ),
    "float": lambda f: st.one_of(
        st.floats(f.minimum, f.maximum),
        st.integers(int(f.minimum), int(f.maximum)),  # an int where a float belongs is fine
        st.sampled_from([float(f.minimum), float(f.maximum), -0.0 if f.minimum <= 0 else float(f.minimum)]),
    ),
    "bool": lambda f: st.booleans(),
    "str": lambda f: st.sampled_from(f.choices) if f.choices else st.one_of(
        st.text(st.characters(exclude_categories=["Cc", "Cs"]), min_size=int(f.minimum), max_size=12),
        st.sampled_from(["x" * int(f.maximum), 'q"\\,= ', "é" * int(f.maximum)]),
    ),
}  # fmt: skip


IN_LIMITS_TS = st.datetimes(
    min_value=datetime(2026, 10, 26),  # noqa: DTZ001  (NOW - 30 days < this)
    max_value=datetime(2026, 11, 24, 8, 4),  # noqa: DTZ001  (< NOW + 5 min)
    timezones=st.just(UTC),
).map(format_ts)


@st.composite
def well_formed_messages(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(list(FIELDS)))
    spec = KINDS[SensorKind(kind)]
    items = []
    for _ in range(draw(st.integers(1, 8))):
        fields = {
            f.name: draw(EDGE_VALUES[f.type](f)) for f in spec.fields if f.required or draw(st.booleans())
        }
        for name, bound in NOT_ABOVE.get(SensorKind(kind), ()):
            fields[name] = min(fields[name], fields[bound])
        if draw(st.booleans()):
            fields = dict(reversed(list(fields.items())))
        item: dict[str, Any] = {"sensor": draw(SENSORS.filter(lambda s: s in ("p-1", "p-2", "s-9", "gw-x"))),
                                "ts": draw(IN_LIMITS_TS), "fields": fields}  # fmt: skip
        if spec.fixed_tags or draw(st.booleans()):
            keys = (
                TAGS[kind]
                if spec.fixed_tags
                else draw(st.lists(st.sampled_from(TAGS[kind]), max_size=2, unique=True))
            )
            item["tags"] = {k: draw(st.sampled_from(["centro", "a-1", "x.y:z@w"])) for k in keys}
        items.append(item)
    return json.dumps(envelope(kind, items)).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(well_formed_messages())
def test_well_formed_messages_take_the_typed_path_with_the_contracts_verdict(payload: bytes) -> None:
    decoder = FastDecoder(ADMISSION)
    fast, reference = both(payload, decoder)
    assert fast == reference
    assert decoder.typed_messages == 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(messages(), well_formed_messages()), min_size=2, max_size=8))
def test_the_typed_paths_caches_never_change_a_later_verdict(payloads: list[bytes]) -> None:
    decoder = FastDecoder(ADMISSION)
    for payload in [*payloads, *reversed(payloads)]:
        fast, reference = both(payload, decoder)
        assert fast == reference


@pytest.mark.parametrize(
    ("breakage", "why"),
    [
        ({"occupied": 6}, "exceeds capacity"),  # a cross-field rule
        ({"occupied": 2.0}, ""),  # an integral float in an int field: the contract's call
        ({"occupied": True}, ""),
        ({"bogus": 1}, ""),
        ({"occupancy_pct": 100.5}, ""),
    ],
)
def test_one_bad_reading_sends_its_message_to_the_dict_path_and_keeps_its_neighbours(
    breakage: dict[str, Any], why: str
) -> None:
    good = {"occupied": 1, "capacity": 5, "occupancy_pct": 20.0}
    items = [
        {"sensor": f"p-{i}", "ts": "2026-11-24T07:59:00.000Z", "fields": good | (breakage if i == 1 else {})}
        for i in range(3)
    ]
    decoder = FastDecoder(ADMISSION)
    fast, reference = both(orjson.dumps(envelope("parking", items)), decoder)
    assert fast == reference
    assert decoder.typed_messages == 0
    m = decoder.decode(orjson.dumps(envelope("parking", items)), NOW)
    assert [r.index for r in m.rejects] == ([1] if breakage != {"occupied": 2.0} else [])
    assert why in " ".join(str(r.error) for r in m.rejects)
    assert len(m.lines) == 3 - len(m.rejects)


def test_well_formed_readings_never_leave_the_fast_path() -> None:
    items = [
        {"sensor": f"p-{i}", "ts": format_ts(NOW - timedelta(seconds=i)),
         "fields": {"occupied": i, "capacity": 500, "occupancy_pct": i / 5}, "tags": {"zone": "centro"}}
        for i in range(200)
    ]  # fmt: skip
    m = FastDecoder(ADMISSION).decode(orjson.dumps(envelope("parking", items)), NOW)
    assert (m.fallbacks, len(m.lines), m.rejects) == (0, 200, [])
    one_s_before_ms = NOW.replace(hour=7, minute=59, second=59, microsecond=123000)
    assert m.lines[1] == (
        "parking,gateway=gw-x,org=comune-prato,sensor=p-1,zone=centro "
        f"occupied=1i,capacity=500i,occupancy_pct=0.2 {timestamp_ns(one_s_before_ms)}"
    )


@pytest.mark.parametrize(
    ("ts", "why"),
    [
        ("2026-11-24T08:10:00.000Z", "in the future"),
        ("2026-01-01T00:00:00.000Z", "older than"),
    ],
)
def test_a_reading_outside_the_time_limits_gets_the_policys_message(ts: str, why: str) -> None:
    item = {"sensor": "p-1", "ts": ts, "fields": {"occupied": 1, "capacity": 5, "occupancy_pct": 20.0}}
    m = FastDecoder(ADMISSION).decode(orjson.dumps(envelope("parking", [item])), NOW)
    assert m.lines == []
    assert why in str(m.rejects[0].error)
    assert m.rejects[0].error.reason == "policy"


def test_a_refused_sensor_is_refused_again_by_a_decoder_that_has_seen_it() -> None:
    # Regression: the typed path's per-sensor cache once kept the refusal and wrote "None..." lines.
    item = {"sensor": "P-1", "ts": "2026-11-24T07:59:00.000Z", "fields": {"occupied": False}}
    decoder = FastDecoder(ADMISSION)
    for _ in range(2):
        fast, reference = both(orjson.dumps(envelope("parking_spot", [item])), decoder)
        assert fast == reference
        assert fast[1] == []


# -- with installation records and declared kinds: the admission's whole verdict --------------------


def directed() -> Admission:
    """Records list p-1, p-2 and gw-x on gw-x (not s-9); its meta declares p-1 a car park, p-2 a counter."""
    records = GatewayEntry(
        org="comune-prato",
        gateway="gw-x",
        source="test",
        sensors={s: SensorEntry("gw-x", s, "sim_parking") for s in ("p-1", "p-2", "gw-x")},
    )
    admission = Admission(LIMITS, max_payload_bytes=MAX_BYTES, directory=SensorDirectory([records]))
    admission.learn(
        topics.parse(topics.meta("comune-prato", "gw-x")),
        orjson.dumps({"v": 1, "org": "comune-prato", "gateway": "gw-x", "sensors": [
            {"id": "p-1", "kind": "parking", "driver": "sim_parking"},
            {"id": "p-2", "kind": "traffic", "driver": "sim_traffic"},
        ]}),
    )  # fmt: skip
    return admission


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(messages(), well_formed_messages()), min_size=1, max_size=6))
def test_the_fast_paths_give_the_admissions_verdict_with_records_and_declared_kinds(
    payloads: list[bytes],
) -> None:
    decoder = FastDecoder(directed())
    for payload in [*payloads, *reversed(payloads)]:
        fast, reference = both(payload, decoder)
        assert fast == reference


def test_a_series_refused_by_the_directory_is_dead_lettered_with_the_directory_s_reason() -> None:
    fields = {"occupied": 1, "capacity": 5, "occupancy_pct": 20.0}
    items = [{"sensor": s, "ts": "2026-11-24T07:59:00.000Z", "fields": fields} for s in ("p-1", "p-2", "s-9")]
    decoder = FastDecoder(directed())

    m = decoder.decode(orjson.dumps(envelope("parking", items)), NOW)

    assert m.sensors == ["p-1"]
    assert [(r.sensor, r.error.reason) for r in m.rejects] == [
        ("p-2", "wrong_kind"),
        ("s-9", "unknown_sensor"),
    ]


def test_a_declaration_learnt_after_a_series_was_cached_changes_its_next_verdict() -> None:
    admission = Admission(LIMITS, max_payload_bytes=MAX_BYTES)
    decoder = FastDecoder(admission)
    item = {"sensor": "p-1", "ts": "2026-11-24T07:59:00.000Z", "fields": {"occupied": False}}
    payload = orjson.dumps(envelope("parking_spot", [item]))
    assert decoder.decode(payload, NOW).sensors == ["p-1"]  # typed path, prefix cached

    admission.learn(
        topics.parse(topics.meta("comune-prato", "gw-x")),
        orjson.dumps({"v": 1, "org": "comune-prato", "gateway": "gw-x",
                      "sensors": [{"id": "p-1", "kind": "parking", "driver": "sim_parking"}]}),
    )  # fmt: skip
    fast, reference = both(payload, decoder)

    assert fast == reference
    assert fast[1] == []
    assert fast[3][0][2] == "SensorKindError"
