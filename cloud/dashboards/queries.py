"""Grafana dashboard JSON as Grafana sees it: its panels, its InfluxQL queries, and their expansion.

`expand()` does what Grafana's InfluxDB data source does to a raw query before sending it, so
a test can run the very text of a panel against a real influxd:

    >>> expand('SELECT mean("x") FROM "m" WHERE $timeFilter AND "org" =~ /^$org$/ '
    ...        'GROUP BY time($__interval)', variables={"org": ".*"})
    'SELECT mean("x") FROM "m" WHERE time >= now() - 6h AND "org" =~ /^.*$/ GROUP BY time(1m)'

Variable values follow Grafana's rules: a string is inserted as it is (that is what a custom
"All" value such as `.*` does), a sequence of values is regex-escaped and joined as `(a|b)`
(Grafana's InfluxDB data source formats multi-value variables that way inside `/.../`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

# `$name`, `${name}`, `${name:format}`, `${name.path}` and the deprecated `[[name]]`.
_VARIABLE = re.compile(
    r"\$(?P<plain>\w+)|\$\{(?P<braced>\w+)(?:[.:][^}]*)?\}|\[\[(?P<old>\w+)(?::[^\]]*)?\]\]"
)

# Variables Grafana defines itself (Grafana docs, "Global variables") and the InfluxQL data
# source's own `$timeFilter`; `__all` is the marker a multi-value variable stores for "All", and
# `__data`/`__field`/`__series`/`__value` are data-link variables.
GRAFANA_BUILTINS = frozenset(
    {
        "timeFilter",
        "__interval",
        "__interval_ms",
        "__rate_interval",
        "__rate_interval_ms",
        "__range",
        "__range_s",
        "__range_ms",
        "__from",
        "__to",
        "__timezone",
        "__dashboard",
        "__org",
        "__user",
        "__name",
        "__all_variables",
        "__url_time_range",
        "__all",
        "__data",
        "__field",
        "__series",
        "__value",
    }
)

# Only in a target's `alias`: the InfluxDB data source's naming patterns (`$tag_<key>`, `$col`,
# `$m`/`$measurement`, `$1`... for regex groups of the measurement name).
_ALIAS_PATTERN = re.compile(r"tag_\w+|col|m|measurement|\d")

# Grafana's escapeRegex(): the characters it backslash-escapes in a value put into a regex.
_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|{}\[\]/]")

_DURATION_UNITS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))

# Grafana's roundInterval (public/app/core/utils/kbn.ts): the raw interval range/maxDataPoints
# is rounded to the first "nice" step whose upper bound it is below. (bound ms, step)
_ROUND_INTERVAL = (
    (1_500, "1s"), (3_500, "2s"), (7_500, "5s"), (12_500, "10s"), (17_500, "15s"), (25_000, "20s"),
    (45_000, "30s"), (90_000, "1m"), (210_000, "2m"), (450_000, "5m"), (750_000, "10m"),
    (1_050_000, "15m"), (1_500_000, "20m"), (2_700_000, "30m"), (5_400_000, "1h"), (9_000_000, "2h"),
    (16_200_000, "3h"), (24_300_000, "6h"), (64_800_000, "12h"), (129_600_000, "1d"),
)  # fmt: skip
DEFAULT_MAX_DATA_POINTS = 1000  # about the pixel width of a wide panel on a control-room screen


def grafana_interval(
    range_s: int, max_data_points: int = DEFAULT_MAX_DATA_POINTS, min_interval: str = ""
) -> str:
    """The `$__interval` Grafana computes for a panel: range / max data points, rounded up to a
    nice step, and never under the panel's (or data source's) minimum interval."""
    raw_ms = range_s * 1000 / max(max_data_points, 1)
    if min_interval:
        raw_ms = max(raw_ms, seconds(min_interval.removeprefix(">")) * 1000)
    for bound_ms, step in _ROUND_INTERVAL:
        if raw_ms < bound_ms:
            return step
    return "7d"


class UndefinedVariableError(KeyError):
    """A query uses a variable that is neither given nor a Grafana built-in."""

    def __init__(self, name: str, query: str) -> None:
        self.name = name
        self.query = query
        super().__init__(f"${name} is not defined (query: {query})")


def variable_names(text: str) -> set[str]:
    """Every variable name used in `text`, in any of Grafana's three syntaxes."""
    return {m.group("plain") or m.group("braced") or m.group("old") for m in _VARIABLE.finditer(text)}


def is_alias_pattern(name: str) -> bool:
    """True for the InfluxDB data source's alias patterns, which are not variables."""
    return _ALIAS_PATTERN.fullmatch(name) is not None


def duration(seconds: int) -> str:
    """InfluxQL duration literal in the largest whole unit: 21600 -> `6h`, 90 -> `90s`."""
    for unit, size in _DURATION_UNITS:
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable: every integer is a whole number of seconds")


def seconds(text: str) -> int:
    """Seconds in a duration such as 10s, 1m, 1h or 1d."""
    match = re.fullmatch(r"(\d+)([smhd])", text)
    if match is None:
        raise ValueError(f"interval must look like 10s, 1m, 1h or 1d: {text!r}")
    return int(match.group(1)) * dict(_DURATION_UNITS)[match.group(2)]


def _format_value(value: str | Sequence[str]) -> str:
    if isinstance(value, str):
        return value
    return "(" + "|".join(_REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), v) for v in value) + ")"


def expand(
    query: str,
    *,
    range_s: int = 6 * 3600,
    interval: str = "1m",
    variables: Mapping[str, str | Sequence[str]],
    now_ms: int | None = None,
) -> str:
    """The InfluxQL Grafana sends for `query` over the last `range_s` seconds, ending now
    (`now_ms`, default the clock's: only `${__from}` and `${__to}` show it).

    Raises UndefinedVariableError for a variable that is neither in `variables` nor built in,
    so a panel that refers to a variable nobody defined fails its test instead of reaching
    InfluxDB as a literal `$name`.
    """
    interval_s = seconds(interval)
    to_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    builtins = {
        # Epoch milliseconds, Grafana's default format for both.
        "__from": str(to_ms - range_s * 1000),
        "__to": str(to_ms),
        # Grafana's form for a relative range that ends now (InfluxDatasource.getTimeFilter).
        "timeFilter": f"time >= now() - {duration(range_s)}",
        "__interval": interval,
        "__interval_ms": str(interval_s * 1000),
        "__rate_interval": interval,
        "__rate_interval_ms": str(interval_s * 1000),
        "__range": duration(range_s),
        "__range_s": str(range_s),
        "__range_ms": str(range_s * 1000),
    }

    def substitute(match: re.Match[str]) -> str:
        name = match.group("plain") or match.group("braced") or match.group("old")
        if name in variables:
            return _format_value(variables[name])
        if name in builtins:
            return builtins[name]
        raise UndefinedVariableError(name, query)

    return _VARIABLE.sub(substitute, query)


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows; rows themselves are skipped."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def template_variables(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(dashboard.get("templating", {}).get("list", []))


def datasource_uid(ref: object) -> str | None:
    """The uid in a datasource reference (`{"type": ..., "uid": ...}`), None for the old
    by-name string form or a missing reference."""
    if isinstance(ref, Mapping):
        uid = ref.get("uid")
        return uid if isinstance(uid, str) else None
    return None
