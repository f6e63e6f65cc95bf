"""The driver registry: each driver registers under the name a gateway config uses.

A driver turns what a device (or a simulator) produces into canonical readings. It declares
its pydantic `Config` — whose `driver` field is a `Literal` of the driver's name, so that a
gateway config is a list discriminated on `driver` — and the `kind` of the readings it
produces, and opens a `Source` from the config. `declaration(config)` is what the gateway
tells the cloud about that sensor (its entry in the retained `.../meta`, edge.contract.meta).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar, cast

from pydantic import BaseModel, ConfigDict

from edge.contract import Id, Reading, SensorKind, SensorMeta

if TYPE_CHECKING:
    from edge.drivers.framing import DecoderOutput


class UnknownDriverError(KeyError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown driver {name!r}; known: {', '.join(known)}")


class DriverConfig(BaseModel):
    """Common fields of every sensor entry in a gateway config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    driver: str
    id: Id  # the sensor id, unique within its gateway

    def device_sensors(self) -> tuple[str, ...]:
        """A source of many devices: the sensor ids of the devices it lists (none by default)."""
        return ()

    def reports_unlisted_devices(self) -> bool:
        """A source of many devices: whether devices it does not list report too (as `eui-...`)."""
        return False


@dataclass(frozen=True, slots=True)
class SourceContext:
    """What a source needs to know about where it runs."""

    org: str
    gateway: str
    seed: int  # sources derive their randomness from it, so a run can be replayed exactly
    start: datetime  # the (simulated) instant the gateway started


class Source(Protocol):
    """A running sensor. `poll` returns every reading due up to `now`, with its own timestamp.

    Sources of real devices also have `stats() -> dict[str, Any]` (optional, see `stats_of`):
    link state, bytes, frames ok, rejects by reason, last error, radio quality.
    """

    def poll(self, now: datetime) -> list[Reading]: ...

    def close(self) -> None: ...


class Driver(Protocol):
    name: ClassVar[str]
    Config: ClassVar[type[DriverConfig]]
    kind: ClassVar[SensorKind]  # the kind of every reading it produces

    @classmethod
    def open(cls, config: DriverConfig, ctx: SourceContext) -> Source: ...


_DRIVERS: dict[str, type[Driver]] = {}

D = TypeVar("D", bound=type[Driver])


def register(name: str) -> Callable[[D], D]:
    def add(driver: D) -> D:
        if name in _DRIVERS:
            raise ValueError(f"driver {name!r} registered twice")
        driver.name = name
        _DRIVERS[name] = driver
        return driver

    return add


def get(name: str) -> type[Driver]:
    try:
        return _DRIVERS[name]
    except KeyError:
        raise UnknownDriverError(name, sorted(_DRIVERS)) from None


def all_drivers() -> dict[str, type[Driver]]:
    return dict(sorted(_DRIVERS.items()))


def declaration(config: DriverConfig) -> SensorMeta:
    """What a gateway declares about one of its sensors: id, kind, driver, a source's devices."""
    return SensorMeta(
        id=config.id,
        kind=get(config.driver).kind,
        driver=config.driver,
        devices=config.device_sensors(),
        unlisted_devices=config.reports_unlisted_devices(),
    )


class StreamDecoder(Protocol):
    """A sans-IO decoder: `feed` takes the next bytes of a stream (serial drivers) or one whole
    message (LoRaWAN uplink event) and returns readings and rejects; `stats` its counters."""

    def feed(self, data: bytes) -> DecoderOutput: ...

    def stats(self) -> dict[str, Any]: ...


class DecodingDriver(Driver, Protocol):
    """A driver of a real device: it also exposes its decoder, for the CLI, vectors and bench."""

    framing: ClassVar[Literal["stream", "message"]]  # message: one uplink event per `feed`

    @classmethod
    def decoder(cls, config: DriverConfig, ctx: SourceContext) -> StreamDecoder: ...


class NotADecoderError(ValueError):
    def __init__(self, name: str, decoding: list[str]) -> None:
        self.name = name
        self.decoding = decoding
        super().__init__(f"driver {name!r} decodes no device bytes; these do: {', '.join(decoding)}")


def is_decoding(driver: type[Driver]) -> bool:
    return callable(getattr(driver, "decoder", None)) and hasattr(driver, "framing")


def decoding_drivers() -> dict[str, type[DecodingDriver]]:
    return {n: cast("type[DecodingDriver]", d) for n, d in all_drivers().items() if is_decoding(d)}


def get_decoding(name: str) -> type[DecodingDriver]:
    driver = get(name)
    if not is_decoding(driver):
        raise NotADecoderError(name, sorted(decoding_drivers()))
    return cast("type[DecodingDriver]", driver)


def folder(driver: type[Driver]) -> Path:
    """The driver's folder (README.md, sample.yaml, vectors.yaml beside its code)."""
    return Path(inspect.getfile(driver)).parent


def stats_of(source: Source) -> dict[str, Any] | None:
    """A source's `stats()`, when it has one (simulated sources have none)."""
    stats = getattr(source, "stats", None)
    return stats() if callable(stats) else None
