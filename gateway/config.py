"""The gateway configuration, declared once and validated with errors that name path and value."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edge.contract import BrokerAddress, ContractError, Id, SensorKind, short_repr
from edge.contract.areas import Areas, load_areas
from edge.contract.ids import RESERVED_ORGS
from edge.drivers import DriverConfig, UnknownDriverError, all_drivers, get


class ConfigError(ValueError):
    """A gateway config that does not validate; `problems` are `path: message` lines."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


class _SensorProblemsError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def _loc(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def problems_of(exc: ValidationError, prefix: str = "") -> list[str]:
    lines = []
    for err in exc.errors(include_url=False):
        path = _loc((*([prefix] if prefix else []), *err["loc"]))
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, _SensorProblemsError):
            lines.extend(cause.problems)
        elif isinstance(cause, ContractError):
            lines.append(f"{path}: {cause.message}: {short_repr(cause.value)}")
        elif err["type"] in ("missing", "extra_forbidden"):
            lines.append(f"{path}: {err['msg'].lower()}")
        else:
            lines.append(f"{path}: {short_repr(err.get('input'))} — {err['msg']}")
    return lines


def _sensor_configs(value: Any) -> Any:
    """Validate each sensor entry with its driver's own Config, keeping the entry's path."""
    if not isinstance(value, list):
        return value
    out: list[DriverConfig] = []
    problems: list[str] = []
    for i, entry in enumerate(value):
        if isinstance(entry, DriverConfig):
            out.append(entry)
            continue
        if not isinstance(entry, dict) or "driver" not in entry:
            problems.append(f"sensors[{i}].driver: field required (the driver's name)")
            continue
        try:
            driver = get(str(entry["driver"]))
        except UnknownDriverError as exc:
            problems.append(
                f"sensors[{i}].driver: {entry['driver']!r} is not a known driver; known: "
                + ", ".join(exc.known)
            )
            continue
        try:
            out.append(driver.Config.model_validate(entry))
        except ValidationError as exc:
            problems.extend(problems_of(exc, f"sensors[{i}]"))
    if problems:
        raise _SensorProblemsError(problems)
    return out


def _areas(info: ValidationInfo) -> Areas:
    """The areas a config is checked against: the caller's (`parse(..., areas=)`), else Prato."""
    context = info.context if isinstance(info.context, dict) else {}
    areas = context.get("areas")
    return areas if isinstance(areas, Areas) else default_areas()


@cache
def default_areas() -> Areas:
    return load_areas()


class Location(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    description: str = ""  # mounting notes: pole, cabinet, side of the street

    @model_validator(mode="after")
    def _in_an_area(self, info: ValidationInfo) -> Self:
        # Where gateways may stand: the deployment's areas (edge/contract/areas.py). A location
        # outside every one is a typo (swapped lat/lon, a sign, another city).
        _areas(info).require(self.lat, self.lon)
        return self


class BrokerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password_file: Path | None = None  # a secret never sits in the config itself
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    # Reconnect after a lost connection with jittered exponential backoff between these bounds
    # (whole seconds: paho's reconnect timer counts in seconds).
    reconnect_min_s: int = Field(default=1, ge=1, le=600)
    reconnect_max_s: int = Field(default=60, ge=1, le=3600)
    # TLS (used for mqtts:// URLs, or whenever a CA file is given): the broker's CA bundle
    # (None: the system's), and a client certificate and key for mutual TLS.
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    max_inflight: int = Field(default=200, ge=1, le=10_000)  # unacknowledged messages on the wire

    @model_validator(mode="after")
    def _tls_pairs(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give both cert_file and key_file (mutual TLS), or neither")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError(
                f"reconnect_max_s ({self.reconnect_max_s}) is below reconnect_min_s ({self.reconnect_min_s})"
            )
        return self

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        BrokerAddress.parse(url, field="url")
        return url

    def address(self, override_url: str | None = None) -> BrokerAddress:
        parsed = BrokerAddress.parse(override_url or self.url)
        password = self.password_file.read_text().strip() if self.password_file else parsed.password
        return BrokerAddress(parsed.host, parsed.port, parsed.tls, self.username or parsed.username, password)


class BatchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_readings: int = Field(default=500, ge=1, le=10_000)
    max_interval_s: float = Field(default=1.0, gt=0, le=300)
    max_bytes: int = Field(default=262_144, ge=4096, le=900_000)  # under ingest's 1 MiB cap


class SpoolConfig(BaseModel):
    """The on-disk queue (gateway/spool.py) and its drop policy when full."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_mb: float = Field(default=256, gt=0, le=1_000_000)
    min_free_disk_mb: float = Field(default=64, ge=0, le=1_000_000)
    # power-loss: every commit is fsynced; process-crash: survives SIGKILL, not a power cut,
    # and costs less on SD cards.
    durability: Literal["power-loss", "process-crash"] = "power-loss"
    # Kinds dropped first when the spool is full (oldest first); then the others; health last.
    low_priority_kinds: list[SensorKind] = []


SensorList = Annotated[list[DriverConfig], BeforeValidator(_sensor_configs)]


class GatewayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id
    org: Id
    name: str = ""
    location: Location | None = None
    broker: BrokerConfig = BrokerConfig()
    batch: BatchConfig = BatchConfig()
    health_interval_s: float = Field(default=10.0, gt=0, le=3600)
    spool: SpoolConfig = SpoolConfig()
    # A label for this configuration, reported as `config_version` (None: a digest of it).
    version: str | None = Field(default=None, min_length=1, max_length=64)
    sensors: SensorList = Field(min_length=1)
    # The areas it was checked against, so that a remote config is checked against the same.
    _areas: Areas | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _remember_areas(self, info: ValidationInfo) -> Self:
        self._areas = _areas(info)
        return self

    @property
    def areas(self) -> Areas:
        return self._areas or default_areas()

    @field_validator("org")
    @classmethod
    def _org(cls, org: str) -> str:
        if org in RESERVED_ORGS:
            raise ValueError(f"{org!r} is reserved for the cloud's topics")
        return org

    @field_validator("sensors")
    @classmethod
    def _unique_ids(cls, sensors: list[DriverConfig]) -> list[DriverConfig]:
        seen: set[str] = set()
        problems: list[str] = []
        ports: dict[str, int] = {}
        euis: dict[str, int] = {}
        for i, s in enumerate(sensors):
            if s.id in seen:
                problems.append(f"sensors[{i}].id: {s.id!r} is used twice")
            seen.add(s.id)
            # Two drivers on one serial line would steal each other's bytes.
            port = getattr(s, "port", None)
            if isinstance(port, str):
                if port in ports:
                    problems.append(f"sensors[{i}].port: {port!r} is already used by sensors[{ports[port]}]")
                ports.setdefault(port, i)
            # A LoRaWAN device listed twice would report as two bays.
            for eui in getattr(s, "devices", None) or {}:
                key = str(eui).lower()
                if key in euis:
                    problems.append(
                        f"sensors[{i}].devices: {eui!r} is already listed by sensors[{euis[key]}]"
                    )
                euis.setdefault(key, i)
        if problems:
            # Reported by entry path, not as `sensors: <the whole list> — ...`.
            raise _SensorProblemsError(problems)
        return sensors


def load(path: Path, areas: Areas | None = None) -> GatewayConfig:
    """Load and validate a YAML gateway config; raises ConfigError naming file, path and value.
    Its location must lie in one of `areas` (None: the default areas, Prato)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), [f"cannot read: {exc}"]) from None
    return parse(raw, str(path), areas)


def parse(raw: Any, source: str = "<config>", areas: Areas | None = None) -> GatewayConfig:
    if not isinstance(raw, dict):
        raise ConfigError(source, [f"expected a mapping at the top level, got {type(raw).__name__}"])
    try:
        return GatewayConfig.model_validate(raw, context={"areas": areas or default_areas()})
    except ValidationError as exc:
        raise ConfigError(source, problems_of(exc)) from None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a gateway config file, for editors (YAML language servers).

    `sensors` is validated at run time by each driver's own Config; here its items are the
    union of every registered driver's schema, told apart by `driver`.
    """
    schema = GatewayConfig.model_json_schema()
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    variants = []
    for name, driver in sorted(all_drivers().items()):
        sub = driver.Config.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        title = f"sensor_{name}"
        defs[title] = sub
        variants.append({"$ref": f"#/$defs/{title}"})
    schema["properties"]["sensors"] = {
        "type": "array",
        "minItems": 1,
        "items": {"oneOf": variants},
        "description": "The gateway's sensors; `driver` names the driver, whose options follow.",
    }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Situation Room gateway config"
    return schema
