"""A detector's state as JSON-able data and back: what a checkpoint of one series holds.

`snapshot(detector)` walks the instance's fields (its `__slots__` and `__dict__`) and encodes
their values; `restore(fresh, data)` writes them back into a freshly constructed detector, which
supplies the classes of the nested parts (calibrators, models), so that the data never names a
class to import. Parameters are class attributes and stay with the code: a restored detector
runs the code it is restored into.

Encoding: JSON scalars stay as they are; a non-finite float, a tuple, a deque, a dict (keys of
any type), a set, an `array` and a nested object become one-key objects
(`{"float": "nan"}`, `{"tuple": [...]}`, `{"deque": [...], "maxlen": 5}`,
`{"dict": [[key, value], ...]}`, `{"set": [...]}`, `{"array": "d", "b64": "..."}` (the items'
little-endian bytes, base64: a profile of 336 floats is 3.6 kB instead of ~7 kB of decimals, and
encodes in microseconds), `{"object": {...}}`). Floats round-trip exactly (JSON keeps `repr`,
arrays their bytes), so a restored detector scores the next readings exactly as the
uninterrupted one would.

A class may name fields derived from others in `_transient` (not stored) and rebuild them in
`_restored()`. A class that packs numbers into an `array` field names them in `_packed`
(`{"s": ("n", "step_s", ...)}`: the array's first items): each is stored under its own name, as
a field would be, and the array keeps the items after them.
"""

from __future__ import annotations

import base64
import copy
import math
import sys
from array import array
from collections import deque
from typing import Any, TypeVar

T = TypeVar("T")


class StateError(ValueError):
    """State that does not fit the detector it is restored into (another version of its code)."""

    def __init__(self, cls: type, missing: list[str], unknown: list[str]) -> None:
        self.cls = cls
        self.missing = missing
        self.unknown = unknown
        super().__init__(
            f"state does not fit {cls.__name__}: missing {', '.join(missing) or 'nothing'}, "
            f"unknown {', '.join(unknown) or 'nothing'}"
        )


def _fields(obj: object) -> list[str]:
    names: list[str] = []
    for klass in type(obj).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    names.extend(getattr(obj, "__dict__", {}))
    transient = set(getattr(type(obj), "_transient", ()))
    return [n for n in dict.fromkeys(names) if n not in transient and n != "__weakref__"]


def _is_object(value: object) -> bool:
    return not isinstance(value, (type, float, int, str, bool, list, tuple, dict, set, deque, array)) and (
        hasattr(value, "__dict__") or hasattr(type(value), "__slots__")
    )


def _packed(obj: object) -> dict[str, tuple[str, ...]]:
    packed: dict[str, tuple[str, ...]] = getattr(type(obj), "_packed", {})
    return packed


def _names(obj: object) -> list[str]:
    """The names a state of `obj` holds: its fields, each packed array's numbers before it."""
    packed = _packed(obj)
    return [n for field in _fields(obj) for n in (*packed.get(field, ()), field)]


def snapshot(obj: object) -> dict[str, Any]:
    """Every field of `obj`, encoded."""
    packed = _packed(obj)
    out: dict[str, Any] = {}
    for name in _fields(obj):
        value = getattr(obj, name)
        if name in packed:
            numbers = packed[name]
            out.update((n, _encode(value[i])) for i, n in enumerate(numbers))
            value = value[len(numbers) :]
        out[name] = _encode(value)
    return out


def _encode(value: Any) -> Any:  # noqa: PLR0911  (one branch per type)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    if isinstance(value, deque):
        return {"deque": [_encode(v) for v in value], "maxlen": value.maxlen}
    if isinstance(value, dict):
        return {"dict": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, (set, frozenset)):
        return {"set": [_encode(v) for v in sorted(value, key=repr)]}
    if isinstance(value, array):
        if sys.byteorder == "big":
            value = array(value.typecode, value)
            value.byteswap()
        return {"array": value.typecode, "b64": base64.b64encode(value.tobytes()).decode("ascii")}
    if _is_object(value):
        return {"object": snapshot(value)}
    raise TypeError(f"cannot keep a {type(value).__name__} in a detector's state")


def restore(fresh: T, data: dict[str, Any]) -> T:
    """`fresh` (a newly constructed instance) with the fields of `data` written into it."""
    names = _names(fresh)
    missing = [n for n in names if n not in data]
    unknown = [n for n in data if n not in names]
    if missing or unknown:
        raise StateError(type(fresh), missing, unknown)
    packed = _packed(fresh)
    for name in _fields(fresh):
        value = _decode(data[name], getattr(fresh, name, None))
        if name in packed:
            items = array(value.typecode, [_decode(data[n], None) for n in packed[name]])
            items.extend(value)
            value = items
        setattr(fresh, name, value)
    rebuild = getattr(fresh, "_restored", None)
    if rebuild is not None:
        rebuild()
    return fresh


def _decode(data: Any, template: Any) -> Any:  # noqa: PLR0911  (one branch per tag)
    if isinstance(data, list):
        same_shape = isinstance(template, list) and len(template) == len(data)
        return [_decode(v, template[i] if same_shape else None) for i, v in enumerate(data)]
    if not isinstance(data, dict):
        return data
    if "float" in data:
        return float(data["float"])
    if "tuple" in data:
        return tuple(_decode(v, None) for v in data["tuple"])
    if "deque" in data:
        return deque((_decode(v, None) for v in data["deque"]), maxlen=data["maxlen"])
    if "dict" in data:
        templates = template if isinstance(template, dict) else {}
        out = {}
        for k, v in data["dict"]:
            key = _decode(k, None)
            out[key] = _decode(v, templates[key] if key in templates else _any_object(templates))
        return out
    if "set" in data:
        return {_decode(v, None) for v in data["set"]}
    if "array" in data:
        items: array[Any] = array(data["array"])
        items.frombytes(base64.b64decode(data["b64"]))
        if sys.byteorder == "big":
            items.byteswap()
        return items
    if "object" in data:
        if template is None or not _is_object(template):
            raise TypeError(f"no object to restore {sorted(data['object'])} into")
        return restore(template, data["object"])
    raise TypeError(f"unknown state tag in {sorted(data)}")


def _any_object(templates: dict[Any, Any]) -> Any:
    """A copy of an object of the kind a dict holds, for a key the fresh detector lacks."""
    some = next((v for v in templates.values() if _is_object(v)), None)
    return None if some is None else copy.deepcopy(some)


__all__ = ["StateError", "restore", "snapshot"]
