"""The per-theme dashboards, generated as code: Parking, Traffic, Fleets, Public transport,
Worksites, Alerts, Pipeline.

`sitroom dashboards build` writes them to dashboards/json/; a test fails when a committed file
differs from what this module generates, so a reviewer reads this code, not 2,000 lines of JSON.
The overview (situation-room-overview.json) is kept by hand. Titles are Italian / English, the
way Prato's operators and the utilities' engineers read them; colours are colour-blind safe.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloud.core.geo import ServiceAreas
from cloud.io.influx.retention import META_RP, RP_CHOICE_MEASUREMENT

DS = {"type": "influxdb", "uid": "sitroom-influx"}
# Okabe-Ito: distinguishable for the common colour-vision deficiencies.
OK, WARN, BAD, INFO = "#009E73", "#E69F00", "#D55E00", "#0072B2"
GREY, YELLOW = "#999999", "#F0E442"
ALERT_ANNOTATION = {
    "name": "Allarmi / Alerts",
    "datasource": DS,
    "enable": True,
    "iconColor": BAD,
    # Every time series shows when alerts fired: one annotation per firing, text = message.
    "query": ('SELECT "message", "rule", "entity" FROM "alerts" WHERE "state" = \'firing\' AND $timeFilter'),
    "textColumn": "message",
    "tagsColumn": "rule,entity",
}

Panel = dict[str, Any]

# Charts draw at most this many points per line (Grafana's "Max data points"), so `$__interval`
# is 10 min over 6 h, 30 min over a day, 3 h over a week and a day over a month. InfluxDB 1.x
# works per series and time bucket, so at metropolitan scale buckets are what a 30-day panel
# costs; 40 points still show a day's rush hours and a month's weeks (bench/queries.py). The
# pipeline's charts, over a handful of ingest workers, keep 100. Charts group by organisation,
# zone or site (what the variables select), not by sensor: thousands of lines neither compute
# fast nor read; each sensor's latest value is in the tables beside them.
CHARTS = {"timeseries", "state-timeline"}
CHART_POINTS = 40
PIPELINE_POINTS = 100


def target(query: str, ref: str = "A", fmt: str = "time_series", alias: str = "") -> dict[str, Any]:
    t: dict[str, Any] = {
        "datasource": DS,
        "refId": ref,
        "rawQuery": True,
        "resultFormat": fmt,
        "query": query,
    }
    if alias:
        t["alias"] = alias
    return t


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


def panel(
    kind: str,
    title: str,
    grid: tuple[int, int, int, int],
    targets: list[dict[str, Any]],
    *,
    unit: str = "short",
    description: str = "",
    steps: tuple[tuple[float | None, str], ...] = ((None, INFO),),
    minimum: float | None = None,
    maximum: float | None = None,
    options: dict[str, Any] | None = None,
    custom: dict[str, Any] | None = None,
    mappings: list[dict[str, Any]] | None = None,
    max_points: int = CHART_POINTS,
) -> Panel:
    x, y, w, h = grid
    defaults: dict[str, Any] = {
        "unit": unit,
        "thresholds": thresholds(*steps),
        "color": {"mode": "palette-classic"},
    }
    if kind in {"stat", "bargauge", "table"}:
        defaults["color"] = {"mode": "thresholds"}
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    if custom:
        defaults["custom"] = custom
    if mappings:
        defaults["mappings"] = mappings
    out: Panel = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options or {},
        "targets": targets,
    }
    if kind in CHARTS:
        out["maxDataPoints"] = max_points
    return out


def query_variable(
    name: str, label: str, query: str, *, all_value: str | None = ".*", hide: int = 0
) -> dict[str, Any]:
    """A multi-value variable from an InfluxQL query. `all_value=None`: "All" means every value
    the query found (Grafana sends `(a|b|c)`), not any value at all: for a variable chained to
    another one. `hide=2` hides it from the dashboard's bar."""
    variable = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": query,
        "refresh": 2,
        "sort": 1,
        "multi": True,
        "includeAll": True,
        "allValue": all_value,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": hide,
    }
    if all_value is None:
        del variable["allValue"]
    return variable


def single_variable(name: str, label: str, query: str) -> dict[str, Any]:
    """A variable from an InfluxQL query with one value at a time, the first by default."""
    variable = query_variable(name, label, query)
    variable.update(multi=False, includeAll=False, current={})
    del variable["allValue"]
    return variable


ORG = query_variable("org", "Organizzazione / Organisation", 'SHOW TAG VALUES WITH KEY = "org"')

# Which retention policy the panels on sensor data read: raw points up to two days, hourly
# rollups beyond (cloud/io/influx/retention.py writes the choice as `sitroom_rp`). Grafana runs
# this query again whenever the time range changes, so a 30-day view reads 1/100 of the points.
_RP_QUERY = (
    f'SELECT "rp" FROM "{META_RP}"."{RP_CHOICE_MEASUREMENT}" '
    'WHERE "from_ms" < ${__to} - ${__from} AND "to_ms" >= ${__to} - ${__from}'
)
RP = {
    "name": "rp",
    "label": "Dati / Data",
    "description": "raw fino a 2 giorni, poi medie orarie / raw up to 2 days, hourly rollups beyond",
    "type": "query",
    "datasource": DS,
    "definition": _RP_QUERY,
    "query": _RP_QUERY,
    "refresh": 2,
    "sort": 0,
    "multi": False,
    "includeAll": False,
    "current": {},
    "options": [],
    "hide": 2,
}


def src(measurement: str) -> str:
    """The FROM of a panel on a rolled-up measurement (cloud/io/influx/schema.py): its raw
    points or its hourly rollup, as the range picks (`$rp`)."""
    return f'"$rp"."{measurement}"'


def default_view() -> dict[str, Any]:
    """The maps' view of the default areas; `sitroom dashboards push` sets each audience's own."""
    return {"id": "coords", **ServiceAreas.load().view()}


# Panels of each entity's latest value (a table, a gauge, a map): they read the last day of raw
# points whatever range the dashboard shows (Grafana's panel relative time, "Last 24 hours" on
# the panel): a month of rollups would cost more and say nothing more about now. Everything a
# gateway or the rules service writes is refreshed within minutes; a gateway's birth or will is
# not (it is written when it changes), so the gateways' status keeps the dashboard's range.
LATEST_RANGE = "24h"
LATEST = frozenset(
    {
        "Ora / Now",
        "Posti liberi ora / Free spaces now",
        "Stalli su strada / On-street bays",
        "Ultimo intervallo / Last interval",
        "Ultime posizioni / Last positions",
        "Fermi / Halted (km/h)",
        "Attivi ora / Active now",
        "Previsti (30 gg) / Planned (30 days)",
        "Corsie chiuse / Lanes closed",
        "Per ente / By organisation",
        "Posti auto tolti / Parking spaces removed",
        "Impatto / Impact",
        "Sensori vicini / Sensors near each worksite",
        "Gateway: sequenze, ritardo, orologio / sequence gaps, lag, clock",
        "Parcheggi dei partner via NGSI-LD / Partners' car parks (NGSI-LD)",
        "Dispositivi: radio, GPS, temperatura / Devices: radio, GPS, temperature",
        "Park and ride: posti liberi e prossimi bus / free spaces and next buses",
        "Linee bus su cantieri attivi / Bus routes on active worksites",
        "Linee bus sui cantieri / Bus routes on worksites",
        "Bus in servizio per linea / Buses in service by line",
        "Bus in servizio / Buses reporting",
        "Feed fermi / Stale feeds",
        "Cantieri sulle linee / Worksites on bus lines",
        "Percorsi sui cantieri / Routes through worksites",
        # Not a latest value, but counted per stop event: an hourly mean of delays cannot say
        # which stops were on time, so the share is of the last day's raw points.
        "Puntualità / On time",
        "Puntualità per linea / On time by line",
    }
)


def latest(p: Panel) -> Panel:
    """`p` over the last day of raw points (`LATEST`)."""
    p["timeFrom"] = LATEST_RANGE
    for t in p["targets"]:
        t["query"] = t["query"].replace('"$rp".', "")  # the default RP: raw
    return p


def dashboard(
    uid: str, title: str, description: str, panels: list[Panel], variables: list[dict[str, Any]]
) -> dict[str, Any]:
    panels = [latest(p) if p["title"] in LATEST else p for p in panels]
    for i, p in enumerate(panels, start=1):
        p["id"] = i
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["sitroom"],
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {"refresh_intervals": ["10s", "30s", "1m", "5m", "15m"]},
        "timezone": "browser",
        "weekStart": "monday",
        "links": [{"type": "dashboards", "tags": ["sitroom"], "asDropdown": True, "title": "Situation Room"}],
        "annotations": {"list": [ALERT_ANNOTATION]},
        "templating": {"list": variables},
        "panels": panels,
    }


def parking() -> dict[str, Any]:
    where = 'WHERE $timeFilter AND "org" =~ /^$org$/ AND "zone" =~ /^$zone$/'
    zone = query_variable("zone", "Zona / Zone", 'SHOW TAG VALUES FROM "parking" WITH KEY = "zone"')
    bay_zone = single_variable(
        "zona_stalli",
        "Zona degli stalli / Bays of zone",
        'SHOW TAG VALUES FROM "parking_spot" WITH KEY = "zone"',
    )
    fill = ((None, OK), (85, WARN), (95, BAD))
    return dashboard(
        "sitroom-parking",
        "Parcheggi / Parking",
        "Occupazione dei parcheggi e degli stalli su strada / car parks and on-street bays.",
        [
            panel(
                "timeseries",
                "Occupazione per zona / Occupancy by zone",
                (0, 0, 16, 10),
                [
                    target(
                        f'SELECT mean("occupancy_pct") FROM {src("parking")} {where} GROUP BY time($__interval), "zone" fill(none)',
                        alias="$tag_zone",
                    )
                ],
                unit="percent",
                minimum=0,
                maximum=100,
                steps=fill,
                custom={"thresholdsStyle": {"mode": "line+area"}},
                description=(
                    "Media per intervallo e per zona di occupied/capacity dei parcheggi scelti; ogni parcheggio "
                    "è nel pannello Ora. Soglie 85 % e 95 % (regola parking-full)."
                ),
            ),
            panel(
                "bargauge",
                "Ora / Now",
                (16, 0, 8, 10),
                [
                    target(
                        f'SELECT last("occupancy_pct") FROM {src("parking")} {where} GROUP BY "sensor"',
                        alias="$tag_sensor",
                    )
                ],
                unit="percent",
                minimum=0,
                maximum=100,
                steps=fill,
                options={
                    "displayMode": "lcd",
                    "orientation": "horizontal",
                    "reduceOptions": {"calcs": ["lastNotNull"]},
                },
            ),
            panel(
                "table",
                "Posti liberi ora / Free spaces now",
                (0, 10, 16, 9),
                [
                    target(
                        f'SELECT last("capacity") - last("occupied") AS "liberi", last("capacity") AS "posti" FROM {src("parking")} {where} GROUP BY "zone", "sensor"',
                        fmt="table",
                    )
                ],
                unit="none",
                steps=((None, BAD), (1, WARN), (20, OK)),
                description="capacity - occupied di ogni parcheggio: ciò che cerca chi guida.",
            ),
            panel(
                "table",
                "Stalli su strada / On-street bays",
                (16, 10, 8, 9),
                [
                    target(
                        f'SELECT last("occupied") AS "occupato" FROM {src("parking_spot")} WHERE $timeFilter AND "org" =~ /^$org$/ AND "zone" =~ /^$zona_stalli$/ GROUP BY "street", "sensor"',
                        fmt="table",
                    )
                ],
                description=(
                    "Ultimo stato di ogni stallo della zona scelta (true = occupato): una zona alla volta, "
                    "perché una città metropolitana ne ha decine di migliaia."
                ),
            ),
            panel(
                "table",
                "Parcheggi dei partner via NGSI-LD / Partners' car parks (NGSI-LD)",
                (0, 19, 24, 7),
                [
                    target(
                        'SELECT last("occupancy_pct") AS "occupazione", last("occupied") AS "occupati", '
                        f'last("capacity") AS "posti" FROM {src("parking")} WHERE $timeFilter AND "gateway" = \'ngsi-ld\' '
                        'AND "org" =~ /^$org$/ GROUP BY "org", "sensor"',
                        fmt="table",
                    )
                ],
                unit="percent",
                steps=fill,
                description="Parcheggi che un partner (un comune vicino, un gestore) condivide dal suo context "
                "broker come entità OffStreetParking (Smart Data Models), ricevute come notifiche NGSI-LD "
                "(gateway `ngsi-ld`, docs/exchange.md); sulla mappa dove la loro `location` li pone.",
            ),
            panel(
                "table",
                "Park and ride: posti liberi e prossimi bus / free spaces and next buses",
                (0, 26, 24, 8),
                [
                    target(
                        'SELECT last("free") AS "posti liberi", last("stops") AS "fermate a piedi", '
                        'last("next_departures") AS "prossimi bus verso il centro", last("wait_min") AS "attesa min" '
                        'FROM "park_and_ride" WHERE $timeFilter GROUP BY "sensor", "toward"',
                        fmt="table",
                    )
                ],
                description=(
                    "Parcheggi scambiatori (park_and_ride nei siti): posti liberi, fermate entro 400 m e le "
                    "prossime partenze verso il parcheggio centrale più pieno (toward), orario GTFS più il "
                    "ritardo in tempo reale; orari in UTC."
                ),
            ),
        ],
        [ORG, zone, bay_zone, RP],
    )


def traffic() -> dict[str, Any]:
    where = 'WHERE $timeFilter AND "org" =~ /^$org$/ AND "site" =~ /^$site$/'
    site = query_variable("site", "Sito / Site", 'SHOW TAG VALUES FROM "traffic" WITH KEY = "site"')
    return dashboard(
        "sitroom-traffic",
        "Traffico / Traffic",
        "Conteggi dei contatori di traffico per corsia e direzione / traffic counters.",
        [
            panel(
                "timeseries",
                "Flusso per corsia / Flow per lane (veicoli/h)",
                (0, 0, 24, 10),
                [
                    target(
                        f'SELECT sum("vehicles") * 3600 / sum("interval_s") FROM {src("traffic")} {where} GROUP BY time($__interval), "org" fill(none)',
                        alias="$tag_org",
                    )
                ],
                unit="none",
                minimum=0,
                description=(
                    "Veicoli contati diviso la durata degli intervalli, sui siti scelti: veicoli/ora per corsia, "
                    "qualunque sia lo zoom; ogni contatore è nella tabella Ultimo intervallo."
                ),
            ),
            panel(
                "timeseries",
                "Velocità media / Mean speed",
                (0, 10, 12, 9),
                [
                    target(
                        f'SELECT mean("speed_kmh") FROM {src("traffic")} {where} AND "vehicles" > 0 GROUP BY time($__interval), "org" fill(none)',
                        alias="$tag_org",
                    )
                ],
                unit="velocitykmh",
                minimum=0,
                description="Solo intervalli con veicoli: un intervallo vuoto non ha velocità.",
            ),
            panel(
                "timeseries",
                "Mezzi pesanti / Heavy vehicles (%)",
                (12, 10, 12, 9),
                [
                    target(
                        f'SELECT sum("heavy") * 100 / sum("vehicles") FROM {src("traffic")} {where} GROUP BY time($__interval), "org" fill(none)',
                        alias="$tag_org",
                    )
                ],
                unit="percent",
                minimum=0,
            ),
            panel(
                "table",
                "Ultimo intervallo / Last interval",
                (0, 19, 24, 8),
                [
                    target(
                        f'SELECT last("vehicles") AS "veicoli", last("speed_kmh") AS "km/h", last("occupancy_pct") AS "occupazione %" FROM {src("traffic")} {where} GROUP BY "site", "direction", "sensor"',
                        fmt="table",
                    )
                ],
                steps=((None, BAD), (1, OK)),
                description="Un contatore fermo a 0 veicoli è rosso: spira guasta o strada chiusa (cantiere?).",
            ),
        ],
        [ORG, site, RP],
    )


def fleets() -> dict[str, Any]:
    where = 'WHERE $timeFilter AND "org" =~ /^$org$/ AND "vehicle_type" =~ /^$vehicle_type$/'
    vtype = query_variable(
        "vehicle_type", "Tipo / Type", 'SHOW TAG VALUES FROM "fleet" WITH KEY = "vehicle_type"'
    )
    marker = {
        "type": "markers",
        "name": "Veicoli / Vehicles",
        "location": {"mode": "coords", "latitude": "lat", "longitude": "lon"},
        "tooltip": True,
        "config": {
            "showLegend": True,
            "style": {
                "color": {"field": "org", "fixed": INFO},
                "size": {"fixed": 7},
                "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
                "text": {"field": "sensor", "mode": "field", "fixed": ""},
                "textConfig": {
                    "fontSize": 11,
                    "offsetY": -12,
                    "textAlign": "center",
                    "textBaseline": "middle",
                },
                "opacity": 0.85,
            },
        },
    }
    return dashboard(
        "sitroom-fleets",
        "Flotte / Fleets",
        "Veicoli delle aziende (rifiuti, acqua, gas, trasporto pubblico) / utility and transit fleets.",
        [
            panel(
                "geomap",
                "Ultime posizioni / Last positions",
                (0, 0, 14, 16),
                [
                    target(
                        f'SELECT last("lat") AS "lat", last("lon") AS "lon", last("speed_kmh") AS "km/h" FROM {src("fleet")} {where} GROUP BY "org", "sensor", "vehicle_type"',
                        fmt="table",
                    )
                ],
                options={
                    "view": default_view(),
                    "controls": {"showZoom": True, "mouseWheelZoom": True, "showScale": True},
                    "basemap": {"type": "default", "name": "Mappa"},
                    "layers": [marker],
                    "tooltip": {"mode": "details"},
                },
            ),
            panel(
                "table",
                "Fermi / Halted (km/h)",
                (14, 0, 10, 16),
                [
                    target(
                        f'SELECT last("speed_kmh") AS "km/h" FROM {src("fleet")} {where} GROUP BY "org", "sensor"',
                        fmt="table",
                    )
                ],
                unit="velocitykmh",
                steps=((None, WARN), (1, OK)),
                description="Ultima velocità di ogni veicolo: 0 da molto tempo in un cantiere o fuori servizio va guardato.",
            ),
            panel(
                "timeseries",
                "Velocità / Speed",
                (0, 16, 24, 9),
                [
                    target(
                        f'SELECT mean("speed_kmh") FROM {src("fleet")} {where} GROUP BY time($__interval), "org", "vehicle_type" fill(none)',
                        alias="$tag_org $tag_vehicle_type",
                    )
                ],
                unit="velocitykmh",
                minimum=0,
            ),
        ],
        [ORG, vtype, RP],
    )


# A stop event is on time from a minute early to five minutes late (the usual Italian
# public-transport service charter's bound, "entro 5 minuti").
ON_TIME_EARLY_S, ON_TIME_LATE_S = 60, 300
# 1 for a delay inside [-60 s, 300 s], else 0, in InfluxQL's arithmetic (it has no CASE): the
# inner floor is 0 exactly inside the band (its width plus one second, 361), and 1 / (1 + |n|)
# floors to 1 only for n = 0. Stop events without a delay (cancelled, skipped, no data) are null.
ON_TIME = (
    f'floor(1 / (1 + abs(floor(("delay_s" + {ON_TIME_EARLY_S}) / {ON_TIME_EARLY_S + ON_TIME_LATE_S + 1}))))'
)


def transit() -> dict[str, Any]:
    where = 'WHERE $timeFilter AND "org" =~ /^$org$/ AND "route" =~ /^$route$/'
    route = query_variable("route", "Linea / Line", 'SHOW TAG VALUES FROM "transit_delay" WITH KEY = "route"')
    on_time = ((None, BAD), (80, WARN), (90, OK))
    stat_options = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"}
    buses = {
        "type": "markers",
        "name": "Bus per linea / Buses by line",
        "location": {"mode": "coords", "latitude": "lat", "longitude": "lon"},
        "tooltip": True,
        "config": {
            "showLegend": True,
            "style": {
                "color": {"field": "route", "fixed": INFO},
                "size": {"fixed": 8},
                "symbol": {"fixed": "img/icons/marker/square.svg", "mode": "fixed"},
                "text": {"field": "route", "mode": "field", "fixed": ""},
                "textConfig": {
                    "fontSize": 10,
                    "offsetY": -12,
                    "textAlign": "center",
                    "textBaseline": "middle",
                },
                "opacity": 0.9,
            },
        },
    }
    lines = {
        "type": "geojson",
        "name": "Percorsi / Routes",
        "config": {
            "src": "http://127.0.0.1:8080/feeds/transit/routes.geojson",
            "style": {"color": {"fixed": GREY}, "opacity": 0.6, "lineWidth": 2},
        },
    }
    return dashboard(
        "sitroom-transit",
        "Trasporto pubblico / Public transport",
        "Bus del gestore dal feed GTFS-Realtime: posizioni, ritardi per linea, puntualità, cantieri sulle linee.",
        [
            panel(
                "geomap",
                "Bus in servizio per linea / Buses in service by line",
                (0, 0, 14, 15),
                [
                    target(
                        'SELECT last("lat") AS "lat", last("lon") AS "lon", last("delay_s") AS "ritardo s", '
                        f'last("speed_kmh") AS "km/h" FROM "transit_vehicle" {where} GROUP BY "route", "sensor"',
                        fmt="table",
                    )
                ],
                options={
                    "view": {"id": "coords", "lat": 43.8790, "lon": 11.0990, "zoom": 14},
                    "controls": {"showZoom": True, "mouseWheelZoom": True, "showScale": True},
                    "basemap": {"type": "default", "name": "Mappa"},
                    "layers": [lines, buses],
                    "tooltip": {"mode": "details"},
                },
                description=(
                    "Ultima posizione di ogni bus (colore per linea) sui percorsi del GTFS statico "
                    "(/feeds/transit/routes.geojson dell'API); il ritardo è quello della sua corsa."
                ),
            ),
            panel(
                "stat",
                "Puntualità / On time",
                (14, 0, 5, 5),
                [
                    target(
                        f'SELECT 100 * mean("on_time") FROM (SELECT {ON_TIME} AS "on_time" FROM "transit_delay" {where})'
                    )
                ],
                unit="percent",
                minimum=0,
                maximum=100,
                steps=on_time,
                options=stat_options,
                description=(
                    "Quota delle fermate servite nelle ultime 24 ore tra 1 minuto di anticipo e 5 minuti di "
                    "ritardo sull'orario (un punto per corsa e fermata, all'ora prevista). Corse soppresse e "
                    "fermate saltate escluse."
                ),
            ),
            panel(
                "stat",
                "Ritardo medio / Mean delay",
                (19, 0, 5, 5),
                [target(f'SELECT mean("delay_s") FROM {src("transit_delay")} {where}')],
                unit="s",
                steps=((None, OK), (120, WARN), (300, BAD)),
                options=stat_options,
                description="Media dei ritardi alle fermate (negativo = in anticipo).",
            ),
            panel(
                "stat",
                "Bus in servizio / Buses reporting",
                (14, 5, 5, 5),
                [
                    target(
                        'SELECT count("lat") FROM (SELECT last("lat") AS "lat" FROM "transit_vehicle" '
                        f'{where} AND "route" != \'none\' GROUP BY "sensor")'
                    )
                ],
                unit="none",
                steps=((None, INFO),),
                options=stat_options,
                description="Veicoli che hanno dato una posizione su una corsa nel periodo scelto.",
            ),
            panel(
                "stat",
                "Feed fermi / Stale feeds",
                (19, 5, 5, 5),
                [
                    target(
                        'SELECT sum("stale") FROM (SELECT last("stale_feeds") AS "stale" FROM "sitroom_gateway_health" '
                        'WHERE $timeFilter AND "org" =~ /^$org$/ GROUP BY "org", "gateway")'
                    )
                ],
                unit="none",
                steps=((None, OK), (1, BAD)),
                options={**stat_options, "colorMode": "background"},
                description=(
                    "Feed GTFS-Realtime il cui orario di testata non avanza da stale_after_s: i bus sulla mappa "
                    "sono fermi a quell'ora (allarme transit-feed-stale)."
                ),
            ),
            panel(
                "table",
                "Puntualità per linea / On time by line",
                (14, 10, 10, 5),
                [
                    target(
                        f'SELECT 100 * mean("on_time") AS "puntuali %", mean("delay_s") AS "ritardo medio s", '
                        f'count("delay_s") AS "fermate" FROM (SELECT {ON_TIME} AS "on_time", "delay_s" '
                        f'FROM "transit_delay" {where} GROUP BY "route") GROUP BY "route"',
                        fmt="table",
                    )
                ],
                steps=on_time,
                description=(
                    "Per linea, nelle ultime 24 ore: quota puntuale, ritardo medio e fermate servite con un "
                    "ritardo noto."
                ),
            ),
            panel(
                "timeseries",
                "Ritardo per linea / Delay by line",
                (0, 15, 24, 9),
                [
                    target(
                        f'SELECT mean("delay_s") FROM {src("transit_delay")} {where} '
                        'GROUP BY time($__interval), "route" fill(none)',
                        alias="$tag_route",
                    )
                ],
                unit="s",
                steps=((None, OK), (ON_TIME_LATE_S, BAD)),
                custom={"thresholdsStyle": {"mode": "line"}},
                description="Ritardo medio alle fermate per intervallo, all'ora prevista di passaggio; soglia 5 minuti.",
            ),
            panel(
                "table",
                "Cantieri sulle linee / Worksites on bus lines",
                (0, 24, 12, 8),
                [
                    # Every worksite on a line concerns the operator, whoever owns it: no $org.
                    target(
                        'SELECT "titolo", "fase", "linee bus", "giorni alla fine" FROM '
                        '(SELECT last("title") AS "titolo", last("state") AS "fase", last("bus_lines") AS "linee bus", '
                        'last("days_to_end") AS "giorni alla fine" FROM "worksite" WHERE $timeFilter '
                        'GROUP BY "id", "org", "street") WHERE "linee bus" > 0 GROUP BY "id", "org", "street"',
                        fmt="table",
                    )
                ],
                description=(
                    "Cantieri del registro che dichiarano linee bus coinvolte (impact.bus_lines), di qualunque "
                    "ente: la loro fase e i giorni alla fine."
                ),
            ),
            panel(
                "table",
                "Percorsi sui cantieri / Routes through worksites",
                (12, 24, 12, 8),
                [
                    # The routes the rules service finds on each worksite (worksite_route), tagged
                    # `route` as the buses' readings are: the line chosen above picks its worksites.
                    target(
                        'SELECT last("name") AS "linea", last("stops") AS "fermate nel cantiere", '
                        'last("distance_m") AS "distanza m", last("active") AS "attivo" FROM "worksite_route" '
                        'WHERE $timeFilter AND "route" =~ /^$route$/ GROUP BY "id", "operator", "route"',
                        fmt="table",
                    )
                ],
                description=(
                    "Per ogni cantiere non concluso, le linee il cui percorso (shapes del GTFS) passa entro "
                    "30 m e le loro fermate nel cantiere (attivo = 1 se i lavori sono in corso)."
                ),
            ),
        ],
        [ORG, route, RP],
    )


def alerts() -> dict[str, Any]:
    where = 'WHERE $timeFilter AND "org" =~ /^$org$/'
    return dashboard(
        "sitroom-alerts",
        "Allarmi / Alerts",
        "Storico degli allarmi delle regole e tempi di presa in carico / alert history, time to acknowledge.",
        [
            panel(
                "timeseries",
                "Allarmi scattati per regola / Alerts fired by rule",
                (0, 0, 24, 8),
                [
                    target(
                        f'SELECT count("active") FROM "alerts" {where} AND "state" = \'firing\' GROUP BY time($__interval), "rule" fill(none)',
                        alias="$tag_rule",
                    )
                ],
                unit="none",
                custom={"drawStyle": "bars"},
            ),
            panel(
                "stat",
                "Aperti, non presi in carico / Open, not acknowledged",
                (0, 8, 6, 7),
                [
                    # The last point of each alert (rule, org, entity) says whether it is still
                    # firing with nobody on it: 1 when firing, 0 once acknowledged or resolved.
                    target(
                        f'SELECT sum("unacked") FROM (SELECT last("unacked") AS "unacked" FROM "alerts" {where} GROUP BY "rule", "org", "entity")'
                    )
                ],
                unit="none",
                steps=((None, OK), (1, WARN), (5, BAD)),
                description="Allarmi il cui ultimo stato è firing: nessuno li ha ancora presi in carico.",
                options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"},
            ),
            panel(
                "table",
                "Tempo di presa in carico / Time to acknowledge",
                (6, 8, 18, 7),
                [
                    target(
                        f'SELECT median("ack_s") AS "mediana", max("ack_s") AS "massimo", count("ack_s") AS "prese in carico" FROM "alerts" {where} AND "state" = \'acknowledged\' GROUP BY "rule", "severity"',
                        fmt="table",
                    )
                ],
                unit="s",
                steps=((None, OK), (900, WARN), (3600, BAD)),
                description="Secondi tra lo scatto e la presa in carico (ack da CLI, API o console), per regola e gravità.",
            ),
            panel(
                "table",
                "Storico / History",
                (0, 15, 24, 14),
                [
                    target(
                        f'SELECT "message", "value", "threshold" FROM "alerts" {where} GROUP BY "state", "severity", "rule", "org", "entity"',
                        fmt="table",
                    )
                ],
                description="Ogni cambio di stato (firing, acknowledged, resolved) con il valore e la soglia.",
            ),
        ],
        [ORG],
    )


def worksites() -> dict[str, Any]:
    where = 'WHERE $timeFilter AND "org" =~ /^$org$/ AND "work_type" =~ /^$work_type$/'
    work_type = query_variable(
        "work_type", "Tipo di lavori / Work type", 'SHOW TAG VALUES FROM "worksite" WITH KEY = "work_type"'
    )
    phases = [
        {
            "type": "value",
            "options": {
                "planned": {"text": "previsto / planned", "color": INFO, "index": 0},
                "active": {"text": "attivo / active", "color": WARN, "index": 1},
                "suspended": {"text": "sospeso / suspended", "color": YELLOW, "index": 2},
                "ended": {"text": "concluso / ended", "color": GREY, "index": 3},
            },
        }
    ]

    def now_sum(field: str) -> str:
        # The last point of each worksite, summed: how many are in that phase now.
        return f'SELECT sum("{field}") FROM (SELECT last("{field}") AS "{field}" FROM {src("worksite")} {where} GROUP BY "id")'

    def active_sum(field: str) -> str:
        return (
            f'SELECT sum("taken") FROM (SELECT last("{field}") * last("active") AS "taken" '
            f'FROM {src("worksite")} {where} GROUP BY "id")'
        )

    stat_options = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"}
    # A worksite chained to the sensors around it (`worksite_sensor`, written with the registry's
    # state by cloud/worksites/snapshot.py): InfluxQL has no spatial join, the variables do it.
    worksite = query_variable(
        "cantiere",
        "Cantiere / Worksite",
        'SHOW TAG VALUES FROM "worksite_sensor" WITH KEY = "id" WHERE "org" =~ /^$org$/',
    )
    nearby = query_variable(
        "vicini",
        "Sensori vicini / Nearby sensors",
        'SHOW TAG VALUES FROM "worksite_sensor" WITH KEY = "sensor" WHERE "id" =~ /^$cantiere$/',
        all_value=None,
        hide=2,
    )
    near = 'WHERE $timeFilter AND "sensor" =~ /^$vicini$/'
    return dashboard(
        "sitroom-worksites",
        "Lavori stradali / Worksites",
        "Cantieri del registro: cronologia, conteggi per ente e impatto sul traffico / worksite registry.",
        [
            panel(
                "state-timeline",
                "Cronologia dei cantieri / Worksite timeline",
                (0, 0, 24, 11),
                [
                    target(
                        f'SELECT last("state") FROM {src("worksite")} {where} GROUP BY time($__interval), "id" fill(previous)',
                        alias="$tag_id",
                    )
                ],
                mappings=phases,
                options={
                    "mergeValues": True,
                    "showValue": "never",
                    "alignValue": "left",
                    "rowHeight": 0.85,
                    "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"},
                    "tooltip": {"mode": "single"},
                },
                custom={"fillOpacity": 80, "lineWidth": 0},
                # One row per worksite, which changes by the day: a day per step over a month.
                max_points=30,
                description=(
                    "Fase di ogni cantiere (entro 30 giorni o concluso da meno di 7): previsto → attivo → "
                    "concluso. Un cantiere previsto il cui periodo è iniziato è attivo, come sulla mappa."
                ),
            ),
            panel(
                "stat",
                "Attivi ora / Active now",
                (0, 11, 4, 6),
                [target(now_sum("active"))],
                unit="none",
                steps=((None, WARN),),
                options=stat_options,
            ),
            panel(
                "stat",
                "Previsti (30 gg) / Planned (30 days)",
                (4, 11, 4, 6),
                [target(now_sum("planned"))],
                unit="none",
                steps=((None, INFO),),
                options=stat_options,
            ),
            panel(
                "stat",
                "Corsie chiuse / Lanes closed",
                (8, 11, 4, 6),
                [target(active_sum("lanes_closed"))],
                unit="none",
                steps=((None, OK), (1, WARN), (5, BAD)),
                options=stat_options,
                description="Somma delle corsie chiuse dai cantieri attivi ora.",
            ),
            panel(
                "table",
                "Per ente / By organisation",
                (12, 11, 12, 6),
                [
                    target(
                        'SELECT sum("active") AS "attivi", sum("planned") AS "previsti" FROM '
                        f'(SELECT last("active") AS "active", last("planned") AS "planned" FROM {src("worksite")} {where} GROUP BY "id", "org") '
                        'GROUP BY "org"',
                        fmt="table",
                    )
                ],
                description="Cantieri attivi ora e previsti nei prossimi 30 giorni, per ente titolare.",
            ),
            panel(
                "timeseries",
                "Cantieri attivi per ente / Active worksites by organisation",
                (0, 17, 12, 9),
                [
                    target(
                        f'SELECT sum("active") FROM (SELECT last("active") AS "active" FROM {src("worksite")} {where} GROUP BY time($__interval), "id", "org" fill(none)) WHERE $timeFilter GROUP BY time($__interval), "org" fill(none)',
                        alias="$tag_org",
                    )
                ],
                unit="none",
                minimum=0,
                max_points=30,
                custom={
                    "drawStyle": "line",
                    "lineInterpolation": "stepAfter",
                    "stacking": {"mode": "normal"},
                },
            ),
            panel(
                "stat",
                "Posti auto tolti / Parking spaces removed",
                (12, 17, 12, 9),
                [target(active_sum("parking_spaces_removed"))],
                unit="none",
                steps=((None, OK), (20, WARN), (100, BAD)),
                options=stat_options,
                description="Posti auto sottratti dai cantieri attivi ora (impatto sulla sosta).",
            ),
            panel(
                "table",
                "Impatto / Impact",
                (0, 26, 24, 10),
                [
                    target(
                        'SELECT last("title") AS "titolo", last("state") AS "fase", last("lanes_closed") AS "corsie chiuse", '
                        'last("road_closed") AS "strada chiusa", last("parking_spaces_removed") AS "posti auto tolti", '
                        'last("bus_lines") AS "linee bus", last("days_to_end") AS "giorni alla fine" '
                        f'FROM {src("worksite")} {where} GROUP BY "id", "org", "street"',
                        fmt="table",
                    )
                ],
                mappings=phases,
                description=(
                    "Ultimo stato di ogni cantiere con ciò che toglie al traffico; giorni alla fine negativi = in ritardo."
                ),
            ),
            panel(
                "timeseries",
                "Flusso vicino ai cantieri / Traffic flow near worksites (v/h)",
                (0, 36, 12, 9),
                [
                    target(
                        f'SELECT sum("vehicles") * 3600 / sum("interval_s") FROM {src("traffic")} {near} GROUP BY time($__interval), "org" fill(none)',
                        alias="$tag_org",
                    )
                ],
                unit="none",
                minimum=0,
                description=(
                    "Contatori entro 400 m dei cantieri scelti (variabile Cantiere): un calo all'apertura "
                    "di un cantiere è il suo impatto sul traffico."
                ),
            ),
            panel(
                "timeseries",
                "Sosta vicino ai cantieri / Parking near worksites (%)",
                (12, 36, 12, 9),
                [
                    target(
                        f'SELECT mean("occupancy_pct") FROM {src("parking")} {near} GROUP BY time($__interval), "zone" fill(none)',
                        alias="$tag_zone",
                    )
                ],
                unit="percent",
                minimum=0,
                maximum=100,
                steps=((None, OK), (85, WARN), (95, BAD)),
                description="Parcheggi entro 400 m dei cantieri scelti: i posti tolti spostano la sosta qui.",
            ),
            panel(
                "table",
                "Sensori vicini / Sensors near each worksite",
                (0, 45, 24, 8),
                [
                    target(
                        'SELECT last("distance_m") AS "distanza m", last("active") AS "attivo" '
                        f'FROM {src("worksite_sensor")} WHERE $timeFilter AND "id" =~ /^$cantiere$/ AND "org" =~ /^$org$/ '
                        'GROUP BY "id", "sensor"',
                        fmt="table",
                    )
                ],
                description="Ogni cantiere non concluso con i contatori e i parcheggi nel raggio di 400 m.",
            ),
            panel(
                "stat",
                "Linee bus su cantieri attivi / Bus routes on active worksites",
                (0, 53, 6, 8),
                [
                    target(
                        'SELECT sum("active") FROM (SELECT last("active") AS "active" FROM "worksite_route" '
                        'WHERE $timeFilter AND "org" =~ /^$org$/ GROUP BY "id", "operator", "route")'
                    )
                ],
                unit="none",
                steps=((None, OK), (1, WARN), (5, BAD)),
                options=stat_options,
                description=(
                    "Coppie (cantiere attivo, linea bus) il cui percorso (shapes del GTFS importato) passa "
                    "entro 30 m dal cantiere."
                ),
            ),
            panel(
                "table",
                "Linee bus sui cantieri / Bus routes on worksites",
                (6, 53, 18, 8),
                [
                    target(
                        'SELECT last("name") AS "linea", last("distance_m") AS "distanza m", '
                        'last("stops") AS "fermate nel cantiere", last("active") AS "attivo" '
                        'FROM "worksite_route" WHERE $timeFilter AND "id" =~ /^$cantiere$/ AND "org" =~ /^$org$/ '
                        'GROUP BY "id", "operator", "route"',
                        fmt="table",
                    )
                ],
                description=(
                    "Per ogni cantiere non concluso, le linee bus che vi passano (entro 30 m) e quante loro "
                    "fermate sono nel cantiere: da avvisare l'azienda di trasporto."
                ),
            ),
        ],
        [ORG, work_type, worksite, nearby, RP],
    )


def pipeline() -> dict[str, Any]:
    return dashboard(
        "sitroom-pipeline",
        "Gateway e pipeline / Gateways and pipeline",
        "Salute della catena gateway → broker → ingest → InfluxDB / pipeline health.",
        [
            panel(
                "timeseries",
                "Letture scritte / Readings written (per s)",
                (0, 0, 12, 8),
                [
                    target(
                        f'SELECT non_negative_derivative("readings_written", 1s) FROM {src("sitroom_ingest")} WHERE $timeFilter GROUP BY "instance"',
                        alias="$tag_instance",
                    )
                ],
                max_points=PIPELINE_POINTS,
                unit="reqps",
            ),
            panel(
                "timeseries",
                "Latenza di scrittura / Write latency",
                (12, 0, 12, 8),
                [
                    target(
                        f'SELECT mean("write_ms_p50") AS "p50", max("write_ms_max") AS "max" FROM {src("sitroom_ingest")} WHERE $timeFilter GROUP BY time($__interval), "instance" fill(none)'
                    )
                ],
                max_points=PIPELINE_POINTS,
                unit="ms",
            ),
            panel(
                "timeseries",
                "Buffer ingest / Ingest buffer",
                (0, 8, 12, 8),
                [
                    target(
                        f'SELECT max("buffer_fill_pct") FROM {src("sitroom_ingest")} WHERE $timeFilter GROUP BY time($__interval), "instance" fill(none)',
                        alias="$tag_instance",
                    )
                ],
                max_points=PIPELINE_POINTS,
                unit="percent",
                minimum=0,
                maximum=100,
                steps=((None, OK), (50, WARN), (90, BAD)),
            ),
            panel(
                "timeseries",
                "Dead letter per causa / by reason",
                (12, 8, 12, 8),
                [
                    target(
                        'SELECT count("count") FROM "sitroom_deadletter" WHERE $timeFilter AND "org" =~ /^$org$/ GROUP BY time($__interval), "reason" fill(none)',
                        alias="$tag_reason",
                    )
                ],
                max_points=PIPELINE_POINTS,
                unit="none",
                custom={"drawStyle": "bars"},
            ),
            panel(
                "table",
                "Gateway in linea / Gateways online",
                (0, 16, 8, 10),
                [
                    target(
                        'SELECT last("online") AS "in linea", last("reason") AS "motivo" FROM "sitroom_gateway_status" WHERE $timeFilter AND "org" =~ /^$org$/ GROUP BY "org", "gateway"',
                        fmt="table",
                    )
                ],
                steps=((None, BAD), (1, OK)),
                description="Stato di nascita / ultima volontà (retained) di ogni gateway: 0 = fuori linea.",
            ),
            panel(
                "timeseries",
                "Coda su disco / Spool queue (letture)",
                (8, 16, 16, 10),
                [
                    target(
                        f'SELECT max("queue_depth") FROM {src("sitroom_gateway_health")} WHERE $timeFilter AND "org" =~ /^$org$/ GROUP BY time($__interval), "org" fill(none)',
                        alias="$tag_org",
                    )
                ],
                max_points=PIPELINE_POINTS,
                unit="none",
                minimum=0,
                description=(
                    "Letture in attesa sul gateway più carico di ogni ente: cresce durante un'interruzione di "
                    "rete, torna a 0 dopo il recupero; ogni gateway è nella tabella delle sequenze."
                ),
            ),
            panel(
                "table",
                "Gateway: sequenze, ritardo, orologio / sequence gaps, lag, clock",
                (0, 26, 24, 10),
                [
                    target(
                        # Every ingest worker of a shared group holds the group's accounts
                        # (cloud/ingest/seqledger.py) and writes them tagged with its instance.
                        # The accounts only grow, so the largest of the range is the group's
                        # latest (a restarted worker's start empty); lag and clock are the latest
                        # batch's, whichever worker wrote it. (A subquery per instance said the
                        # same and took 4 s over a metropolitan day: bench/queries.py.)
                        f'SELECT max("highest_seq") AS "seq", max("gaps") AS "lacune", max("duplicates") AS "duplicati", last("lag_s") AS "ritardo s", last("clock_offset_s") AS "orologio s" FROM {src("sitroom_gateway_seq")} WHERE $timeFilter AND "org" =~ /^$org$/ GROUP BY "org", "gateway"',
                        fmt="table",
                    )
                ],
                steps=((None, OK), (1, WARN)),
                description="Lacune (gaps) = batch persi secondo i numeri di sequenza; duplicati = riconsegne. Conti di tutti i worker di ingest insieme.",
            ),
            panel(
                "table",
                "Dispositivi: radio, GPS, temperatura / Devices: radio, GPS, temperature",
                (0, 36, 24, 10),
                [
                    target(
                        # cloud/ingest/gateway_health.py: one row per source (device = sensor)
                        # and per device of a LoRaWAN source (device = DevEUI).
                        f'SELECT last("rssi_dbm") AS "RSSI dBm", last("snr_db") AS "SNR dB", last("fcnt_gaps") AS "frame persi", last("temperature_c") AS "temperatura °C", last("fix_quality") AS "fix GPS", last("satellites") AS "satelliti", last("hdop") AS "HDOP", last("rejected") AS "scartati", last("link_up") AS "collegato" FROM {src("sitroom_device_health")} WHERE $timeFilter AND "org" =~ /^$org$/ GROUP BY "org", "gateway", "sensor", "device"',
                        fmt="table",
                    )
                ],
                description="Salute dei dispositivi contata dal gateway: LoRaWAN (RSSI/SNR del gateway radio migliore, frame persi secondo il contatore, temperatura dal heartbeat Bosch), GPS (qualità del fix, satelliti, HDOP), linee seriali (frame scartati, collegamento).",
            ),
            panel(
                "timeseries",
                "Frame LoRaWAN persi / LoRaWAN frames lost",
                (0, 46, 12, 8),
                [
                    target(
                        f'SELECT sum("lost") FROM (SELECT max("fcnt_gaps") AS "lost" FROM {src("sitroom_device_health")} WHERE $timeFilter AND "org" =~ /^$org$/ GROUP BY time($__interval), "gateway", "device") GROUP BY time($__interval), "gateway" fill(none)',
                        alias="$tag_gateway",
                    )
                ],
                unit="none",
                minimum=0,
                description="Per gateway, la somma dei frame persi dai suoi sensori LoRaWAN (salti del contatore di frame), dall'avvio del gateway.",
            ),
            panel(
                "timeseries",
                "Orologio dei gateway / Gateway clock error",
                (12, 46, 12, 8),
                [
                    target(
                        f'SELECT max("clock_max_error_s") AS "errore max", min("clock_synchronized") AS "sincronizzato" FROM {src("sitroom_gateway_health")} WHERE $timeFilter AND "org" =~ /^$org$/ GROUP BY time($__interval), "gateway" fill(none)',
                        alias="$tag_gateway $col",
                    )
                ],
                unit="s",
                minimum=0,
                steps=((None, OK), (1, WARN), (5, BAD)),
                description="Errore massimo stimato dal kernel (adjtimex) e sincronizzazione NTP (1 = sì). Lo scarto misurato dal cloud è nella tabella delle sequenze.",
            ),
        ],
        [ORG, RP],
    )


BUILDERS: dict[str, Callable[[], dict[str, Any]]] = {
    "parking": parking,
    "traffic": traffic,
    "fleets": fleets,
    "transit": transit,
    "worksites": worksites,
    "alerts": alerts,
    "pipeline": pipeline,
}


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, build in BUILDERS.items():
        path = directory / f"{name}.json"
        path.write_text(render(build()), encoding="utf-8")
        paths.append(path)
    return paths
