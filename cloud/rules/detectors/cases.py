"""Cases kept beside each detector (`cases.yaml`): a series in, the rows that must and must not score high.

A case builds one series from pieces (`{rows: 2016, value: {mean: 100, daily: 40, noise: 2}}`,
`{rows: 1, value: 300}`: a constant or a `synthetic.Wave`), one row every `every_min` minutes
from midnight UTC of a Monday, scores it with a fresh detector, and checks that every row in
`above` scores at least `score_above` and every row in `below` less. Rows are 0-based indices
or slices `"start:stop"` (`"288:"` is every row from the 289th).
"""

from __future__ import annotations

import random
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cloud.rules.detectors.calibration import score_from_p
from cloud.rules.detectors.registry import folder, get
from cloud.rules.synthetic import Wave, value_at

T0_S = 1_793_577_600.0  # 2026-11-02T00:00:00Z, a Monday: row 0
RowSpec = int | str


class Piece(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rows: int = Field(ge=1)
    value: float | Wave


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str
    every_min: float = Field(default=5.0, gt=0)
    seed: int = 0  # of the waves' noise
    score_above: float = Field(default=0.8, gt=0, le=1)  # the rules' default alert threshold
    series: list[Piece] = Field(min_length=1)
    above: list[RowSpec] = []
    below: list[RowSpec] = []

    @field_validator("above", "below")
    @classmethod
    def _rows(cls, specs: list[RowSpec]) -> list[RowSpec]:
        for spec in specs:
            if isinstance(spec, str) and (spec.count(":") != 1 or not spec.replace(":", "").isdigit()):
                raise ValueError(f"{spec!r} is neither a row index nor a slice 'start:stop'")
        return specs

    def values(self) -> list[tuple[float, float]]:
        """(ts in epoch seconds, value) of every row."""
        rnd = random.Random(self.seed)
        out: list[tuple[float, float]] = []
        for piece in self.series:
            for _ in range(piece.rows):
                minutes = len(out) * self.every_min
                out.append((T0_S + 60 * minutes, value_at(piece.value, minutes, rnd)))
        return out


class CasesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cases: list[Case] = Field(min_length=1)


def load(path: Path) -> list[Case]:
    return CasesFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8"))).cases


def cases_of(name: str) -> list[Case]:
    return load(folder(get(name)) / "cases.yaml")


def rows(specs: list[RowSpec], n: int) -> list[int]:
    out: list[int] = []
    for spec in specs:
        if isinstance(spec, int):
            out.append(spec)
        else:
            start, _, stop = spec.partition(":")
            out.extend(range(int(start or 0), int(stop) if stop else n))
    return out


def scores(name: str, case: Case) -> list[float]:
    detector = get(name)()
    return [score_from_p(detector.pvalue(ts, value)) for ts, value in case.values()]


def problems(name: str, case: Case) -> list[str]:
    """Every row the case gets wrong, with its score (none: the case passes)."""
    got = scores(name, case)
    n = len(got)
    out = [f"row {i} does not exist (the series has {n})" for i in rows(case.above + case.below, n) if i >= n]
    out += [
        f"row {i} scored {got[i]:.3f}, under {case.score_above}"
        for i in rows(case.above, n)
        if i < n and got[i] < case.score_above
    ]
    out += [
        f"row {i} scored {got[i]:.3f}, at or above {case.score_above}"
        for i in rows(case.below, n)
        if i < n and got[i] >= case.score_above
    ]
    return out
