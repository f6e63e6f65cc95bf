"""Conversions between our units and the models': percentages as fractions, headings below 360.

Our contract keeps occupancy in percent (`occupancy_pct`); the Smart Data Models keep it as a
fraction of 1 (`occupancy`). Dividing by 100 and multiplying back does not always give the same
float (54.229 / 100 * 100 == 54.229000000000006), so `percent()` picks, among the few floats
around the product, the one that divides back to the fraction exactly, the shortest written
first: every percentage with up to 15 significant digits comes back identical.
"""

from __future__ import annotations

import math

_NEIGHBOURS = 5


def fraction(percent: float) -> float:
    return percent / 100


def percent(fraction_of_one: float) -> float:
    product = fraction_of_one * 100
    candidate = product
    for _ in range(_NEIGHBOURS):
        candidate = math.nextafter(candidate, -math.inf)
    exact = []
    for _ in range(2 * _NEIGHBOURS + 1):
        if candidate / 100 == fraction_of_one:
            exact.append(candidate)
        candidate = math.nextafter(candidate, math.inf)
    if not exact:
        return product
    return min(exact, key=lambda c: (len(repr(c)), abs(c - product)))


def heading_below_360(heading_deg: float) -> float:
    """Vehicle `heading` is in [0, 360) (the model's exclusiveMaximum); our fixes allow 360 for north."""
    return 0.0 if heading_deg == 360 else heading_deg


__all__ = ["fraction", "heading_below_360", "percent"]
