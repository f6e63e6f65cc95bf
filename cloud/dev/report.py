"""A picture of a run: what a person would rather look at than read in a summary JSON.

Four panels from what InfluxDB holds: car-park occupancy with the alerts raised on it, traffic
flow per counter, the fleet's tracks and the buses' last positions on the map of Prato, and
readings stored per gateway (and per feed reader).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")  # no display on servers and CI; select before pyplot is imported

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from cloud.io.influx.client import InfluxClient, InfluxError

# Colour-blind-safe (Okabe-Ito) palette, so lines stay apart for every operator.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
CITY_BOX = (43.84, 11.04, 43.92, 11.16)  # south, west, north, east


def _series(influx: InfluxClient, q: str) -> list[dict[str, Any]]:
    try:
        return influx.series(q)
    except InfluxError:
        return []


def _times(values: list[list[Any]]) -> list[datetime]:
    return [datetime.fromtimestamp(v[0] / 1000, UTC) for v in values]


def _buses(influx: InfluxClient, ax: Any, first_colour: int) -> dict[str, str]:
    """The buses of the operator's GTFS-Realtime feed where each was last, by line; the colours."""
    routes: dict[str, str] = {}
    q = (
        'SELECT last("lat"), "lon" FROM "transit_vehicle" WHERE "route" != \'none\' '
        'GROUP BY "route", "sensor"'
    )
    for s in _series(influx, q):
        colour = routes.setdefault(s["tags"]["route"], PALETTE[(first_colour + len(routes)) % 8])
        _t, lat, lon = s["values"][-1]
        ax.plot(lon, lat, "s", color=colour, ms=5, alpha=0.8)
    for route, colour in routes.items():
        ax.plot([], [], "s", color=colour, ms=5, label=f"bus {route} (GTFS-RT)")
    return routes


def render(influx: InfluxClient, path: Path, summary: dict[str, Any]) -> Path:
    fig, axes = plt.subplots(2, 2, figsize=(15, 9.5), layout="constrained")
    (ax_park, ax_map), (ax_traffic, ax_gw) = axes
    fig.suptitle(
        f"Situation Room — Prato demo: {summary.get('readings_stored', 0):,} readings stored of "
        f"{summary.get('readings_published', 0):,} published, {summary.get('alerts_raised', 0)} alerts, "
        f"{summary.get('dead_letters', 0)} dead letters",
        fontsize=14,
    )

    for i, s in enumerate(_series(influx, 'SELECT "occupancy_pct" FROM "parking" GROUP BY "sensor"')):
        vals = s["values"]
        ax_park.plot(
            _times(vals), [v[1] for v in vals], color=PALETTE[i % 8], lw=1.4, label=s["tags"]["sensor"]
        )
    # Not the alerts about worksites (one per worksite, bus route and organisation told): they
    # say nothing of a car park, and a dozen labels at the run's start hide the others.
    alerts = _series(
        influx,
        'SELECT "value", "message" FROM "alerts" WHERE "state" = \'firing\' AND "kind" != \'worksite\' '
        'GROUP BY "rule", "entity"',
    )
    for s in alerts:
        for t in _times(s["values"]):
            ax_park.axvline(t, color="#D55E00", ls=":", lw=1)
            ax_park.annotate(
                f"{s['tags']['rule']}\n{s['tags']['entity']}",
                (mdates.date2num(t), 101),  # type: ignore[no-untyped-call]
                fontsize=7,
                color="#D55E00",
                rotation=90,
                va="top",
                ha="right",
            )
    ax_park.axhline(95, color="#999999", ls="--", lw=1)
    ax_park.set(title="Parcheggi — occupazione / car-park occupancy", ylabel="%", ylim=(0, 102))
    ax_park.legend(fontsize=7, ncol=3, loc="lower left")

    q = 'SELECT "vehicles" * 3600 / "interval_s" FROM "traffic" GROUP BY "sensor"'
    for i, s in enumerate(_series(influx, q)):
        vals = s["values"]
        ax_traffic.plot(
            _times(vals), [v[1] for v in vals], color=PALETTE[i % 8], lw=1.2, label=s["tags"]["sensor"]
        )
    ax_traffic.set(title="Traffico — flusso per corsia / flow per lane", ylabel="vehicles/h")
    ax_traffic.legend(fontsize=7, ncol=2, loc="upper left")
    for ax in (ax_park, ax_traffic):
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))  # type: ignore[no-untyped-call]
        ax.set_xlabel("UTC (simulated time)")
        ax.grid(alpha=0.3)

    south, west, north, east = CITY_BOX
    ax_map.add_patch(Rectangle((west, south), east - west, north - south, fill=False, ec="#bbbbbb", lw=1))
    orgs: dict[str, str] = {}
    for s in _series(influx, 'SELECT "lat", "lon" FROM "fleet" GROUP BY "org", "sensor"'):
        org = s["tags"]["org"]
        colour = orgs.setdefault(org, PALETTE[len(orgs) % 8])
        vals = s["values"]
        ax_map.plot([v[2] for v in vals], [v[1] for v in vals], color=colour, lw=1, alpha=0.7)
        ax_map.plot(vals[-1][2], vals[-1][1], "o", color=colour, ms=6)
        ax_map.annotate(
            s["tags"]["sensor"],
            (vals[-1][2], vals[-1][1]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    for org, colour in orgs.items():
        ax_map.plot([], [], color=colour, lw=2, label=org)
    routes = _buses(influx, ax_map, first_colour=len(orgs))
    ax_map.set(
        title="Flotte — percorsi / fleet tracks",
        xlabel="lon",
        ylabel="lat",
        xlim=(west, east),
        ylim=(south, north),
    )
    ax_map.set_aspect(1 / 0.7215)  # cos(43.88°): metres per degree of lon vs lat, so the city is not squashed
    if orgs or routes:
        ax_map.legend(fontsize=8, loc="lower right")

    per_gw: dict[str, int] = defaultdict(int)
    for measurement in ("parking", "parking_spot", "traffic", "fleet", "transit_vehicle", "transit_delay"):
        for s in _series(influx, f'SELECT count(*) FROM "{measurement}" GROUP BY "gateway"'):  # noqa: S608
            per_gw[s["tags"]["gateway"]] += max(int(x) for x in s["values"][0][1:] if x is not None)
    names = sorted(per_gw)
    ax_gw.barh(names, [per_gw[n] for n in names], color="#0072B2")
    for y, n in enumerate(names):
        ax_gw.annotate(
            f"{per_gw[n]:,}", (per_gw[n], y), xytext=(3, -3), textcoords="offset points", fontsize=8
        )
    ax_gw.set(title="Gateway e feed — letture salvate / readings stored", xlabel="readings")
    ax_gw.grid(axis="x", alpha=0.3)

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
