"""CSV import of the utilities' existing spreadsheets, through a column mapping.

A mapping names, for each registry field, the spreadsheet column that holds it
(`{"title": "Descrizione lavori", "street": "Via", "planned_start": "Inizio", ...}`).
Geometry comes from a `geometry` column (GeoJSON or WKT) or from `lat` and `lon` columns
(a point). Dates may be ISO 8601 or day-first Italian (`24/11/2026`, `24/11/2026 08:30`);
without an offset they are Prato's local time (Europe/Rome). Constant values for a whole
file go in `defaults` (e.g. `work_type: water`). The import is all or nothing: any bad row
refuses the file, each problem named by row, field and column.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import shapely
from pydantic import ValidationError

from cloud.core.errors import FieldProblem, problems_from
from cloud.core.geo import to_geojson
from cloud.worksites.models import InvalidWorksiteError, WorksiteCreate

LOCAL_TZ = ZoneInfo("Europe/Rome")
DATE_FIELDS = ("planned_start", "planned_end", "actual_start", "actual_end")
IMPACT_FIELDS = ("road_closed", "lanes_closed", "detour", "parking_spaces_removed", "bus_lines", "bus_stops")
SIMPLE_FIELDS = ("id", "owner", "title", "description", "street", "work_type", "permit_ref", "status")
KNOWN = (*SIMPLE_FIELDS, *DATE_FIELDS, *IMPACT_FIELDS, "geometry", "lat", "lon", "restrictions")
_DAY_FIRST = ("%d/%m/%Y %H:%M", "%d/%m/%Y", "%d-%m-%Y %H:%M", "%d-%m-%Y", "%d.%m.%Y")
_TRUE = {"1", "true", "yes", "si", "sì", "y", "x"}
_FALSE = {"", "0", "false", "no", "n"}


class MappingError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    columns: Mapping[str, str]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    delimiter: str = ","

    def __post_init__(self) -> None:
        unknown = sorted(set(self.columns) - set(KNOWN)) + sorted(set(self.defaults) - set(KNOWN))
        if unknown:
            raise MappingError(
                f"unknown field(s) in mapping: {', '.join(unknown)}; known: {', '.join(KNOWN)}"
            )
        if "geometry" not in self.columns and not {"lat", "lon"} <= set(self.columns):
            raise MappingError("the mapping needs a `geometry` column or both `lat` and `lon` columns")

    @classmethod
    def from_obj(cls, obj: Any) -> ColumnMapping:
        if not isinstance(obj, dict) or not isinstance(obj.get("columns"), dict):
            raise MappingError('a mapping is {"columns": {field: column, ...}, "defaults": {...}}')
        return cls(
            columns={str(k): str(v) for k, v in obj["columns"].items()},
            defaults=dict(obj.get("defaults") or {}),
            delimiter=str(obj.get("delimiter", ",")),
        )


def parse_local_datetime(text: str) -> datetime:
    text = text.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        for fmt in _DAY_FIRST:
            try:
                parsed = datetime.strptime(text, fmt)  # noqa: DTZ007  (local time, zone added below)
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"not a date (ISO 8601 or dd/mm/yyyy [HH:MM]): {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=LOCAL_TZ)


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"not a yes/no value: {text!r}")


def _geometry(text: str) -> dict[str, Any]:
    text = text.strip()
    if text.startswith("{"):
        value: dict[str, Any] = orjson.loads(text)
        return value
    try:
        return to_geojson(shapely.from_wkt(text))
    except shapely.errors.ShapelyError:
        raise ValueError(f"neither GeoJSON nor WKT: {text[:80]!r}") from None


def _convert(name: str, text: str, data: dict[str, Any], impact: dict[str, Any]) -> None:
    """Put one cell, converted, into the worksite's `data` or its `impact`."""
    if name in DATE_FIELDS:
        data[name] = parse_local_datetime(text)
    elif name == "geometry":
        data["geometry"] = _geometry(text)
    elif name == "road_closed":
        impact[name] = _bool(text)
    elif name in ("lanes_closed", "parking_spaces_removed"):
        impact[name] = int(text)
    elif name in ("bus_lines", "bus_stops", "restrictions"):
        impact[name] = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    elif name == "detour":
        impact[name] = text
    else:
        data[name] = text


def _row(values: dict[str, str], mapping: ColumnMapping) -> dict[str, Any]:
    data: dict[str, Any] = dict(mapping.defaults)
    impact: dict[str, Any] = dict(data.pop("impact", {}) or {})
    for name in IMPACT_FIELDS:
        if name in data:
            impact[name] = data.pop(name)
    raw = {name: values.get(column, "") for name, column in mapping.columns.items()}
    for name, cell in raw.items():
        text = cell.strip()
        if name in ("lat", "lon") or (text == "" and name != "road_closed"):
            continue
        try:
            _convert(name, text, data, impact)
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise InvalidWorksiteError([FieldProblem(name, str(exc), text[:200])]) from None
    if "lat" in raw and "lon" in raw:
        try:
            data["geometry"] = {"type": "Point", "coordinates": [float(raw["lon"]), float(raw["lat"])]}
        except ValueError:
            raise InvalidWorksiteError(
                [FieldProblem("geometry", "lat/lon must be numbers", f"{raw['lat']},{raw['lon']}")]
            ) from None
    data["impact"] = impact
    return data


def read_csv(text: str, mapping: ColumnMapping) -> list[WorksiteCreate]:
    reader = csv.DictReader(io.StringIO(text), delimiter=mapping.delimiter)
    header = reader.fieldnames or []
    missing = sorted({c for c in mapping.columns.values() if c not in header})
    if missing:
        raise InvalidWorksiteError(
            [
                FieldProblem(
                    "header", f"column(s) not in the file: {', '.join(missing)}; it has: {', '.join(header)}"
                )
            ]
        )
    column_of = {
        **dict(mapping.columns.items()),
        "geometry": mapping.columns.get("geometry", "lat/lon"),
    }
    out: list[WorksiteCreate] = []
    problems: list[FieldProblem] = []
    for number, values in enumerate(reader, start=2):  # row 1 is the header
        prefix = f"row {number}: "
        try:
            out.append(WorksiteCreate.model_validate(_row(values, mapping)))
        except InvalidWorksiteError as exc:
            problems += [FieldProblem(prefix + p.field, p.message, p.value) for p in exc.problems]
        except ValidationError as exc:
            for p in problems_from(exc):
                top = p.field.split(".")[0]
                where = f" (column {column_of[top]!r})" if top in column_of else ""
                problems.append(FieldProblem(prefix + p.field + where, p.message, p.value))
    if problems:
        raise InvalidWorksiteError(problems)
    return out
