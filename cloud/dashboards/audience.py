"""The dashboards as one organisation sees them: its data where the data policy keeps it.

The committed dashboards read one database (the shared one, `sitroom`). With a data policy
(decision 0017) a private measurement lives in each organisation's own database, so `render`
rewrites each query for an audience: a private measurement is read from the databases that
organisation may read — its own, or every organisation's for a municipality — as InfluxQL's
fully qualified sources (`FROM "sitroom_alia"."$rp"."fleet", "sitroom_at"."$rp"."fleet"`: one
query over several databases, each checked against the reader's grants); a `SHOW TAG VALUES`
over a private measurement becomes the equivalent SELECT over those sources; maps open on the
organisation's areas, and times show in its home area's time zone. Shared measurements stay as
they are: the data source's database is the shared one.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cloud.io.influx.policy import DataPolicy
from cloud.io.influx.schema import measurements

# A source not qualified with a database: `"m"` or `"rp"."m"` (not followed by another part).
_SOURCE = re.compile(r'\bFROM\s+(?:"(?P<rp>[^"]*)"\.)?"(?P<m>[A-Za-z0-9_]+)"(?!\.)')
_SHOW_TAG_VALUES = re.compile(
    r'^SHOW TAG VALUES FROM "(?P<m>[A-Za-z0-9_]+)" WITH KEY = "(?P<key>[A-Za-z0-9_]+)"'
    r"(?: WHERE (?P<where>.+))?$"
)


@dataclass(frozen=True, slots=True)
class Audience:
    org: str
    is_municipality: bool
    view: dict[str, float]  # the maps' centre and zoom: its areas
    timezone: str  # its home area's


def readable_orgs(policy: DataPolicy, audience: Audience, orgs: Sequence[str]) -> list[str]:
    """The organisations whose private databases the audience reads."""
    return sorted(set(orgs)) if audience.is_municipality else [audience.org]


def rewrite_query(query: str, policy: DataPolicy, readable: Sequence[str]) -> str:
    """`query` reading each private measurement from the private databases of `readable`."""
    shown = _SHOW_TAG_VALUES.match(query.strip())
    if shown and policy.is_private(shown["m"]):
        # SHOW TAG VALUES reads one database's index; a SELECT of the tag and a count reads
        # several, and Grafana takes a query variable's values from its second column.
        declared = measurements()[shown["m"]]
        counted = declared.fields[0].name
        condition = f" AND {shown['where']}" if shown["where"] else ""
        key = shown["key"]
        return (
            f'SELECT "{key}", "n" FROM (SELECT count("{counted}") AS "n" '  # noqa: S608  (our own names)
            f'FROM {policy.sources(shown["m"], readable)} WHERE $timeFilter{condition} GROUP BY "{key}")'
        )

    def source(match: re.Match[str]) -> str:
        if not policy.is_private(match["m"]):
            return match.group(0)
        return "FROM " + policy.sources(match["m"], readable, match["rp"] or "")

    return _SOURCE.sub(source, query)


def render(
    dashboard: dict[str, Any], policy: DataPolicy, audience: Audience, orgs: Sequence[str]
) -> dict[str, Any]:
    """A copy of `dashboard` for `audience`; `orgs` are every organisation (a municipality's
    panels read all their private databases)."""
    readable = readable_orgs(policy, audience, orgs)
    out = copy.deepcopy(dashboard)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("query", "definition") and isinstance(value, str):
                    node[key] = rewrite_query(value, policy, readable)
                elif key == "view" and isinstance(value, dict) and "lat" in value:
                    node[key] = {**value, **audience.view}
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(out)
    out["timezone"] = audience.timezone
    return out


__all__ = ["Audience", "readable_orgs", "render", "rewrite_query"]
