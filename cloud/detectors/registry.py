"""The detector registry: streaming anomaly detectors registered by the name the CLI and rules use."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, TypeVar


class Detector:
    """One series' streaming detector. `pvalue(ts, value)` judges `value` on the earlier rows
    only (its tail probability: small is rare), then learns it."""

    name: ClassVar[str]

    @property
    def baseline(self) -> float | None:
        """The value this detector expected for the last reading, when it has such a notion."""
        return None

    def pvalue(self, ts: float, value: float) -> float:
        raise NotImplementedError


_DETECTORS: dict[str, type[Detector]] = {}
D = TypeVar("D", bound=type[Detector])


class UnknownDetectorError(KeyError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.detector = name
        self.known = known
        super().__init__(f"unknown detector {name!r}; known: {', '.join(known)}")


def register(name: str) -> Callable[[D], D]:
    def add(cls: D) -> D:
        if name in _DETECTORS:
            raise ValueError(f"detector {name!r} registered twice")
        cls.name = name
        _DETECTORS[name] = cls
        return cls

    return add


def get(name: str) -> type[Detector]:
    try:
        return _DETECTORS[name]
    except KeyError:
        raise UnknownDetectorError(name, sorted(_DETECTORS)) from None


def names() -> list[str]:
    return sorted(_DETECTORS)
