"""The canonical reading: one measurement of one sensor at one instant, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Self

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, field_validator, model_validator

from edge.contract.errors import SchemaError
from edge.contract.ids import Id, TagKey, TagValue
from edge.contract.kinds import KINDS, KindSpec, SensorKind, cross_field_error

FieldValue = float | int | bool | str

# InfluxDB keeps one point per series and timestamp: two readings with the same SeriesKey
# and ts collapse into one, which is what makes at-least-once delivery look exactly-once.
SeriesKey = tuple[str, ...]


def to_utc_ms(ts: datetime) -> datetime:
    """Aware UTC, truncated to the millisecond that the wire carries, so round trips are exact."""
    try:
        ts = ts.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00+01:00 parses but has no UTC form; pydantic lets OverflowError escape
        # validators, so turn it into the ValueError it reports with the field path.
        raise ValueError(f"{ts.isoformat()} has no UTC equivalent in years 1..9999") from None
    return ts.replace(microsecond=ts.microsecond - ts.microsecond % 1000)


def _not_a_number(value: Any) -> Any:
    # pydantic would read a bare number as Unix seconds; the wire carries RFC 3339 strings only.
    if isinstance(value, int | float):
        raise ValueError("expected an RFC 3339 timestamp string, e.g. 2026-11-24T08:00:00.000Z")
    return value


WireTimestamp = Annotated[AwareDatetime, BeforeValidator(_not_a_number)]


def _check_tags(spec: KindSpec, tags: dict[str, str]) -> None:
    for key, tag_value in tags.items():
        if key not in spec.tags:
            raise SchemaError(
                f"unknown tag for kind {spec.kind.value}; known: {', '.join(spec.tags) or 'none'}",
                field=f"tags.{key}",
                value=tag_value,
            )
    if spec.fixed_tags:
        for key in spec.tags:
            if key not in tags:
                raise SchemaError("required tag missing", field=f"tags.{key}", value=None)


class Reading(BaseModel):
    """One reading. `fields` are checked against the kind's declared fields and normalised
    to their declared types (an int field is an int, a float field a float)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    kind: SensorKind
    org: Id
    gateway: Id
    sensor: Id
    ts: WireTimestamp
    fields: dict[str, Any]
    tags: dict[TagKey, TagValue] = {}

    @field_validator("ts")
    @classmethod
    def _utc_ms(cls, ts: datetime) -> datetime:
        return to_utc_ms(ts)

    @model_validator(mode="after")
    def _check_fields(self) -> Self:
        spec = KINDS[self.kind]
        normalised: dict[str, FieldValue] = {}
        for name, value in self.fields.items():
            fspec = spec.by_name.get(name)
            if fspec is None:
                raise SchemaError(
                    f"unknown field for kind {self.kind.value}; known: {', '.join(spec.by_name)}",
                    field=f"fields.{name}",
                    value=value,
                )
            why = fspec.check(value)
            if why is not None:
                raise SchemaError(why, field=f"fields.{name}", value=value)
            if fspec.type == "int":
                normalised[name] = int(value)
            elif fspec.type == "float":
                normalised[name] = float(value)
            else:
                normalised[name] = value
        for fspec in spec.fields:
            if fspec.required and fspec.name not in normalised:
                raise SchemaError("required field missing", field=f"fields.{fspec.name}", value=None)
        crossed = cross_field_error(self.kind, normalised)
        if crossed is not None:
            raise SchemaError(crossed[1], field=f"fields.{crossed[0]}", value=normalised[crossed[0]])
        _check_tags(spec, self.tags)
        # Frozen model: the normalised dict replaces the raw one once, here.
        object.__setattr__(self, "fields", normalised)
        return self

    @property
    def series_key(self) -> SeriesKey:
        tags = tuple(f"{k}={v}" for k, v in sorted(self.tags.items()))
        return (self.kind.value, self.org, self.gateway, self.sensor, *tags)
