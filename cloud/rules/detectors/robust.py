"""What the detectors share: the median of a short window, and the rarity that does not teach."""

from __future__ import annotations

from collections import deque

LEVEL_WINDOW = 5  # readings in the short-term level (a median: one spike does not move it)
RARE_P = 1e-3  # a reading this rare does not teach a detector what is ordinary (see each detector)


def median(values: deque[float] | list[float]) -> float:
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2.0
