"""The detector registry: streaming anomaly detectors registered by the name the CLI and rules use."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from cloud.detectors.state import restore, snapshot
from cloud.plugins import Registry, UnknownPluginError


class Detector:
    """One series' streaming detector. `pvalue(ts, value)` judges `value` on the earlier rows
    only (its tail probability: small is rare), then learns it."""

    name: ClassVar[str]
    __slots__ = ()

    @property
    def baseline(self) -> float | None:
        """The value this detector expected for the last reading, when it has such a notion."""
        return None

    def pvalue(self, ts: float, value: float) -> float:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """Everything this detector has learnt, as JSON-able data (`cloud.detectors.state`)."""
        return {"detector": self.name, "fields": snapshot(self)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """A detector that goes on exactly where the one that gave `state()` stopped."""
        if state.get("detector") != cls.name:
            raise ValueError(f"detector: state of {state.get('detector')!r}, not of {cls.name!r}")
        return restore(cls(), state["fields"])


class UnknownDetectorError(UnknownPluginError):
    what = "detector"


_DETECTORS: Registry[Detector] = Registry("detector", "name", UnknownDetectorError)
register = _DETECTORS.register
get = _DETECTORS.get
names = _DETECTORS.names
