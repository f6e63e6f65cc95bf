"""Worksite impact: a traffic or parking series departing from its baseline, classified as
*expected impact* when a planned worksite is active within `radius_m` of the sensor, *anomaly*
otherwise."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from cloud.core.alerts import Alert
from cloud.core.geo import Geography, NoWorksites, WorksiteLookup
from cloud.rules.field import Scored, ScoredFieldRule, ScoredFieldRuleConfig
from cloud.rules.registry import register
from edge.contract import Reading


class WorksiteImpactConfig(ScoredFieldRuleConfig):
    rule: Literal["worksite_impact"] = "worksite_impact"
    radius_m: float = Field(default=400.0, gt=0)
    expected_severity: Literal["info", "warning", "critical"] = "info"


@register("worksite_impact")
class WorksiteImpact(ScoredFieldRule[WorksiteImpactConfig]):
    Config = WorksiteImpactConfig

    def __init__(self, config: WorksiteImpactConfig) -> None:
        super().__init__(config)
        self.worksites: WorksiteLookup = NoWorksites()

    def bind(self, geography: Geography) -> None:
        super().bind(geography)
        self.worksites = geography.worksites

    def classify(self, sensor: str, at: datetime) -> tuple[str, list[dict[str, Any]]]:
        site = self.sites.get(sensor)
        if site is None:
            return "anomaly", []
        near = self.worksites.active_near(site.lat, site.lon, self.config.radius_m, at)
        planned = [w.to_context() for w in near if w.is_planned]
        return ("expected_impact" if planned else "anomaly"), [w.to_context() for w in near]

    def alerts_of(self, reading: Reading, judged: Scored) -> list[Alert]:
        t, value, score = judged.transition, judged.value, judged.score
        field = self.config.field
        if t.state == "resolved":
            message = f"{reading.sensor}: {field} back to its baseline ({value:g})"
            return [self.alert_on(reading, "resolved", t.since, value=value, message=message)]
        classification, worksites = self.classify(reading.sensor, reading.ts)
        is_expected = classification == "expected_impact"
        why = (
            f"expected impact of worksite {worksites[0]['name'] or worksites[0]['id']}"
            if is_expected
            else "anomaly"
        )
        alert = self.alert_on(
            reading,
            "firing",
            t.since,
            value=value,
            message=f"{self.explain(reading, value, t.since, judged.detector)}: {why}",
            threshold=self.config.score_above,
            context=self._context(reading, score, judged.detector)
            | {"classification": classification, "worksites": worksites},
        )
        return [replace(alert, severity=self.config.expected_severity) if is_expected else alert]
