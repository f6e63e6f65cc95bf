"""The per-theme dashboards, generated as code: Parking, Traffic, Fleets, Alerts, Pipeline.

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

DS = {"type": "influxdb", "uid": "sitroom-influx"}
# Okabe-Ito: distinguishable for the common colour-vision deficiencies.
OK, WARN, BAD, INFO = "#009E73", "#E69F00", "#D55E00", "#0072B2"
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
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options or {},
        "targets": targets,
    }


def query_variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
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
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": 0,
    }


ORG = query_variable("org", "Organizzazione / Organisation", 'SHOW TAG VALUES WITH KEY = "org"')


def dashboard(
    uid: str, title: str, description: str, panels: list[Panel], variables: list[dict[str, Any]]
) -> dict[str, Any]:
    for i, p in enumerate(panels, start=1):
        p["id"] = i
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["sitroom", "prato"],
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
    fill = ((None, OK), (85, WARN), (95, BAD))
    return dashboard(
        "sitroom-parking",
        "Parcheggi / Parking",
        "Occupazione dei parcheggi e degli stalli su strada / car parks and on-street bays.",
        [
            panel(
                "timeseries",
                "Occupazione per parcheggio / Occupancy by car park",
                (0, 0, 16, 10),
                [
                    target(
                        f'SELECT mean("occupancy_pct") FROM "parking" {where} GROUP BY time($__interval), "sensor" fill(none)',
                        alias="$tag_sensor",
                    )
                ],
                unit="percent",
                minimum=0,
                maximum=100,
                steps=fill,
                custom={"thresholdsStyle": {"mode": "line+area"}},
                description="Media per intervallo di occupied/capacity. Soglie 85 % e 95 % (regola parking-full).",
            ),
            panel(
                "bargauge",
                "Ora / Now",
                (16, 0, 8, 10),
                [
                    target(
                        f'SELECT last("occupancy_pct") FROM "parking" {where} GROUP BY "sensor"',
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
                "timeseries",
                "Posti liberi / Free spaces",
                (0, 10, 16, 9),
                [
                    target(
                        f'SELECT last("capacity") - last("occupied") FROM "parking" {where} GROUP BY time($__interval), "sensor" fill(none)',
                        alias="$tag_sensor",
                    )
                ],
                unit="none",
                minimum=0,
                description="capacity - occupied: what a driver looking for a space cares about.",
            ),
            panel(
                "table",
                "Stalli su strada / On-street bays",
                (16, 10, 8, 9),
                [
                    target(
                        'SELECT last("occupied") AS "occupato" FROM "parking_spot" WHERE $timeFilter AND "org" =~ /^$org$/ AND "zone" =~ /^$zone$/ GROUP BY "street", "sensor"',
                        fmt="table",
                    )
                ],
                description="Ultimo stato di ogni stallo con sensore (true = occupato).",
            ),
        ],
        [ORG, zone],
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
                "Flusso / Flow (veicoli/h)",
                (0, 0, 24, 10),
                [
                    target(
                        f'SELECT sum("vehicles") * 3600 / sum("interval_s") FROM "traffic" {where} GROUP BY time($__interval), "sensor" fill(none)',
                        alias="$tag_sensor",
                    )
                ],
                unit="none",
                minimum=0,
                description="Veicoli contati diviso la durata degli intervalli: veicoli/ora, qualunque sia lo zoom.",
            ),
            panel(
                "timeseries",
                "Velocità media / Mean speed",
                (0, 10, 12, 9),
                [
                    target(
                        f'SELECT mean("speed_kmh") FROM "traffic" {where} AND "vehicles" > 0 GROUP BY time($__interval), "sensor" fill(none)',
                        alias="$tag_sensor",
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
                        f'SELECT sum("heavy") * 100 / sum("vehicles") FROM "traffic" {where} GROUP BY time($__interval), "site" fill(none)',
                        alias="$tag_site",
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
                        f'SELECT last("vehicles") AS "veicoli", last("speed_kmh") AS "km/h", last("occupancy_pct") AS "occupazione %" FROM "traffic" {where} GROUP BY "site", "direction", "sensor"',
                        fmt="table",
                    )
                ],
                steps=((None, BAD), (1, OK)),
                description="Un contatore fermo a 0 veicoli è rosso: spira guasta o strada chiusa (cantiere?).",
            ),
        ],
        [ORG, site],
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
                        f'SELECT last("lat") AS "lat", last("lon") AS "lon", last("speed_kmh") AS "km/h" FROM "fleet" {where} GROUP BY "org", "sensor", "vehicle_type"',
                        fmt="table",
                    )
                ],
                options={
                    "view": {"id": "coords", "lat": 43.8805, "lon": 11.0966, "zoom": 13},
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
                        f'SELECT last("speed_kmh") AS "km/h" FROM "fleet" {where} GROUP BY "org", "sensor"',
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
                        f'SELECT mean("speed_kmh") FROM "fleet" {where} GROUP BY time($__interval), "sensor" fill(none)',
                        alias="$tag_sensor",
                    )
                ],
                unit="velocitykmh",
                minimum=0,
            ),
        ],
        [ORG, vtype],
    )


def alerts() -> dict[str, Any]:
    where = 'WHERE $timeFilter AND "org" =~ /^$org$/'
    return dashboard(
        "sitroom-alerts",
        "Allarmi / Alerts",
        "Storico degli allarmi delle regole / alert history.",
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
                "table",
                "Storico / History",
                (0, 8, 24, 14),
                [
                    target(
                        f'SELECT "message", "value", "threshold" FROM "alerts" {where} GROUP BY "state", "severity", "rule", "org", "entity"',
                        fmt="table",
                    )
                ],
                description="Ogni cambio di stato (firing, resolved) con il valore e la soglia.",
            ),
        ],
        [ORG],
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
                        'SELECT non_negative_derivative("readings_written", 1s) FROM "sitroom_ingest" WHERE $timeFilter GROUP BY "instance"',
                        alias="$tag_instance",
                    )
                ],
                unit="reqps",
            ),
            panel(
                "timeseries",
                "Latenza di scrittura / Write latency",
                (12, 0, 12, 8),
                [
                    target(
                        'SELECT mean("write_ms_p50") AS "p50", max("write_ms_max") AS "max" FROM "sitroom_ingest" WHERE $timeFilter GROUP BY time($__interval), "instance" fill(none)'
                    )
                ],
                unit="ms",
            ),
            panel(
                "timeseries",
                "Buffer ingest / Ingest buffer",
                (0, 8, 12, 8),
                [
                    target(
                        'SELECT max("buffer_fill_pct") FROM "sitroom_ingest" WHERE $timeFilter GROUP BY time($__interval), "instance" fill(none)',
                        alias="$tag_instance",
                    )
                ],
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
                        'SELECT max("queue_depth") FROM "sitroom_gateway_health" WHERE $timeFilter AND "org" =~ /^$org$/ GROUP BY time($__interval), "gateway" fill(none)',
                        alias="$tag_gateway",
                    )
                ],
                unit="none",
                minimum=0,
                description="Letture in attesa sul gateway: cresce durante un'interruzione di rete, torna a 0 dopo il recupero.",
            ),
            panel(
                "table",
                "Gateway: sequenze, ritardo, orologio / sequence gaps, lag, clock",
                (0, 26, 24, 10),
                [
                    target(
                        'SELECT last("highest_seq") AS "seq", last("gaps") AS "lacune", last("duplicates") AS "duplicati", last("lag_s") AS "ritardo s", last("clock_offset_s") AS "orologio s" FROM "sitroom_gateway_seq" WHERE $timeFilter AND "org" =~ /^$org$/ GROUP BY "org", "gateway"',
                        fmt="table",
                    )
                ],
                steps=((None, OK), (1, WARN)),
                description="Lacune (gaps) = batch persi secondo i numeri di sequenza; duplicati = riconsegne.",
            ),
        ],
        [ORG],
    )


BUILDERS: dict[str, Callable[[], dict[str, Any]]] = {
    "parking": parking,
    "traffic": traffic,
    "fleets": fleets,
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
