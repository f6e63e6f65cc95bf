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


def problems_from(exc: ValidationError, prefix: str = "") -> list[FieldProblem]:
    out: list[FieldProblem] = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        message = str(err["msg"]).removeprefix("Value error, ")
        out.append(FieldProblem(prefix + loc, message, printable(err.get("input"))))
    return out


def printable(value: Any) -> str | int | float | bool | None:
    """An offending value as an error may echo it: scalars only, finite, at most 200 characters."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str) and len(value) > 200:
        return value[:200] + "..."
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return None
