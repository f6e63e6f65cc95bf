"""The detector registry: streaming anomaly detectors registered by the name the CLI and rules use."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Self

from cloud.core.plugins import Registry, UnknownPluginError
from cloud.rules.detectors.state import restore, snapshot


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a detector expected of the reading it last judged, for an alert to explain itself:
    a band of ordinary values, what it rests on and how much history that has."""

    low: float
    high: float
    basis: str  # "hour-of-week", "time-of-week", "time-of-day", "recent level"; "stuck", "range"
    history: str  # "6 weeks", "4 days", "5 readings"
    slot_s: float = 0.0  # the width of the profile slot (0: no profile)

    def describe(self, ts: datetime) -> str:
        """`expected 210-270 for Tue 08:00 (hour-of-week baseline, 6 weeks)`; times in UTC."""
        if self.basis == "stuck":
            return self.history
        band = f"expected {number(self.low)}\N{EN DASH}{number(self.high)}"
        if self.basis == "range":
            return f"{band}: beyond {self.history}"
        if self.slot_s <= 0:
            return f"{band} ({self.basis}, {self.history})"
        start = datetime.fromtimestamp(ts.timestamp() // self.slot_s * self.slot_s, UTC)
        when = f"{start:%a %H:%M}" if self.basis.endswith("week") else f"{start:%H:%M}"
        return f"{band} for {when} ({self.basis} baseline, {self.history})"


def number(x: float) -> str:
    """A value as an operator reads it: no more digits than the size calls for."""
    size = abs(x)
    if size >= 100 or x == int(x):
        return f"{x:,.0f}"
    return f"{x:.1f}" if size >= 10 else f"{x:.2f}"


class Detector:
    """One series' streaming detector. `pvalue(ts, value)` judges `value` on the earlier rows
    only (its tail probability: small is rare), then learns it."""

    name: ClassVar[str]
    # True when `pvalue` reports a departure at its onset only (p = 1 while it lasts): then
    # `rarity` is the unfiltered p of the last reading, which rules clear on.
    reports_onsets: ClassVar[bool] = False
    __slots__ = ()

    @property
    def rarity(self) -> float:
        """Such a detector's unfiltered p of the last reading."""
        raise NotImplementedError

    @property
    def baseline(self) -> float | None:
        """The value this detector expected for the last reading, when it has such a notion."""
        return None

    def expectation(self) -> Expectation | None:
        """The band this detector expected the last reading in, when it has such a notion."""
        return None

    def pvalue(self, ts: float, value: float) -> float:
        raise NotImplementedError

    @classmethod
    def pvalues(cls, detectors: Sequence[Self], ts: Sequence[float], values: Sequence[float]) -> list[float]:
        """`pvalue` of each detector for its reading, no detector twice: the series of one
        message judged in one call. A detector that judges series together more cheaply
        overrides it; the p-values, `rarity` and state must be exactly those of the calls one
        by one (tests/cloud/test_detector_streaming.py checks every detector)."""
        return [d.pvalue(t, v) for d, t, v in zip(detectors, ts, values, strict=True)]

    def state(self) -> dict[str, Any]:
        """Everything this detector has learnt, as JSON-able data (`cloud.rules.detectors.state`)."""
        return {"detector": self.name, "fields": snapshot(self)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """A detector that goes on exactly where the one that gave `state()` stopped."""
        if state.get("detector") != cls.name:
            raise ValueError(f"detector: state of {state.get('detector')!r}, not of {cls.name!r}")
        return restore(cls(), state["fields"])


class UnknownDetectorError(UnknownPluginError):
    what = "detector"


# The detector the default rules use; `detector: default` in a rule and `--detector default` in
# `sitroom rules replay` name it, so the two never drift apart (bench/detection.py chose it).
DEFAULT = "onset"
ALIAS = "default"

_DETECTORS: Registry[Detector] = Registry("detector", "name", UnknownDetectorError)
register = _DETECTORS.register
names = _DETECTORS.names
all_detectors = _DETECTORS.all


def get(name: str) -> type[Detector]:
    """The detector registered as `name`; `default` is DEFAULT."""
    return _DETECTORS.get(DEFAULT if name == ALIAS else name)


def resolve(name: str) -> str:
    """The registered name `name` stands for (`default` is DEFAULT)."""
    return get(name).name


def folder(cls: type[Detector]) -> Path:
    """The detector's folder (README.md, sample.yaml, cases.yaml beside its code)."""
    return Path(inspect.getfile(cls)).parent
