"""The detector registry: streaming anomaly detectors registered by the name the CLI and rules use."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import ClassVar

from cloud.core.plugins import Registry, UnknownPluginError


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


class UnknownDetectorError(UnknownPluginError):
    what = "detector"


_DETECTORS: Registry[Detector] = Registry("detector", "name", UnknownDetectorError)
register = _DETECTORS.register
get = _DETECTORS.get
names = _DETECTORS.names
all_detectors = _DETECTORS.all


def folder(cls: type[Detector]) -> Path:
    """The detector's folder (README.md, sample.yaml, cases.yaml beside its code)."""
    return Path(inspect.getfile(cls)).parent
