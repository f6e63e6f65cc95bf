"""Rules of one class on one field judged together: a quiet reading costs one check, not one call per rule.

A group keeps which series some member is holding or firing (engaged): a reading of an engaged
series goes to every member even when it looks quiet, since it may be the one that resolves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

from cloud.core.alerts import Alert
from cloud.rules.hysteresis import Hysteresis, SeriesId
from edge.contract import Reading


class HasHysteresis(Protocol):
    @property
    def hysteresis(self) -> Hysteresis: ...


R = TypeVar("R", bound=HasHysteresis)


class RuleGroup(Generic[R]):
    def __init__(self, rules: list[R]) -> None:
        self.rules = rules
        self.engaged: set[SeriesId] = set()  # series some member is holding or firing

    def observe(self, reading: Reading) -> list[Alert]:
        raise NotImplementedError

    def observe_many(self, readings: Sequence[Reading], keys: Sequence[SeriesId]) -> list[tuple[int, Alert]]:
        """`observe` each reading of one message in turn, each alert with its reading's index
        (`Rule.observe_many`)."""
        out: list[tuple[int, Alert]] = []
        observe = self.observe
        for i, reading in enumerate(readings):
            found = observe(reading)
            if found:
                out.extend([(i, a) for a in found])
        return out

    def judge_all(self, key: SeriesId, judge: Callable[[R], list[Alert]]) -> list[Alert]:
        """Every member's verdict on one reading of series `key`; then whether it stays engaged."""
        out: list[Alert] = []
        for rule in self.rules:
            out.extend(judge(rule))
        if any(rule.hysteresis.is_engaged(key) for rule in self.rules):
            self.engaged.add(key)
        else:
            self.engaged.discard(key)
        return out
