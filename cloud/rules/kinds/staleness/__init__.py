"""The `staleness` rule kind (README.md beside this file); importing it registers it."""

from cloud.rules.kinds.staleness.rule import Staleness, StalenessConfig

__all__ = ["Staleness", "StalenessConfig"]
