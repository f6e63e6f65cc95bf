"""The detector registry: streaming anomaly detectors registered by the name the CLI and rules use."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, ClassVar, Self

from cloud.core.plugins import Registry, UnknownPluginError
from cloud.rules.detectors.state import restore, snapshot


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
