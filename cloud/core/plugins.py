"""A registry of plugins of one kind (rule kinds, detectors, notification channels), by the
name a configuration file uses: each registers once with a decorator, a lookup of an unknown
name raises an error listing the known ones.

(Edge drivers keep their own registry: `cloud` may import only `edge.contract` from `edge`,
and the drivers' needs differ; tests/test_architecture.py.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
C = TypeVar("C", bound=type[Any])


class UnknownPluginError(KeyError):
    """A name nobody registered; `what` says of what kind ("rule", "detector", ...)."""

    what = "plugin"

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown {self.what} {name!r}; known: {', '.join(known)}")


class Registry(Generic[T]):
    """Classes of one kind by name. `attr` is the class attribute that receives the name."""

    def __init__(self, what: str, attr: str, error: type[UnknownPluginError]) -> None:
        self.what = what
        self.attr = attr
        self.error = error
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[C], C]:
        def add(cls: C) -> C:
            if name in self._classes:
                raise ValueError(f"{self.what} {name!r} registered twice")
            setattr(cls, self.attr, name)
            self._classes[name] = cls
            return cls

        return add

    def get(self, name: str) -> type[T]:
        try:
            return self._classes[name]
        except KeyError:
            raise self.error(name, sorted(self._classes)) from None

    def names(self) -> list[str]:
        return sorted(self._classes)

    def all(self) -> dict[str, type[T]]:
        return dict(sorted(self._classes.items()))


__all__ = ["Registry", "UnknownPluginError"]
