"""Refusals every feature shares, each mapped to one HTTP status by the API's wiring
(cloud/apps/api.py) and to one clear line by the CLIs.

    DomainError
     ├── NotFoundError          404  (what, key)
     ├── PermissionDeniedError  403  (actor, reason)
     ├── ConflictError          409  (a duplicate id, a stale version)
     └── InvalidInputError      422  (problems: one FieldProblem per field)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError


class DomainError(Exception):
    """Base of the refusals a feature returns to its caller."""


class NotFoundError(DomainError):
    def __init__(self, what: str, key: str) -> None:
        self.what = what
        self.key = key
        super().__init__(f"{what} {key!r} not found")


class PermissionDeniedError(DomainError):
    def __init__(self, actor: str, reason: str) -> None:
        self.actor = actor
        super().__init__(f"{actor}: {reason}")


class ConflictError(DomainError):
    """A write that contradicts the stored state (duplicate id, stale version)."""


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    message: str
    value: Any = None


class InvalidInputError(DomainError):
    """Validation failed; `problems` name each field."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))


# pydantic's words where they would leave a user guessing
_MESSAGES = {
    "string_unicode": "not Unicode text: it holds a lone UTF-16 surrogate (JSON's \\ud800 to \\udfff)",
}


def message_of(err: Any) -> str:
    """The message of one pydantic error, as a user reads it."""
    return _MESSAGES.get(str(err.get("type")), str(err.get("msg", "invalid")).removeprefix("Value error, "))


def problems_from(exc: ValidationError, prefix: str = "") -> list[FieldProblem]:
    out: list[FieldProblem] = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        out.append(FieldProblem(prefix + loc, message_of(err), printable(err.get("input"))))
    return out


def printable(value: Any) -> str | int | float | bool | None:
    """An offending value as an error may echo it: scalars only, finite, at most 200 characters,
    text that UTF-8 can carry (a lone surrogate from JSON's `\\ud800` is shown escaped: echoed as
    is, it made the 422 itself fail to encode, a 500), numbers of any size as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        text = value if len(value) <= 200 else value[:200] + "..."
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        return printable(str(value))  # beyond what a JSON reader's double holds exactly
    if isinstance(value, int | float | bool) or value is None:
        return value
    return None
