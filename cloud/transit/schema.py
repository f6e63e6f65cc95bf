"""The transit tables (SQLAlchemy Core; SQLite and PostgreSQL) and their numbered migrations.

Static GTFS is kept as *feeds*: one row of `tr_feeds` per imported version of an operator's
feed, and every GTFS row carries its `feed_id`. `tr_current` names each operator's current
feed. An import writes the new version, moves `tr_current` and deletes the old version's rows
in one transaction, so readers see the old feed or the new one, never a mix.

Columns keep their GTFS names, except times, which are stored as seconds since the start of
the service day (`arrival_s` for `arrival_time`: GTFS times pass 24:00, no SQL time type does),
and shapes, which are stored one row per shape as a GeoJSON coordinate list with its bbox.
Instants are integer milliseconds since the epoch, UTC (`*_ms`). No foreign keys between the
GTFS tables: the importer checks every reference itself, with file and line, before anything
is committed, and a million constraint checks would only slow the import.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cloud.io.db import Migration

COMPONENT = "transit"
metadata = sa.MetaData()
Id = sa.String(255)  # GTFS ids; the codec refuses longer ones

feeds = sa.Table(
    "tr_feeds",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("operator", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # current | replaced
    sa.Column("imported_ms", sa.BigInteger, nullable=False),
    sa.Column("replaced_ms", sa.BigInteger),
    sa.Column("source", sa.String(500), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("counts", sa.Text, nullable=False),  # JSON: rows per file
    sa.UniqueConstraint("operator", "version", name="uq_tr_feeds_operator_version"),
)

current = sa.Table(
    "tr_current",
    metadata,
    sa.Column("operator", sa.String(64), primary_key=True),
    sa.Column("feed_id", sa.Integer, nullable=False),
)


def _feed_id() -> sa.Column[int]:
    return sa.Column("feed_id", sa.Integer, primary_key=True)


agency = sa.Table(
    "tr_agency",
    metadata,
    _feed_id(),
    # agency_id may be empty in a one-agency feed; "" then, so that it can be in the key.
    sa.Column("agency_id", Id, primary_key=True),
    sa.Column("agency_name", sa.Text, nullable=False),
    sa.Column("agency_url", sa.Text, nullable=False),
    sa.Column("agency_timezone", sa.String(64), nullable=False),
    sa.Column("agency_lang", sa.Text),
    sa.Column("agency_phone", sa.Text),
)

stops = sa.Table(
    "tr_stops",
    metadata,
    _feed_id(),
    sa.Column("stop_id", Id, primary_key=True),
    sa.Column("stop_code", sa.Text),
    sa.Column("stop_name", sa.Text),
    sa.Column("stop_lat", sa.Float),
    sa.Column("stop_lon", sa.Float),
    sa.Column("location_type", sa.Integer),
    sa.Column("parent_station", Id),
    sa.Column("wheelchair_boarding", sa.Integer),
    sa.Column("platform_code", sa.Text),
)

routes = sa.Table(
    "tr_routes",
    metadata,
    _feed_id(),
    sa.Column("route_id", Id, primary_key=True),
    sa.Column("agency_id", Id),
    sa.Column("route_short_name", sa.Text),
    sa.Column("route_long_name", sa.Text),
    sa.Column("route_type", sa.Integer, nullable=False),
    sa.Column("route_color", sa.String(6)),
    sa.Column("route_text_color", sa.String(6)),
)

calendar = sa.Table(
    "tr_calendar",
    metadata,
    _feed_id(),
    sa.Column("service_id", Id, primary_key=True),
    *(
        sa.Column(day, sa.Integer, nullable=False)
        for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    ),
    sa.Column("start_date", sa.String(8), nullable=False),
    sa.Column("end_date", sa.String(8), nullable=False),
)

calendar_dates = sa.Table(
    "tr_calendar_dates",
    metadata,
    _feed_id(),
    sa.Column("service_id", Id, primary_key=True),
    sa.Column("date", sa.String(8), primary_key=True),
    sa.Column("exception_type", sa.Integer, nullable=False),
)

shapes = sa.Table(
    "tr_shapes",
    metadata,
    _feed_id(),
    sa.Column("shape_id", Id, primary_key=True),
    sa.Column("coordinates", sa.Text, nullable=False),  # JSON [[lon, lat], ...] in sequence order
    sa.Column("min_lon", sa.Float, nullable=False),
    sa.Column("min_lat", sa.Float, nullable=False),
    sa.Column("max_lon", sa.Float, nullable=False),
    sa.Column("max_lat", sa.Float, nullable=False),
)

trips = sa.Table(
    "tr_trips",
    metadata,
    _feed_id(),
    sa.Column("trip_id", Id, primary_key=True),
    sa.Column("route_id", Id, nullable=False),
    sa.Column("service_id", Id, nullable=False),
    sa.Column("trip_headsign", sa.Text),
    sa.Column("trip_short_name", sa.Text),
    sa.Column("direction_id", sa.Integer),
    sa.Column("block_id", Id),
    sa.Column("shape_id", Id),
    sa.Column("wheelchair_accessible", sa.Integer),
    sa.Index("ix_tr_trips_route", "feed_id", "route_id"),
)

stop_times = sa.Table(
    "tr_stop_times",
    metadata,
    _feed_id(),
    sa.Column("trip_id", Id, primary_key=True),
    sa.Column("stop_sequence", sa.Integer, primary_key=True),
    sa.Column("stop_id", Id, nullable=False),
    sa.Column("arrival_s", sa.Integer),  # empty between timepoints: interpolated when read
    sa.Column("departure_s", sa.Integer),
    sa.Column("stop_headsign", sa.Text),
    sa.Column("pickup_type", sa.Integer),
    sa.Column("drop_off_type", sa.Integer),
    sa.Column("shape_dist_traveled", sa.Float),
    sa.Column("timepoint", sa.Integer),
)

frequencies = sa.Table(
    "tr_frequencies",
    metadata,
    _feed_id(),
    sa.Column("trip_id", Id, primary_key=True),
    sa.Column("start_s", sa.Integer, primary_key=True),
    sa.Column("end_s", sa.Integer, nullable=False),
    sa.Column("headway_secs", sa.Integer, nullable=False),
    sa.Column("exact_times", sa.Integer),
)

# The GTFS files' tables, by the codec's table name (edge.contract.gtfs.static.TABLES).
GTFS_TABLES: dict[str, sa.Table] = {
    "agency": agency,
    "stops": stops,
    "routes": routes,
    "calendar": calendar,
    "calendar_dates": calendar_dates,
    "shapes": shapes,
    "trips": trips,
    "stop_times": stop_times,
    "frequencies": frequencies,
}
# GTFS column -> our column, where they differ (times in seconds).
RENAMED = {
    "arrival_time": "arrival_s",
    "departure_time": "departure_s",
    "start_time": "start_s",
    "end_time": "end_s",
}


# -- GTFS-Realtime: the reader's state, its outbox, the service alerts it keeps, its refusals.

rt_sources = sa.Table(
    "tr_rt_sources",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),  # the reader's id: the `gateway` of its batches
    sa.Column("operator", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),  # the last batch sequence number stamped
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)

rt_urls = sa.Table(
    "tr_rt_urls",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("url", sa.String(2000), primary_key=True),
    sa.Column("etag", sa.String(500)),
    sa.Column("last_modified", sa.String(100)),
    sa.Column("header_ts", sa.BigInteger),  # the feed header's timestamp, seconds
    sa.Column("body_sha256", sa.String(64)),
    sa.Column("advanced_ms", sa.BigInteger),  # when header_ts last moved forward, by our clock
)

rt_outbox = sa.Table(
    "tr_rt_outbox",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("readings", sa.LargeBinary, nullable=False),  # the batch's JSON `readings` array
    sa.Column("n_readings", sa.Integer, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)

rt_alerts = sa.Table(
    "tr_rt_alerts",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("alert_id", Id, primary_key=True),  # the FeedEntity id
    sa.Column("url", sa.String(2000), nullable=False),  # the feed URL it came from
    sa.Column("cause", sa.String(40)),
    sa.Column("effect", sa.String(40)),
    sa.Column("severity", sa.String(40)),
    sa.Column("header_text", sa.Text),
    sa.Column("description_text", sa.Text),
    sa.Column("link", sa.Text),  # the alert's own `url`: more about it
    sa.Column("content_sha256", sa.String(64), nullable=False),
    sa.Column("first_seen_ms", sa.BigInteger, nullable=False),
    sa.Column("last_seen_ms", sa.BigInteger, nullable=False),
    sa.Column("ended_ms", sa.BigInteger),  # gone from the feed (or deleted in a differential one)
)

rt_alert_periods = sa.Table(
    "tr_rt_alert_periods",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("alert_id", Id, primary_key=True),
    sa.Column("n", sa.Integer, primary_key=True),
    sa.Column("start_ms", sa.BigInteger),  # open ends are NULL, as in the feed
    sa.Column("end_ms", sa.BigInteger),
)

rt_alert_entities = sa.Table(
    "tr_rt_alert_entities",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("alert_id", Id, primary_key=True),
    sa.Column("n", sa.Integer, primary_key=True),
    sa.Column("agency_id", Id),
    sa.Column("route_id", Id),
    sa.Column("route_type", sa.Integer),
    sa.Column("direction_id", sa.Integer),
    sa.Column("trip_id", Id),
    sa.Column("stop_id", Id),
)

rt_rejects = sa.Table(
    "tr_rt_rejects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(64), nullable=False, index=True),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.String(40), nullable=False),
    sa.Column("field", sa.String(200), nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("entity_id", Id),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("body_sha256", sa.String(64), nullable=False),
)

RT_TABLES = (rt_sources, rt_urls, rt_outbox, rt_alerts, rt_alert_periods, rt_alert_entities, rt_rejects)


def _create_static(conn: Connection) -> None:
    metadata.create_all(conn, tables=[feeds, current, *GTFS_TABLES.values()])


def _create_realtime(conn: Connection) -> None:
    metadata.create_all(conn, tables=list(RT_TABLES))


MIGRATIONS: Sequence[Migration] = (
    Migration(1, "static GTFS feeds per operator", _create_static),
    Migration(2, "GTFS-Realtime reader state, outbox, service alerts, refusals", _create_realtime),
)
