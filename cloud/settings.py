"""Cloud settings: one object per process, from `SITROOM_*` environment variables or flags."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from edge.contract import DEFAULT_MAX_PAYLOAD_BYTES, BrokerAddress


class CloudSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SITROOM_", extra="forbid")

    mqtt_url: str = "mqtt://127.0.0.1:1883"
    influx_url: str = "http://127.0.0.1:8086"
    influx_db: str = Field(default="sitroom", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    influx_username: str | None = None
    influx_password: str | None = None
    instance: str = Field(default="main", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    # Subscribe to one organisation's gateways only ("+" = all); tests use it to stay apart.
    org_filter: str = Field(default="+", pattern=r"^(\+|[a-z0-9][a-z0-9-]{0,62})$")

    # ingest
    max_payload_bytes: int = Field(default=DEFAULT_MAX_PAYLOAD_BYTES, ge=1024)
    max_future_s: float = Field(default=300.0, ge=0)
    max_age_days: float = Field(default=30.0, gt=0)
    write_batch_points: int = Field(default=5000, ge=1)
    write_linger_ms: float = Field(default=200.0, ge=0)
    buffer_messages: int = Field(default=2000, ge=1)
    stats_interval_s: float = Field(default=5.0, gt=0)

    # rules
    rules_file: str | None = None

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, url: str) -> str:
        BrokerAddress.parse(url, field="mqtt_url")
        return url

    @property
    def broker(self) -> BrokerAddress:
        return BrokerAddress.parse(self.mqtt_url, field="mqtt_url")
