"""Rule kinds, registered by name. One import line per built-in kind.

A kind is a folder: its code (`rule.py`), `README.md`, `sample.yaml` and `cases.yaml`
(tests/cloud/test_rule_kinds.py runs every registered kind's cases). CONTRIBUTING.md says how
to add one.
"""

from cloud.rules.kinds import (
    flatline,  # noqa: F401  (registers flatline)
    geofence,  # noqa: F401  (registers geofence)
    parking_saturation,  # noqa: F401  (registers parking_saturation)
    rate_of_change,  # noqa: F401  (registers rate_of_change)
    seasonal,  # noqa: F401  (registers seasonal)
    service_watchdog,  # noqa: F401  (registers service_watchdog)
    staleness,  # noqa: F401  (registers staleness)
    threshold,  # noqa: F401  (registers threshold)
    worksite_impact,  # noqa: F401  (registers worksite_impact)
)
from cloud.rules.registry import UnknownRuleError, all_rules, folder, get, register

__all__ = ["UnknownRuleError", "all_rules", "folder", "get", "register"]
