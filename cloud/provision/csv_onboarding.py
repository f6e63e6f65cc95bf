"""Bulk onboarding: one CSV row per gateway, all rows checked before any is applied.

Columns (header row required; order free; only `id` and `org` mandatory):

    id,org,name,lat,lon,location,from,sensors,auth

`from` is a gateway config draft (path relative to the CSV) whose sensors and settings are
kept; `sensors` lists sensors as `driver=...,id=...` specs separated by `;`; `auth` is
`password` (default), `cert` or `both`. A bad row is reported as `FILE:LINE: column: problem`
and nothing at all is onboarded, so a half-applied sheet never needs untangling.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud.provision.identities import Outcome, add_gateway
from cloud.provision.registry import AuthMethod, IdentityRegistry
from cloud.provision.specs import SpecError, load_base_config, parse_sensor
from edge.contract import is_id
from edge.contract.areas import Areas, OutsideAreasError, load_areas
from edge.contract.ids import RESERVED_ORGS

COLUMNS = ("id", "org", "name", "lat", "lon", "location", "from", "sensors", "auth")


class CsvError(ValueError):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(slots=True)
class GatewayRow:
    line: int
    gateway: str
    org: str
    name: str = ""
    auth: AuthMethod = AuthMethod.PASSWORD
    location: dict[str, Any] | None = None
    base: dict[str, Any] | None = None
    sensors: list[dict[str, Any]] = field(default_factory=list)


def _float(text: str, low: float, high: float) -> float:
    value = float(text)
    if not low <= value <= high:
        raise ValueError(f"outside [{low:g}, {high:g}]")
    return value


def read_rows(path: Path) -> list[GatewayRow]:  # noqa: PLR0912, PLR0915 (one check per column, in order)
    """Parse and check every row; raise CsvError listing every problem with its line."""
    problems: list[str] = []
    rows: list[GatewayRow] = []
    src = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a sheet saved by Excel starts with a BOM
    except OSError as exc:
        raise CsvError(src, [f"{src}: cannot read: {exc}"]) from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in reader.fieldnames or []]
    unknown = [h for h in header if h not in COLUMNS]
    if unknown or "id" not in header or "org" not in header:
        raise CsvError(
            src,
            [
                f"{src}:1: header: needs id and org, may have {', '.join(COLUMNS)};"
                f" unknown: {', '.join(unknown)}"
            ],
        )
    seen: dict[str, int] = {}
    for raw in reader:
        line = reader.line_num
        cell = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(cell.values()):
            continue

        def bad(column: str, message: str, value: str, line: int = line) -> None:
            problems.append(f"{src}:{line}: {column}: {message}: {value!r}")

        row = GatewayRow(
            line=line, gateway=cell.get("id", ""), org=cell.get("org", ""), name=cell.get("name", "")
        )
        if not is_id(row.gateway):
            bad("id", "must match [a-z0-9][a-z0-9-]{0,62}", row.gateway)
        elif row.gateway in seen:
            bad("id", f"already on line {seen[row.gateway]}", row.gateway)
        else:
            seen[row.gateway] = line
        if not is_id(row.org) or row.org in RESERVED_ORGS:
            bad("org", "must match [a-z0-9][a-z0-9-]{0,62} and not be reserved", row.org)
        try:
            row.auth = AuthMethod(cell.get("auth") or "password")
        except ValueError:
            bad("auth", "is not password, cert or both", cell.get("auth", ""))
        if cell.get("lat") or cell.get("lon"):
            try:
                row.location = {
                    "lat": _float(cell.get("lat", ""), -90, 90),
                    "lon": _float(cell.get("lon", ""), -180, 180),
                }
            except ValueError as exc:
                bad("lat/lon", f"not a coordinate pair ({exc})", f"{cell.get('lat')},{cell.get('lon')}")
            if row.location is not None and cell.get("location"):
                row.location["description"] = cell["location"]
        cell_failed = False
        if cell.get("from"):
            try:
                row.base = load_base_config(path.parent / cell["from"])
            except SpecError as exc:
                cell_failed = True
                bad("from", str(exc), cell["from"])
        for spec in filter(None, (s.strip() for s in cell.get("sensors", "").split(";"))):
            try:
                row.sensors.append(parse_sensor(spec))
            except SpecError as exc:
                cell_failed = True  # one problem per cell: no "needs a sensor" on top of this one
                bad("sensors", str(exc), spec)
        if not row.sensors and not (row.base or {}).get("sensors") and not cell_failed:
            bad("sensors", "a gateway needs at least one sensor (sensors or from)", cell.get("sensors", ""))
        rows.append(row)
    if problems:
        raise CsvError(src, problems)
    return rows


def onboard(
    reg: IdentityRegistry, path: Path, *, broker_url: str | None = None, areas: Areas | None = None
) -> list[Outcome]:
    """Onboard every row of the CSV into `reg` (call inside `reg.transaction()`); each location
    must lie in one of `areas` (None: the default areas, Prato)."""
    rows = read_rows(path)
    areas = areas or load_areas()
    problems = []
    for row in rows:
        existing = reg.get(row.gateway)
        if existing is not None and existing.org != row.org:
            problems.append(
                f"{path}:{row.line}: id: already registered for org {existing.org!r}: {row.gateway!r}"
            )
        if row.location is not None:
            try:
                areas.require(float(row.location["lat"]), float(row.location["lon"]))
            except OutsideAreasError as exc:
                problems.append(f"{path}:{row.line}: lat,lon: {exc}")
    if problems:
        raise CsvError(str(path), problems)
    return [
        add_gateway(
            reg,
            gateway=row.gateway,
            org=row.org,
            name=row.name,
            auth=row.auth,
            base=row.base,
            sensors=row.sensors,
            location=row.location,
            broker_url=broker_url,
            areas=areas,
        )
        for row in rows
    ]
