"""The rule registry: rule kinds registered by the name a rules file uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from cloud.rules.base import Rule

_RULES: dict[str, type[Rule]] = {}
R = TypeVar("R", bound=type[Rule])


class UnknownRuleError(KeyError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.known = known
        super().__init__(f"unknown rule {name!r}; known: {', '.join(known)}")


def register(kind: str) -> Callable[[R], R]:
    def add(rule: R) -> R:
        if kind in _RULES:
            raise ValueError(f"rule {kind!r} registered twice")
        rule.kind = kind
        _RULES[kind] = rule
        return rule

    return add


def get(kind: str) -> type[Rule]:
    try:
        return _RULES[kind]
    except KeyError:
        raise UnknownRuleError(kind, sorted(_RULES)) from None


def all_rules() -> dict[str, type[Rule]]:
    return dict(sorted(_RULES.items()))
