"""Seasonal baseline: deviation from the series' own ordinary operations, learnt online per series
(time-of-day and time-of-week profile, level, extremes, runs), scored as a calibrated rarity (see
cloud.rules.detectors)."""

from __future__ import annotations

from typing import Literal

from cloud.core.alerts import Alert
from cloud.rules.field import Scored, ScoredFieldRule, ScoredFieldRuleConfig
from cloud.rules.registry import register
from edge.contract import Reading


class SeasonalConfig(ScoredFieldRuleConfig):
    rule: Literal["seasonal"] = "seasonal"


@register("seasonal")
class Seasonal(ScoredFieldRule[SeasonalConfig]):
    Config = SeasonalConfig

    def alerts_of(self, reading: Reading, judged: Scored) -> list[Alert]:
        t, value, score = judged.transition, judged.value, judged.score
        field = self.config.field
        if t.state == "resolved":
            message = f"{reading.sensor}: {field} back to ordinary ({value:g})"
            return [self.alert_on(reading, "resolved", t.since, value=value, message=message)]
        return [
            self.alert_on(
                reading,
                "firing",
                t.since,
                value=value,
                message=self.explain(reading, value, t.since, judged.detector),
                threshold=self.config.score_above,
                context=self._context(reading, score, judged.detector),
            )
        ]
