"""The per-gateway batch sequence number, persisted so that it survives restarts."""

from __future__ import annotations

from pathlib import Path

from edge.contract.batch import MAX_SEQ


class Sequence:
    """Hands out 0, 1, 2, ... and remembers the next value in `path` (atomic replace)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._next = int(path.read_text().strip() or 0)
        except FileNotFoundError:
            self._next = 0
        except ValueError:
            # A torn or corrupt file must not brick the gateway; the cloud will count the jump.
            self._next = 0
        if not 0 <= self._next <= MAX_SEQ:
            self._next = 0  # corrupt too: no Batch could carry it, so every publish would fail

    @property
    def current(self) -> int:
        return self._next - 1

    def take(self) -> int:
        seq = self._next
        self._next += 1
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(str(self._next))
        tmp.replace(self.path)
        return seq
