"""Cloud settings: one object per process, from `SITROOM_*` environment variables or flags."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from edge.contract import DEFAULT_MAX_PAYLOAD_BYTES, BrokerAddress


class CloudSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SITROOM_", extra="forbid")

    mqtt_url: str = "mqtt://127.0.0.1:1883"
    # The broker identity (`sitroom provision service add`): a username, and the file holding
    # the password, so that the secret is in neither the environment nor the URL.
    mqtt_username: str | None = None
    mqtt_password_file: str | None = None
    influx_url: str = "http://127.0.0.1:8086"
    influx_db: str = Field(default="sitroom", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    influx_username: str | None = None
    influx_password: str | None = None
    instance: str = Field(default="main", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    # The areas file (edge/contract/areas.py) every process of a deployment reads; None: Prato.
    areas: str | None = None
    # The data policy (cloud/io/influx/policy.py, deploy/data-policy.yaml): which measurements
    # stay in each organisation's own database; None: one database for everything.
    data_policy: str | None = None
    # Subscribe to these organisations' gateways only: "+" = all, or a comma-separated list
    # ("alia,publiacqua"). A rules instance serves its shard this way (docs/scale-out.md); tests
    # use it to stay apart.
    org_filter: str = Field(default="+", pattern=r"^(\+|[a-z0-9][a-z0-9-]{0,62}(,[a-z0-9][a-z0-9-]{0,62})*)$")
    # The rules service only: serve the organisations whose home area (their first, in the
    # organisation registry of `worksites_db`) is one of these comma-separated area ids.
    area_filter: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,62}(,[a-z0-9][a-z0-9-]{0,62})*$"
    )

    # ingest
    max_payload_bytes: int = Field(default=DEFAULT_MAX_PAYLOAD_BYTES, ge=1024)
    max_future_s: float = Field(default=300.0, ge=0)
    max_age_days: float = Field(default=30.0, gt=0)
    write_batch_points: int = Field(default=5000, ge=1)
    write_linger_ms: float = Field(default=200.0, ge=0)
    buffer_messages: int = Field(default=2000, ge=1)
    stats_interval_s: float = Field(default=5.0, gt=0)
    # Bounded memory: messages received but not yet written, by count and by bytes. When full,
    # paho's network thread stops reading and QoS 1 keeps the rest in the broker.
    buffer_bytes: int = Field(default=64 * 1_048_576, ge=1_048_576)
    # Concurrent /write requests (one HTTP connection each). Acks still go out in receive order.
    write_workers: int = Field(default=2, ge=1, le=16)
    # Gzip a /write body from this size on; 0 never. Off by default: on loopback or a LAN it only
    # costs CPU on both sides (bench/ingest.py measures it); turn it on across a WAN.
    influx_gzip_min_bytes: int = Field(default=0, ge=0)
    # MQTT for ingest: v5 gives session expiry; shared subscriptions work with v3.1.1 and v5 on
    # Mosquitto 2, EMQX, VerneMQ and HiveMQ. With `share_group` set, every worker subscribes to
    # `$share/{share_group}/sr/v1/...` and the broker splits the messages between them.
    mqtt_protocol: Literal["3.1.1", "5"] = "5"
    share_group: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    session_expiry_s: int = Field(default=7 * 86_400, ge=0, le=2**32 - 1)
    # Per-gateway clock checks: lag = receive time - newest reading ts; clock offset = receive
    # time - the batch's sent_at. An offset beyond the threshold flags the gateway's clock.
    clock_offset_threshold_s: float = Field(default=5.0, gt=0)
    # A file ingest creates once the broker acknowledged its subscriptions, and removes when it
    # stops: a container health check, so that gateways start only when their batches have a
    # subscriber (a fresh broker keeps nothing for a session it never saw).
    ready_file: str | None = None
    # Retention and rollups, created idempotently on start (docs/scale-out.md).
    manage_retention: bool = True
    raw_retention: str = Field(default="30d", pattern=r"^(INF|[1-9][0-9]*[hdw])$")
    rollup_retention: str = Field(default="INF", pattern=r"^(INF|[1-9][0-9]*[hdw])$")

    # rules
    rules_file: str | None = None
    # Relational stores, as SQLAlchemy URLs (sqlite:///PATH or postgresql://user@host/db). The
    # commands read them through their options' env vars (`--alerts-db`, `cloud api --db`).
    alerts_db: str = "sqlite:///.sitroom/alerts.db"
    # What the rules learn per series is checkpointed in the alert store's database this often,
    # after this many messages (acknowledged only then: keep it under the broker's
    # max_inflight_messages) and on shutdown, and restored at start (decision 0018).
    rules_checkpoint_s: float = Field(default=30.0, gt=0)
    rules_checkpoint_messages: int = Field(default=500, ge=1, le=60_000)
    # A folder of gateway configs (firmware_configs/): when set, ingest dead-letters readings of
    # gateways and sensors not listed there, or listed on another gateway (issue 5).
    sensor_directory: str | None = None
    # Grafana: when set, the rules service posts every alert as an annotation (issue 9).
    grafana_url: str | None = None
    grafana_token: str | None = None
    grafana_dashboard_uid: str | None = None  # None: organisation-wide annotations
    # The worksite registry (`cloud api --db`): with it, the rules service writes its state to
    # InfluxDB (`worksite`, cloud/worksites/snapshot.py) every this many seconds and on change.
    worksites_db: str | None = None
    # 0: none (the other instances of a rules service sharded by organisation or area).
    worksite_snapshot_s: float = Field(default=60.0, ge=0)
    # The transit store (`sitroom transit import --db`; by default the API's database): with it,
    # rules see the bus network (park-and-ride departures, bus delays near worksites) and the
    # worksite snapshots name the bus routes each worksite is on.
    transit_db: str | None = None

    @field_validator("worksite_snapshot_s")
    @classmethod
    def _snapshot_period(cls, value: float) -> float:
        if 0 < value < 5:
            raise ValueError(f"0 (no snapshots) or at least 5 seconds: {value}")
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, url: str) -> str:
        BrokerAddress.parse(url, field="mqtt_url")
        return url

    @property
    def org_filters(self) -> list[str]:
        """The topic levels to subscribe to: ["+"], or each organisation of the list."""
        return self.org_filter.split(",")

    @property
    def broker(self) -> BrokerAddress:
        return broker_address(self.mqtt_url, self.mqtt_username, self.mqtt_password_file)


def broker_address(url: str, username: str | None = None, password_file: str | None = None) -> BrokerAddress:
    """The broker of `url`, as `username` with the password read from `password_file` (one line,
    as `sitroom provision` writes it); each overrides what the URL itself says."""
    parsed = BrokerAddress.parse(url, field="mqtt_url")
    password = Path(password_file).read_text(encoding="utf-8").strip() if password_file else parsed.password
    return replace(parsed, username=username or parsed.username, password=password)


def default_db_url() -> str:
    """The registry (organisations, tokens, worksites) when no URL is given: beside the demo's."""
    return f"sqlite:///{Path.home() / '.local' / 'share' / 'sitroom' / 'worksites.db'}"
