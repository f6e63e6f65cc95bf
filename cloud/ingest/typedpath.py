"""Whole, well-formed data messages decoded straight into typed structs: ingest's cheapest path.

Almost every data message is entirely well formed. For those, msgspec decodes the JSON into
per-kind structs generated from `KINDS`, checking every field's type and range in C while it
parses, so no dict is built per reading and what is left in Python per reading is a cached
prefix, a cached timestamp, the cross-field rules and one f-string (about a third of the
dict-based fast path's cost, `bench/ingest_decode.py`, docs/decisions/0008).

It only ever *accepts whole messages*: anything it is not sure of (a reading any check refuses,
an unknown key, an integral float in an int field, a kind it has no struct for...) makes it give
the message up, and the dict-based fast path (`fastpath.py`) decides with the contract's exact
verdicts. The envelope is still validated by the contract's own model. So the outcome is always
the contract's; `tests/cloud/test_ingest_fastpath.py` checks that with hypothesis.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

import msgspec

from cloud.io.influx.lineprotocol import escape_key, quote_string
from edge.contract import KINDS, Envelope, SensorKind
from edge.contract.batch import MAX_READINGS_PER_BATCH
from edge.contract.kinds import NOT_ABOVE, STRING_PATTERN, FieldSpec

_LOWEST = -(2**63)
_MISS: Any = object()  # a cache miss, distinct from a cached None

# Called with the readings, the sensor -> (tags, prefix) cache and its filler, the timestamp
# cache and its filler, and the time window; gives the lines, their sensors and the newest µs,
# or None to give the message up.
LinesOf = Callable[..., tuple[list[str], list[str], int] | None]


def _field_type(f: FieldSpec) -> Any:
    if f.type == "int":
        return Annotated[int, msgspec.Meta(ge=math.ceil(f.minimum), le=math.floor(f.maximum))]
    if f.type == "float":
        # JSON has no NaN; an out-of-range literal such as 1e999 fails `le`, as infinity should.
        return Annotated[float, msgspec.Meta(ge=float(f.minimum), le=float(f.maximum))]
    if f.type == "str":
        if f.choices:
            return Literal[f.choices]
        length = msgspec.Meta(min_length=int(f.minimum), max_length=int(f.maximum), pattern=STRING_PATTERN)
        return Annotated[str, length]
    return bool


def _batch_struct(kind: SensorKind) -> type[msgspec.Struct] | None:
    """The batch of `kind` as msgspec structs; None when the kind needs the dict path."""
    spec = KINDS[kind]
    title = kind.name.title().replace("_", "")
    fields = msgspec.defstruct(
        f"{title}Fields",
        [
            (f.name, _field_type(f))
            if f.required
            else (f.name, _field_type(f) | msgspec.UnsetType, msgspec.UNSET)
            for f in spec.fields
        ],
        kw_only=True,  # optional fields may come before required ones in the declaration
        forbid_unknown_fields=True,
        gc=False,  # acyclic by construction: keep millions of them out of the collector's walks
    )
    reading = msgspec.defstruct(
        f"{title}Reading",
        [
            ("sensor", str),
            ("ts", str),
            ("fields", fields),
            ("tags", dict[str, str] | msgspec.UnsetType, msgspec.UNSET),  # null is refused
        ],
        forbid_unknown_fields=True,
        gc=False,
    )
    # The envelope's values stay untyped (Any): the contract's Envelope model judges them.
    envelope = [(name, Any) for name in Envelope.model_fields if name != "kind"]
    readings = Annotated[list[reading], msgspec.Meta(min_length=1, max_length=MAX_READINGS_PER_BATCH)]  # type: ignore[valid-type]
    return msgspec.defstruct(
        f"{title}Batch",
        [*envelope, ("readings", readings)],
        tag_field="kind",
        tag=kind.value,
        forbid_unknown_fields=True,
    )


def _lines_of(kind: SensorKind) -> LinesOf | None:
    """A straight-line loop for `kind`'s readings, built from its declarations with `exec`.

    Names, formats and cross-field rules are inlined, as in fastpath._in_order_formatter: a
    generic loop over the declarations costs about twice as much per reading.
    """
    spec = KINDS[kind]
    var = {f.name: f"v{i}" for i, f in enumerate(spec.fields)}
    types = {f.name: f.type for f in spec.fields if f.required}
    body = [
        "def lines(readings, known, prefix_for, stamps, stamp_of, lo_us, hi_us):",
        "    out = []",
        "    sensors = []",
        "    newest = LOWEST",
        "    last_ts = None",
        '    suffix = ""',
        "    add = out.append",
        "    add_sensor = sensors.append",
        "    for r in readings:",
        "        f = r.fields",
        *(f"        {var[f.name]} = f.{f.name}" for f in spec.fields),
    ]
    for name, bound in NOT_ABOVE.get(kind, ()):
        if types.get(name) != "int" or types.get(bound) != "int":
            # The contract's rule applies to two integers both present: leave the rest to the dict path.
            return None
        body.append(f"        if {var[name]} > {var[bound]}: return None")
    parts = []
    for f in spec.fields:
        key, v = escape_key(f.name, "field key"), var[f.name]
        if f.type == "int":
            parts.append(f"{key}={{{v}}}i")
        elif f.type == "float":
            parts.append(f"{key}={{{v}!r}}")
        elif f.type == "str":
            parts.append(f"{key}={{QUOTE({v})}}")
        else:
            parts.append(f"{key}={{'true' if {v} else 'false'}}")
    if all(f.required for f in spec.fields):
        add = f'        add(f"{{prefix}}{",".join(parts)}{{suffix}}")'
    else:
        # Optional fields: the present ones, in the declared order (as reading_line writes them).
        body.append("        present = []")
        for f, part in zip(spec.fields, parts, strict=True):
            indent = "        " if f.required else f"        if {var[f.name]} is not UNSET: "
            body.append(f'{indent}present.append(f"{part}")')
        body.append("        if not present: return None")
        add = '        add(prefix + ",".join(present) + suffix)'
    body += [
        # Per sensor, its last tags and their prefix: a dict lookup and a dict comparison,
        # cheaper than building and hashing a (sensor, *tags) key for every reading.
        "        sensor = r.sensor",
        "        tags = r.tags",
        "        hit = known.get(sensor)",
        "        if hit is not None and hit[0] == tags:",
        "            prefix = hit[1]",
        "        else:",
        "            prefix = prefix_for(sensor, tags)",
        "            if prefix is None: return None",
        # A batch's readings mostly share one timestamp: its checks and digits are done once.
        "        ts = r.ts",
        "        if ts != last_ts:",
        "            us = stamps.get(ts, MISS)",
        "            if us is MISS:",
        "                us = stamp_of(ts)",
        "            if us is None or not lo_us <= us <= hi_us: return None",
        "            last_ts = ts",
        '            suffix = f" {us * 1000}"',
        "            if us > newest: newest = us",
        add,
        "        add_sensor(sensor)",
        "    return out, sensors, newest",
    ]
    namespace: dict[str, Any] = {
        "LOWEST": _LOWEST,
        "MISS": _MISS,
        "QUOTE": quote_string,
        "UNSET": msgspec.UNSET,
    }
    exec("\n".join(body), namespace)  # noqa: S102  (source built above from KINDS only)
    lines: LinesOf = namespace["lines"]
    return lines


@dataclass(frozen=True, slots=True)
class Typed:
    """A message msgspec decoded whole: its kind, envelope values and readings (structs)."""

    kind: SensorKind
    envelope: dict[str, Any]
    readings: list[Any]
    lines_of: LinesOf


class TypedDecoder:
    """Decodes a data message of any kind it has structs for, or says None."""

    def __init__(self) -> None:
        self._by_struct: dict[type, tuple[SensorKind, LinesOf]] = {}
        for kind in KINDS:
            struct, lines_of = _batch_struct(kind), _lines_of(kind)
            if struct is not None and lines_of is not None:
                self._by_struct[struct] = (kind, lines_of)
        structs = tuple(self._by_struct)
        self._decoder = msgspec.json.Decoder(Union[structs]) if structs else None  # noqa: UP007

    def decode(self, payload: bytes) -> Typed | None:
        if self._decoder is None:
            return None
        try:
            batch = self._decoder.decode(payload)
        except (msgspec.MsgspecError, ValueError):  # ValueError: bytes that are not UTF-8
            return None
        kind, lines_of = self._by_struct[type(batch)]
        envelope = {name: getattr(batch, name) for name in Envelope.model_fields if name != "kind"}
        envelope["kind"] = kind.value
        return Typed(kind, envelope, batch.readings, lines_of)


__all__ = ["Typed", "TypedDecoder"]
