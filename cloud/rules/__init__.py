"""Rules: declarative checks over the live stream that raise and resolve alerts.

Built-in rule kinds, one import line each (importing registers them).
"""

from cloud.rules import anomaly, places, staleness, threshold  # noqa: F401
