"""Errors raised when bytes or values break the wire contract.

The hierarchy::

    ContractError (ValueError)      anything that breaks the contract; carries field and value
    ├── PayloadTooLargeError        the payload exceeds the size cap before any parsing
    ├── DecodeError                 the bytes are not JSON
    ├── SchemaError                 the JSON does not fit the Batch or Reading schema
    └── TopicError                  a topic does not fit the topic scheme

Every error names the offending field (a dotted path such as ``readings[3].fields.lat``) and
the value, so a dead letter tells a technician exactly what to fix.
"""

from __future__ import annotations

from typing import Any

_MAX_VALUE_REPR = 120


def short_repr(value: Any) -> str:
    """A bounded repr: dead letters must stay small even when the value is 2 MB."""
    text = repr(value)
    if len(text) > _MAX_VALUE_REPR:
        return f"{text[:_MAX_VALUE_REPR]}… ({len(text)} chars)"
    return text


class ContractError(ValueError):
    """A message or value breaks the wire contract."""

    reason = "contract"

    def __init__(self, message: str, *, field: str = "", value: Any = None) -> None:
        self.message = message
        self.field = field
        self.value = value
        where = f"{field}: " if field else ""
        super().__init__(f"{where}{message}")


class PayloadTooLargeError(ContractError):
    reason = "too_large"


class DecodeError(ContractError):
    reason = "bad_json"


class SchemaError(ContractError):
    reason = "schema"


class TopicError(ContractError):
    reason = "topic"
