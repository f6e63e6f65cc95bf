"""Feeds for the transit tests: the project's Prato network, and copies of it broken on purpose."""

from __future__ import annotations

from collections.abc import Callable

from edge.contract.gtfs.static import Area
from edge.simulators.transit import PRATO_BUS_DIR, PRATO_OPERATOR, prato_feed_zip

PRATO_AREA = Area(10.98, 43.78, 11.22, 43.98)  # the Comune di Prato with a margin (worksites' own)
OPERATOR = PRATO_OPERATOR


def text(name: str) -> str:
    return (PRATO_BUS_DIR / name).read_text(encoding="utf-8")


def lines(name: str) -> list[str]:
    """The file's lines without their ends; index i is line i + 1."""
    return text(name).splitlines()


def line_of(name: str, starts: str) -> int:
    """The 1-based number of the first line of `name` starting with `starts`."""
    return next(i for i, line in enumerate(lines(name), 1) if line.startswith(starts))


def edited(name: str, edit: Callable[[list[str]], None], *, encoding: str = "utf-8") -> bytes:
    """The Prato feed with `name`'s lines changed by `edit` (a list, changed in place)."""
    content = lines(name)
    edit(content)
    return prato_feed_zip({name: ("\r\n".join(content) + "\r\n").encode(encoding)})


def replaced_line(name: str, starts: str, new: str) -> bytes:
    def edit(content: list[str]) -> None:
        content[line_of(name, starts) - 1] = new

    return edited(name, edit)


__all__ = ["OPERATOR", "PRATO_AREA", "edited", "line_of", "lines", "prato_feed_zip", "replaced_line", "text"]
