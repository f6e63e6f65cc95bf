"""The `worksite_impact` rule kind (README.md beside this file); importing it registers it."""

from cloud.rules.kinds.worksite_impact.rule import WorksiteImpact, WorksiteImpactConfig

__all__ = ["WorksiteImpact", "WorksiteImpactConfig"]
