"""The driver registry: each driver registers under the name a gateway config uses.

A driver turns what a device (or a simulator) produces into canonical readings. It declares
its pydantic `Config` — whose `driver` field is a `Literal` of the driver's name, so that a
gateway config is a list discriminated on `driver` — and opens a `Source` from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from edge.contract import Id, Reading


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


@dataclass(frozen=True, slots=True)
class SourceContext:
    """What a source needs to know about where it runs."""

    org: str
    gateway: str
    seed: int  # sources derive their randomness from it, so a run can be replayed exactly
    start: datetime  # the (simulated) instant the gateway started


class Source(Protocol):
    """A running sensor. `poll` returns every reading due up to `now`, with its own timestamp."""

    def poll(self, now: datetime) -> list[Reading]: ...

    def close(self) -> None: ...


class Driver(Protocol):
    name: ClassVar[str]
    Config: ClassVar[type[DriverConfig]]

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
