"""Data messages to line protocol without a pydantic model per reading: ingest's hot path.

`edge.contract.decode` validates every reading through pydantic (~30 µs each) and
`reading_line` formats it again (~30 µs): at 100k readings/s that alone is six cores. Here the
same declarations (`KINDS`, the id and tag patterns) are checked directly on the orjson-decoded
dicts, and what was already proven for a series (its sensor id, tags and escaped line-protocol
prefix) or for a minute (its epoch offset) is remembered, so a typical reading costs a few
microseconds. A message that is well formed throughout is cheaper still: `typedpath.py` takes
it whole (msgspec structs, ~1 µs per reading) and this dict path sees only the others.

The fast path is deliberately *narrower* than the contract: anything it does not recognise at
a glance (a timestamp not in the canonical `YYYY-MM-DDTHH:MM:SS.mmmZ` wire form, an integral
float in an int field, an unknown key, a bad value...) is handed to the contract's own code for
that one reading, which accepts or rejects it with the contract's exact error. So the result is
always the admission's verdict (cloud/core/admission.py: the contract, the time limits and the
sensor directory, whose check is folded into each series' cached prefix, so a series it refuses
takes the contract's code and gets its error there); `tests/cloud/test_ingest_fastpath.py`
checks that with hypothesis against `reference_decode` (`Admission.judge`, then `reading_line`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from cloud.core.admission import Admission
from cloud.ingest.typedpath import Typed, TypedDecoder
from cloud.io.influx.lineprotocol import (
    LineProtocolError,
    escape_key,
    escape_measurement,
    quote_string,
    reading_line,
)
from edge.contract import (
    KINDS,
    Envelope,
    Reading,
    RejectedReading,
    SchemaError,
    SensorKind,
    schema_error,
)
from edge.contract.batch import MAX_READINGS_PER_BATCH
from edge.contract.ids import ID_PATTERN, TAG_KEY_PATTERN, TAG_VALUE_PATTERN
from edge.contract.kinds import STRING_PATTERN, cross_field_error

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_ID_RE = re.compile(ID_PATTERN)
_TAG_KEY_RE = re.compile(TAG_KEY_PATTERN)
_TAG_VALUE_RE = re.compile(TAG_VALUE_PATTERN)
_STRING_RE = re.compile(STRING_PATTERN)
_MINUTE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})")
_READING_KEYS = frozenset({"sensor", "ts", "fields", "tags"})
_REQUIRED_KEYS = frozenset({"sensor", "ts", "fields"})
# Caches are bounded: a flood of distinct sensors or minutes must not grow memory for ever.
_MAX_CACHED = 200_000
_NO_TAGS: dict[str, Any] = {}
_MISS: Any = object()  # a cache miss, distinct from a cached None


@dataclass(slots=True)
class MessageVerdict:
    """One data message's verdict: line protocol for the good readings, rejects for the rest."""

    envelope: Envelope
    lines: list[str] = field(default_factory=list)
    sensors: list[str] = field(default_factory=list)  # per line, for InfluxDB's refusals
    rejects: list[RejectedReading] = field(default_factory=list)  # contract and policy errors, by index
    newest_us: int | None = None  # the newest accepted reading's ts, µs since the epoch
    fallbacks: int = 0  # readings the fast path handed to the contract's decoder

    @property
    def readings(self) -> int:
        return len(self.lines) + len(self.rejects)


_INT, _FLOAT, _BOOL, _STR = 0, 1, 2, 3
_CODES = {"int": _INT, "float": _FLOAT, "bool": _BOOL, "str": _STR}
# Per declared field: (escaped key with its `=`, type code, minimum, maximum, choices); a plain
# tuple, because unpacking one is the cheapest access Python has in the per-reading loop. For a
# `str` field the bounds are its length's and `choices` the values it may take (None: any).
_FieldPlan = tuple[str, int, float, float, frozenset[str] | None]


@dataclass(frozen=True, slots=True)
class _KindPlan:
    kind: SensorKind
    measurement: str
    fields: dict[str, _FieldPlan]
    required: frozenset[str]
    tags: frozenset[str]
    fixed_tags: bool  # every declared tag must be present
    order: dict[str, int]  # escaped field key -> position in the declaration
    in_order: Callable[[Any], str | bool | None]  # see _in_order_formatter


def _plans() -> dict[SensorKind, _KindPlan]:
    plans = {}
    for kind, spec in KINDS.items():
        plans[kind] = _KindPlan(
            kind=kind,
            measurement=escape_measurement(kind.value),
            fields={
                f.name: (
                    escape_key(f.name, "field key") + "=",
                    _CODES[f.type],
                    f.minimum,
                    f.maximum,
                    frozenset(f.choices) if f.choices else None,
                )
                for f in spec.fields
            },
            required=frozenset(f.name for f in spec.fields if f.required),
            # A declared tag key that broke the key pattern would fail in pydantic first: leave
            # such keys to the slow path by not knowing them here.
            tags=frozenset(t for t in spec.tags if _TAG_KEY_RE.fullmatch(t)),
            fixed_tags=spec.fixed_tags,
            order={escape_key(f.name, "field key"): i for i, f in enumerate(spec.fields)},
            in_order=_in_order_formatter(kind),
        )
    return plans


class FastDecoder:
    """Decodes data messages to line protocol; keeps caches, so one per consuming thread."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        limits = admission.limits
        self.max_bytes = admission.max_payload_bytes
        self._generation = admission.generation
        self._plans = _plans()
        self._minutes: dict[str, int | None] = {}
        self._stamps: dict[str, int | None] = {}
        # Per (org, gateway, kind): sensor, or (sensor, *tag items) -> line-protocol prefix.
        self._prefixes: dict[tuple[str, str, SensorKind], dict[Any, str | None]] = {}
        self._future_us = limits.max_future // _US
        self._age_us = limits.max_age // _US
        self._typed = TypedDecoder()
        # Per (org, gateway, kind): sensor -> (its last tags, their prefix), for the typed path.
        self._known: dict[tuple[str, str, SensorKind], dict[str, tuple[Any, str | None]]] = {}
        self.typed_messages = 0  # messages the typed path took whole (typedpath.py)

    def decode(self, payload: bytes, now: datetime) -> MessageVerdict:
        """The verdict on one data message; raises ContractError when the whole message is unusable."""
        if self.admission.generation != self._generation:
            # A gateway declared its sensors anew: the verdicts folded into the prefixes are stale.
            self._generation = self.admission.generation
            self._prefixes.clear()
            self._known.clear()
        if len(payload) <= self.max_bytes:
            typed = self._typed.decode(payload)
            message = None if typed is None else self._typed_message(typed, now)
            if message is not None:
                self.typed_messages += 1
                return message
        return self._decode_dicts(payload, now)

    def _decode_dicts(self, payload: bytes, now: datetime) -> MessageVerdict:  # noqa: PLR0912  (hot loop, inlined)
        """Reading by reading on orjson's dicts; the contract's code for what looks unusual."""
        raw = self._envelope_or_none(payload)
        if raw is None:
            return reference_decode(payload, now, self.admission)
        envelope, readings = raw
        now_us = (now - _EPOCH) // _US
        lo_us, hi_us = now_us - self._age_us, now_us + self._future_us
        plan = self._plans[envelope.kind]
        out = MessageVerdict(envelope)
        newest = -(2**63)
        ctx = (envelope.org, envelope.gateway, plan.kind)
        prefixes = _child(self._prefixes, ctx)
        stamps = self._stamps
        lines_append, sensors_append = out.lines.append, out.sensors.append
        for i, item in enumerate(readings):
            good = None
            if type(item) is dict:
                n = len(item)
                sensor, ts, fields = item.get("sensor"), item.get("ts"), item.get("fields")
                tags = item.get("tags", _NO_TAGS)
                # Exactly sensor, ts and fields, and perhaps tags: anything else is the contract's.
                if (
                    (n == 3 or (n == 4 and "tags" in item))
                    and sensor is not None
                    and fields is not None
                    and type(ts) is str
                    and type(tags) is dict
                ):
                    try:
                        key = (sensor, *tags.items()) if tags else sensor
                        prefix = prefixes.get(key, _MISS)
                        if prefix is _MISS:
                            prefix = self._prefix(plan, ctx[:2], prefixes, sensor, tags, key)
                    except TypeError:  # an unhashable sensor or tag value: not ours to judge
                        prefix = None
                    us = stamps.get(ts, _MISS)
                    if us is _MISS:
                        us = self._stamp(ts)
                    if prefix is not None and us is not None and lo_us <= us <= hi_us:
                        field_part = plan.in_order(fields)
                        if field_part is False:
                            field_part = _fields(plan, fields)
                        if field_part is not None:
                            good = f"{prefix}{field_part} {us * 1000}"
                            newest = max(newest, us)
            if good is not None:
                lines_append(good)
                sensors_append(item["sensor"])
            else:
                out.fallbacks += 1
                self._slow_one(out, i, item, envelope, now)
        if newest > -(2**63) and (out.newest_us is None or newest > out.newest_us):
            out.newest_us = newest
        return out

    def _typed_message(self, typed: Typed, now: datetime) -> MessageVerdict | None:
        """The typed path's lines when every reading passes, else None (the dict path decides)."""
        try:
            envelope = Envelope.model_validate(typed.envelope)
        except ValidationError:
            return None
        now_us = (now - _EPOCH) // _US
        plan = self._plans[typed.kind]
        ctx = (envelope.org, envelope.gateway, plan.kind)
        prefixes, known = _child(self._prefixes, ctx), _child(self._known, ctx)

        def prefix_for(sensor: str, tags: Any) -> str | None:
            # tags: a dict, or msgspec.UNSET (false, like {}) when the reading has none.
            key = (sensor, *tags.items()) if tags else sensor
            prefix: str | None = prefixes.get(key, _MISS)
            if prefix is _MISS:
                prefix = self._prefix(plan, ctx[:2], prefixes, sensor, tags or _NO_TAGS, key)
            if prefix is not None:  # the loop trusts a hit: only good prefixes are kept
                if len(known) >= _MAX_CACHED:
                    known.clear()
                known[sensor] = (tags, prefix)
            return prefix

        done = typed.lines_of(
            typed.readings,
            known,
            prefix_for,
            self._stamps,
            self._stamp,
            now_us - self._age_us,
            now_us + self._future_us,
        )
        if done is None:
            return None
        lines, sensors, newest = done
        return MessageVerdict(envelope, lines, sensors, newest_us=newest)

    def _envelope_or_none(self, payload: bytes) -> tuple[Envelope, list[Any]] | None:
        """The validated envelope and raw readings, or None when the contract must speak."""
        if len(payload) > self.max_bytes:
            return None
        try:
            raw = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        if type(raw) is not dict:
            return None
        readings = raw.pop("readings", None)
        if type(readings) is not list or not readings or len(readings) > MAX_READINGS_PER_BATCH:
            return None
        try:
            return Envelope.model_validate(raw), readings
        except ValidationError:
            return None

    def _prefix(
        self,
        plan: _KindPlan,
        ctx: tuple[str, str],
        prefixes: dict[Any, str | None],
        sensor: Any,
        tags: dict[str, Any],
        key: Any,
    ) -> str | None:
        prefix = None
        if (
            type(sensor) is str
            and _ID_RE.fullmatch(sensor)
            and all(k in plan.tags and type(v) is str and _TAG_VALUE_RE.fullmatch(v) for k, v in tags.items())
            and (not plan.fixed_tags or len(tags) == len(plan.tags))
        ):
            org, gateway = ctx
            if self.admission.sensor_error(org, gateway, sensor, plan.kind) is not None:
                # Not this series: the slow path gives the reading the admission's refusal.
                return self._cache_prefix(prefixes, key, None)
            all_tags = {**tags, "org": org, "gateway": gateway, "sensor": sensor}
            # Same formatting as lineprotocol.line: tags sorted by key.
            prefix = (
                plan.measurement
                + "".join(
                    f",{escape_key(k, 'tag key')}={escape_key(v, f'tags.{k}')}"
                    for k, v in sorted(all_tags.items())
                )
                + " "
            )
        return self._cache_prefix(prefixes, key, prefix)

    @staticmethod
    def _cache_prefix(prefixes: dict[Any, str | None], key: Any, prefix: str | None) -> str | None:
        if len(prefixes) >= _MAX_CACHED:
            prefixes.clear()
        prefixes[key] = prefix
        return prefix

    def _stamp(self, ts: str) -> int | None:
        """µs since the epoch of a canonical `YYYY-MM-DDTHH:MM:SS.mmmZ`, else None; cached."""
        us = None
        if len(ts) == 24:
            minute = self._minutes.get(ts[:16], _MISS)
            if minute is _MISS:
                minute = self._minute(ts[:16])
            if minute is not None:
                us = _ts_us(ts, minute)
        if len(self._stamps) >= _MAX_CACHED:
            self._stamps.clear()
        self._stamps[ts] = us
        return us

    def _minute(self, text: str) -> int | None:
        """µs since the epoch of a `YYYY-MM-DDTHH:MM` UTC minute, None when not plainly one."""
        minute = None
        m = _MINUTE_RE.fullmatch(text) if text.isascii() else None
        if m is not None:
            try:
                y, mo, d, h, mi = (int(g) for g in m.groups())
                dt = datetime(y, mo, d, h, mi, tzinfo=UTC)
                minute = (dt - _EPOCH) // _US
            except ValueError:
                minute = None
        if len(self._minutes) >= _MAX_CACHED:
            self._minutes.clear()
        self._minutes[text] = minute
        return minute

    def _slow_one(self, out: MessageVerdict, i: int, item: Any, envelope: Envelope, now: datetime) -> None:
        verdict = _contract_reading(i, item, envelope)
        if isinstance(verdict, RejectedReading):
            out.rejects.append(verdict)
            return
        _judge(out, i, verdict, now, self.admission)


def _child(caches: dict[Any, dict[Any, Any]], key: Any) -> dict[Any, Any]:
    """`caches[key]`, made on first use; all dropped when there are too many (bounded memory)."""
    child = caches.get(key)
    if child is None:
        if len(caches) >= _MAX_CACHED:
            caches.clear()
        child = caches[key] = {}
    return child


def _ts_us(ts: str, minute_us: int) -> int | None:
    # `:SS.mmmZ`; isascii because int() and isdigit() also take other scripts' digits.
    if ts[16] != ":" or ts[19] != "." or ts[23] != "Z" or not ts.isascii():
        return None
    sec, ms = ts[17:19], ts[20:23]
    if not (sec.isdigit() and ms.isdigit()):
        return None
    s = int(sec)
    if s > 59:  # a leap second: let the contract decide
        return None
    return minute_us + s * 1_000_000 + int(ms) * 1000


def _fields(plan: _KindPlan, fields: Any) -> str | None:  # noqa: PLR0911, PLR0912  (hot loop, inlined)
    """The field set in line protocol, or None when anything needs the contract's judgement."""
    if type(fields) is not dict or not plan.required <= fields.keys():
        return None
    parts = []
    int_in_float = False
    specs = plan.fields
    for name, value in fields.items():
        spec = specs.get(name)
        if spec is None:
            return None
        key, code, lo, hi, choices = spec
        t = type(value)
        if code == _INT:
            if t is not int or not lo <= value <= hi:
                return None
            parts.append(f"{key}{value}i")
        elif code == _FLOAT:
            if t is float:
                if not lo <= value <= hi:  # also refuses NaN
                    return None
                parts.append(f"{key}{value!r}")
            elif t is int and lo <= value <= hi:
                int_in_float = True
                parts.append(f"{key}{float(value)!r}")
            else:
                return None
        elif code == _STR:
            if t is not str or not _string_ok(value, lo, hi, choices):
                return None
            parts.append(f"{key}{quote_string(value)}")
        elif t is bool:
            parts.append(f"{key}true" if value else f"{key}false")
        else:
            return None
    # Cross-field rules are always asked: the contract may add some for any kind.
    normalised = fields
    if int_in_float:
        normalised = {k: float(v) if specs[k][1] == _FLOAT else v for k, v in fields.items()}
    if cross_field_error(plan.kind, normalised) is not None:
        return None
    # The kind's declared order, whatever the sender's (reading_line does the same).
    order = plan.order
    parts.sort(key=lambda part: order[part[: part.index("=")]])
    return ",".join(parts)


def _string_ok(value: str, lo: float, hi: float, choices: frozenset[str] | None) -> bool:
    """The contract's check of a `str` field (kinds.FieldSpec._check_str), as a predicate."""
    if choices is not None:
        return value in choices
    return lo <= len(value) <= hi and _STRING_RE.match(value) is not None


def _in_order_formatter(kind: SensorKind) -> Callable[[Any], str | bool | None]:
    """A function specialised for `kind`'s fields sent in their declared order, exact types.

    It returns the field set, None when a value needs the contract's judgement, or False when
    the fields are not in the declared form (the generic `_fields` then decides). It is built
    from the declarations with `exec` because a straight-line function with the names, bounds
    and formats inlined costs about half of the generic loop per reading, the largest single
    cost of ingest. Equivalence with the contract is what the hypothesis tests check.
    """
    spec = KINDS[kind]
    names = tuple(f.name for f in spec.fields)
    args = ", ".join(f"v{i}" for i in range(len(names)))
    body = [
        "def formatter(fields):",
        "    if type(fields) is not dict or tuple(fields) != NAMES:",
        "        return False",
        f"    {args}{',' if len(names) == 1 else ''} = fields.values()",
        "    normalised = fields",
    ]
    parts = []
    for i, f in enumerate(spec.fields):
        key = escape_key(f.name, "field key")
        v = f"v{i}"
        if f.type == "int":
            body.append(
                f"    if type({v}) is not int or not {f.minimum!r} <= {v} <= {f.maximum!r}: return None"
            )
            parts.append(f"{key}={{{v}}}i")
        elif f.type == "float":
            body += [
                f"    if type({v}) is int and {f.minimum!r} <= {v} <= {f.maximum!r}:",
                f"        {v} = float({v})",
                "        normalised = None",
                # `not lo <= v <= hi` also refuses NaN (comparisons with NaN are false).
                f"    elif type({v}) is not float or not {f.minimum!r} <= {v} <= {f.maximum!r}: return None",
            ]
            parts.append(f"{key}={{{v}!r}}")
        elif f.type == "str":
            choices = frozenset(f.choices) if f.choices else None
            body.append(
                f"    if type({v}) is not str or not STRING_OK({v}, {f.minimum!r}, {f.maximum!r}, "
                f"{choices!r}): return None"
            )
            parts.append(f"{key}={{QUOTE({v})}}")
        else:
            body.append(f"    if type({v}) is not bool: return None")
            parts.append(f"{key}={{'true' if {v} else 'false'}}")
    body += [
        "    if normalised is None:",
        f"        normalised = dict(zip(NAMES, ({args}{',' if len(names) == 1 else ''})))",
        "    if cross_field_error(KIND, normalised) is not None: return None",
        f'    return f"{",".join(parts)}"',
    ]
    namespace: dict[str, Any] = {
        "NAMES": names,
        "KIND": kind,
        "cross_field_error": cross_field_error,
        "STRING_OK": _string_ok,
        "QUOTE": quote_string,
    }
    exec("\n".join(body), namespace)  # noqa: S102  (source built above from KINDS only)
    formatter: Callable[[Any], str | bool | None] = namespace["formatter"]
    return formatter


def _contract_reading(i: int, item: Any, envelope: Envelope) -> Reading | RejectedReading:
    """One reading judged exactly as `edge.contract.decode` judges it (same checks, same order)."""
    common = {"kind": envelope.kind, "org": envelope.org, "gateway": envelope.gateway}
    sensor = item.get("sensor") if isinstance(item, dict) else None
    if not isinstance(item, dict):
        return RejectedReading(SchemaError("expected an object", field=f"readings[{i}]", value=item), i)
    if common.keys() & item.keys():
        extra = sorted(common.keys() & item.keys())[0]
        err = SchemaError("belongs to the envelope", field=f"readings[{i}].{extra}", value=item[extra])
        return RejectedReading(err, i, sensor if isinstance(sensor, str) else None)
    try:
        return Reading.model_validate({**item, **common})
    except ValidationError as exc:
        return RejectedReading(
            schema_error(exc, f"readings[{i}]"), i, sensor if isinstance(sensor, str) else None
        )


def _judge(out: MessageVerdict, i: int, r: Reading, now: datetime, admission: Admission) -> None:
    """A contract-valid reading through the rest of the admission, then line protocol."""
    err = admission.reading_error(r, now)
    if err is None:
        _line(out, i, r)
    else:
        out.rejects.append(RejectedReading(err, i, r.sensor))


def _line(out: MessageVerdict, i: int, r: Reading) -> None:
    """An admitted reading's line; one that line protocol cannot hold is refused, named."""
    try:
        out.lines.append(reading_line(r))
    except LineProtocolError as lp:
        out.rejects.append(RejectedReading(SchemaError(str(lp), field=lp.field, value=lp.value), i, r.sensor))
        return
    out.sensors.append(r.sensor)
    us = (r.ts - _EPOCH) // _US
    if out.newest_us is None or us > out.newest_us:
        out.newest_us = us


def reference_decode(payload: bytes, now: datetime, admission: Admission) -> MessageVerdict:
    """The slow path: the admission's verdict (`Admission.judge`), then `reading_line`."""
    judged = admission.judge(payload, now)
    out = MessageVerdict(judged.envelope)
    for i, verdict in enumerate(judged.verdicts):
        if isinstance(verdict, RejectedReading):
            out.rejects.append(verdict)
        else:
            _line(out, i, verdict)
    out.fallbacks = len(judged.verdicts)
    return out


__all__ = ["FastDecoder", "MessageVerdict", "reference_decode"]
