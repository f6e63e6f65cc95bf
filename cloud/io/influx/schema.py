"""Every measurement we write to InfluxDB, declared once: its tags, its fields with their types,
whether and how it is rolled up hourly, and whether it carries the `org` tag.

The sensor kinds come from the contract (edge.contract KINDS: its tags plus `org`, `gateway`,
`sensor` on every reading); the cloud's own measurements are declared here, beside the module
that writes each. Three things read this table:

- `retention.rollups()`: one hourly CQ per rolled-up measurement, each field aggregated as
  declared (`Field.aggregate`);
- the data policy (`policy.py`): every measurement is shared or private, and the policy file
  must say which for each one listed here;
- the static InfluxDB 3 check (tests/cloud/test_influx_schema.py): no tag and field of the same
  name in one measurement, one fixed tag set per measurement, field types that never vary, and
  every line our writers produce conforms to its declaration; `create_table_commands()` writes
  the `influxdb3 create table` commands that fix each table's tag set before the first write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edge.contract import KINDS
from edge.contract.kinds import ENVELOPE_TAGS, Aggregate

ColumnType = Literal["float", "int", "bool", "str"]


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: ColumnType
    aggregate: Aggregate | None = None  # in the hourly rollup, and how; None: left out
    meaningful_if: str | None = None  # a count field that must be above 0 (retention.py)


@dataclass(frozen=True, slots=True)
class Measurement:
    name: str
    tags: tuple[str, ...]
    fields: tuple[Field, ...]
    writer: str  # the module that writes it, for people
    is_rolled_up: bool = False

    @property
    def has_org(self) -> bool:
        """Carries the `org` tag: a data policy can keep it in the organisation's database."""
        return "org" in self.tags

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def rollup_fields(self) -> list[str]:
        """The fields of its hourly rollup (`samples`: raw points behind each rollup point)."""
        names = []
        for f in self.fields:
            if f.aggregate is not None:
                names += [f.name, f"{f.name}_max"] if f.aggregate == "mean_max" else [f.name]
        return [*names, SAMPLES_FIELD]


SAMPLES_FIELD = "samples"


def _kind_measurements() -> list[Measurement]:
    return [
        Measurement(
            spec.kind.value,
            (*spec.tags, *ENVELOPE_TAGS),
            tuple(Field(f.name, f.type, f.rollup, f.meaningful_if) for f in spec.fields),
            "cloud/ingest (edge.contract KINDS)",
            is_rolled_up=True,
        )
        for spec in KINDS.values()
    ]


def _f(names: str, type_: ColumnType, aggregate: Aggregate | None = None) -> tuple[Field, ...]:
    return tuple(Field(n, type_, aggregate) for n in names.split())


# The cloud's own measurements. Counters keep their last value in the rollup (a rate over
# hours is still a derivative of them), gauges their mean or peak as the dashboards read them.
CLOUD_MEASUREMENTS = (
    Measurement(
        "alerts",
        ("rule", "org", "entity", "gateway", "kind", "severity", "state"),
        (*_f("message", "str"), *_f("active unacked since_ms", "int"), *_f("ack_s value threshold", "float")),
        "cloud/io/influx/points.py (the rules service)",
    ),
    Measurement(
        "worksite",
        ("id", "org", "street", "work_type"),
        (
            *_f("state title", "str", "last"),
            *_f("active planned lanes_closed road_closed parking_spaces_removed bus_lines", "int", "last"),
            *_f("days_to_start days_to_end", "float", "last"),
        ),
        "cloud/worksites/snapshot.py (the rules service)",
        is_rolled_up=True,
    ),
    Measurement(
        "worksite_sensor",
        ("id", "org", "sensor"),
        (*_f("distance_m", "float", "last"), *_f("active", "int", "last")),
        "cloud/worksites/snapshot.py (the rules service)",
        is_rolled_up=True,
    ),
    Measurement(
        # The bus routes on each worksite not over (with a transit network), tagged `route` as
        # the transit readings are.
        "worksite_route",
        ("id", "org", "operator", "route"),
        (*_f("name", "str", "last"), *_f("distance_m", "float", "last"), *_f("stops active", "int", "last")),
        "cloud/worksites/snapshot.py (the rules service)",
        is_rolled_up=True,
    ),
    Measurement(
        # Each park-and-ride now: free spaces, stops within a walk, next buses toward `toward`.
        "park_and_ride",
        ("sensor", "toward"),
        (
            *_f("name stops next_departures", "str"),
            *_f("free", "int"),
            *_f("occupancy_pct wait_min", "float"),
        ),
        "cloud/transit/intermodality.py (the rules service)",
    ),
    Measurement(
        "sitroom_deadletter",
        ("reason", "org", "gateway", "instance"),
        (*_f("count payload_size", "int"), *_f("field value message topic sensor payload_sha256", "str")),
        "cloud/ingest/deadletter.py",
    ),
    Measurement(
        "sitroom_gateway_health",
        ("org", "gateway"),
        (
            *_f("uptime_s readings_read readings_published batches_published", "float", "last"),
            *_f("dropped_readings source_errors", "float", "last"),
            # A GTFS-Realtime reader's feeds whose header time stopped advancing.
            *_f("stale_feeds", "float", "max"),
            *_f("queue_depth oldest_queued_age_s cpu_pct rss_mb clock_max_error_s", "float", "max"),
            *_f("disk_free_mb", "float", "mean"),
            *_f("clock_synchronized", "float", "last"),
        ),
        "cloud/ingest/gateway_health.py",
        is_rolled_up=True,
    ),
    Measurement(
        "sitroom_device_health",
        ("org", "gateway", "sensor", "device"),
        (
            # A source's counters (its driver's stats) and each radio device's.
            *_f("frames_ok readings bytes connects disconnects messages queue_dropped", "float", "last"),
            *_f("info_frames repeats sentences ignored rejected", "float", "last"),
            *_f("fix_quality satellites link_up", "float", "last"),
            *_f("hdop altitude_m", "float", "mean"),
            *_f("fcnt fcnt_gaps fcnt_resets uplinks duplicates lora_gateways", "float", "last"),
            *_f("rssi_dbm snr_db temperature_c", "float", "mean"),
        ),
        "cloud/ingest/gateway_health.py",
        is_rolled_up=True,
    ),
    Measurement(
        "sitroom_site",
        ("org", "sensor", "kind"),
        (*_f("lat lon", "float"), *_f("name", "str")),
        "cloud/io/influx/sites.py (the NGSI-LD receiver: partners' places)",
    ),
    Measurement(
        "sitroom_gateway_status",
        ("org", "gateway"),
        (*_f("online", "int"), *_f("reason", "str")),
        "cloud/ingest/gateway_health.py",
    ),
    Measurement(
        "sitroom_gateway_seq",
        # Every ingest worker of a shared group writes the group's accounts (cloud/ingest/seqledger.py).
        ("org", "gateway", "instance"),
        (
            *_f("highest_seq gaps duplicates batches received", "int", "last"),
            *_f("lag_s clock_offset_s", "float", "last"),
            *_f("clock_suspect", "bool", "last"),
        ),
        "cloud/ingest/consumer.py (report)",
        is_rolled_up=True,
    ),
    Measurement(
        "sitroom_ingest",
        ("instance",),
        (
            *_f("messages readings_received readings_written readings_rejected deadletters", "int", "last"),
            *_f("writes write_retries fast_path_fallbacks batch_reports_refused", "int", "last"),
            *_f("last_batch_points buffered buffered_bytes writes_in_flight", "int", "max"),
            *_f("last_write_ms write_ms_max buffer_fill_pct", "float", "max"),
            *_f("readings_per_s write_ms_p50 batch_points_mean", "float", "mean"),
        ),
        "cloud/ingest/consumer.py (report)",
        is_rolled_up=True,
    ),
    # Which retention policy a dashboard reads for a time range (retention.py, `$rp`).
    Measurement(
        "sitroom_rp",
        ("range",),
        (*_f("rp", "str"), *_f("from_ms to_ms", "int")),
        "cloud/io/influx/retention.py",
    ),
)


def measurements() -> dict[str, Measurement]:
    """Every measurement we write, by name: the kinds first, then the cloud's own."""
    return {m.name: m for m in (*_kind_measurements(), *CLOUD_MEASUREMENTS)}


def create_table_commands(database: str) -> list[str]:
    """`influxdb3 create table` for every measurement: InfluxDB 3 fixes a table's tags at its
    first write and refuses new ones later, so tables whose points may omit a tag (an optional
    contract tag, a dead letter without `instance`) are created with their whole tag set first."""
    return [
        f"influxdb3 create table --database {database} --tags {','.join(m.tags)} {m.name}"
        for m in measurements().values()
    ]


__all__ = [
    "CLOUD_MEASUREMENTS",
    "ENVELOPE_TAGS",
    "SAMPLES_FIELD",
    "Field",
    "Measurement",
    "create_table_commands",
    "measurements",
]
