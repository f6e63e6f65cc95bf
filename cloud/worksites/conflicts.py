"""Coordination: worksites that should share one excavation, or should not be dug at all.

Two worksites are *on the same street segment* when their geometries come within `buffer_m`
of each other (in metres, local projection). For such a pair:

- **conflict** — two organisations, both not finished, time windows overlap: the street is
  opened twice at once; plan one excavation together;
- **synergy** — two organisations, both not finished, windows apart by at most
  `synergy_gap_days`: dig once, lay both;
- **redig** — the earlier worksite is completed (street closed and resurfaced) and the later
  one starts within `redig_days` of its end: a street reopened recently being dug again
  (any owners, the same one included).

Cancelled worksites take part in nothing. Candidate pairs come from a shapely STRtree
`dwithin` query, so the cost follows the number of near pairs, not all n² pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
import orjson
import shapely
from shapely import STRtree

from cloud.core.alerts import Alert, Severity
from cloud.core.geo import BBox
from cloud.core.metres import LocalProjection
from cloud.worksites.models import Status, Worksite


class Finding(StrEnum):
    CONFLICT = "conflict"
    SYNERGY = "synergy"
    REDIG = "redig"


_ORDER = {f: i for i, f in enumerate(Finding)}

SEVERITY: dict[Finding, Severity] = {
    Finding.CONFLICT: "warning",
    Finding.SYNERGY: "info",
    Finding.REDIG: "warning",
}


@dataclass(frozen=True, slots=True)
class CoordinationSettings:
    buffer_m: float = 25.0
    synergy_gap_days: float = 90.0
    redig_days: float = 365.0

    def __post_init__(self) -> None:
        if self.buffer_m < 0 or self.synergy_gap_days < 0 or self.redig_days < 0:
            raise ValueError(f"coordination settings must not be negative: {self}")


@dataclass(frozen=True, slots=True)
class Coordination:
    """One finding about a pair; `first` starts no later than `second`."""

    finding: Finding
    first: str
    second: str
    first_owner: str
    second_owner: str
    streets: tuple[str, str]
    distance_m: float
    gap_days: float  # negative: days of overlap

    @property
    def id(self) -> str:
        return f"{self.first}--{self.second}"

    @property
    def message(self) -> str:
        where = self.streets[0] if self.streets[0] == self.streets[1] else " / ".join(self.streets)
        if self.finding is Finding.CONFLICT:
            return (
                f"{self.first_owner} and {self.second_owner} dig {where} at the same time "
                f"({-self.gap_days:.0f} days overlap, {self.distance_m:.0f} m apart): plan one excavation"
            )
        if self.finding is Finding.SYNERGY:
            return (
                f"{self.first_owner} and {self.second_owner} dig {where} {self.gap_days:.0f} days apart "
                f"({self.distance_m:.0f} m): share one excavation"
            )
        return (
            f"{where} reopened by {self.first_owner} {self.gap_days:.0f} days before "
            f"{self.second_owner} digs it again ({self.distance_m:.0f} m)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "finding": self.finding.value,
            "first": self.first,
            "second": self.second,
            "first_owner": self.first_owner,
            "second_owner": self.second_owner,
            "streets": list(self.streets),
            "distance_m": round(self.distance_m, 1),
            "gap_days": round(self.gap_days, 2),
            "message": self.message,
        }


def _classify(a: Worksite, b: Worksite, gap_days: float, s: CoordinationSettings) -> Finding | None:
    if a.status is Status.COMPLETED:
        if b.status is not Status.COMPLETED and 0 <= gap_days <= s.redig_days:
            return Finding.REDIG
        return None
    if b.status is Status.COMPLETED or a.owner == b.owner:
        return None
    if gap_days < 0:
        return Finding.CONFLICT
    if gap_days <= s.synergy_gap_days:
        return Finding.SYNERGY
    return None


def detect(
    sites: Sequence[Worksite],
    settings: CoordinationSettings | None = None,
    *,
    projection: LocalProjection | None = None,
) -> list[Coordination]:
    """Every conflict, synergy and redig among `sites`, sorted by finding then ids; distances in
    `projection`'s metres (the registry's, around its areas; None: around the worksites)."""
    s = settings or CoordinationSettings()
    live = [w for w in sites if w.status is not Status.CANCELLED]
    if len(live) < 2:
        return []
    # One vectorised GEOS parse instead of a Python shape() per worksite.
    degrees = shapely.from_geojson([orjson.dumps(w.geometry) for w in live])
    if projection is None:
        b = shapely.bounds(degrees)
        projection = LocalProjection.around(
            BBox(float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max()))
        )
    geoms = projection.many_to_metres(list(degrees))
    tree = STRtree(geoms)
    pairs = tree.query(geoms, predicate="dwithin", distance=s.buffer_m)
    left, right = pairs[0], pairs[1]
    keep = left < right
    left, right = left[keep], right[keep]
    if left.size == 0:
        return []
    starts = np.array([w.start.timestamp() for w in live])
    ends = np.array([w.end.timestamp() for w in live])
    # Drop, vectorised, the pairs too far apart in time to be any finding.
    gap_s = np.maximum(starts[left], starts[right]) - np.minimum(ends[left], ends[right])
    near_in_time = gap_s <= max(s.synergy_gap_days, s.redig_days) * 86400.0
    left, right = left[near_in_time], right[near_in_time]
    distances = shapely.distance(geoms[left], geoms[right])
    out: list[Coordination] = []
    for i, j, dist in zip(left.tolist(), right.tolist(), distances.tolist(), strict=True):
        a, b = (i, j) if (starts[i], live[i].id) <= (starts[j], live[j].id) else (j, i)
        gap_days = float(starts[b] - ends[a]) / 86400.0
        if gap_days < 0:
            # Overlap length, reported as a negative gap.
            gap_days = -float(min(ends[a], ends[b]) - starts[b]) / 86400.0
        wa, wb = live[a], live[b]
        finding = _classify(wa, wb, gap_days, s)
        if finding is None:
            continue
        out.append(
            Coordination(
                finding=finding,
                first=wa.id,
                second=wb.id,
                first_owner=wa.owner,
                second_owner=wb.owner,
                streets=(wa.street, wb.street),
                distance_m=float(dist),
                gap_days=gap_days,
            )
        )
    out.sort(key=lambda c: (_ORDER[c.finding], c.first, c.second))
    return out


def involving(findings: Sequence[Coordination], worksite_id: str) -> list[Coordination]:
    return [c for c in findings if worksite_id in (c.first, c.second)]


def to_alerts(findings: Sequence[Coordination], now: datetime) -> list[Alert]:
    """One firing alert per finding for each organisation involved (rule `worksite-{finding}`)."""
    alerts: list[Alert] = []
    for c in findings:
        for org in dict.fromkeys((c.first_owner, c.second_owner)):
            alerts.append(
                Alert(
                    rule=f"worksite-{c.finding.value}",
                    org=org,
                    entity=c.id,
                    gateway="registry",
                    kind="worksite",
                    severity=SEVERITY[c.finding],
                    state="firing",
                    since=now,
                    ts=now,
                    message=c.message,
                    value=round(c.gap_days, 2),
                    threshold=None,
                )
            )
    return alerts
