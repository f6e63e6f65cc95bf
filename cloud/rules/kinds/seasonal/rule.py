"""Seasonal baseline: deviation from the series' own ordinary operations, learnt online per series
(time-of-day and time-of-week profile, level, period), scored as a calibrated rarity (see
cloud.rules.detectors)."""

from __future__ import annotations

from typing import Literal

from cloud.core.alerts import Alert
from cloud.rules.detectors import DECADES, p_from_score
from cloud.rules.field import ScoredFieldRule, ScoredFieldRuleConfig
from cloud.rules.registry import register
from edge.contract import Reading


class SeasonalConfig(ScoredFieldRuleConfig):
    rule: Literal["seasonal"] = "seasonal"


@register("seasonal")
class Seasonal(ScoredFieldRule[SeasonalConfig]):
    Config = SeasonalConfig

    def observe(self, reading: Reading) -> list[Alert]:
        judged = self._judge(reading)
        if judged is None:
            return []
        t, value, score = judged.transition, judged.value, judged.score
        field = self.config.field
        if t.state == "resolved":
            message = f"{field} back to ordinary ({value:g})"
            return [self.alert_on(reading, "resolved", t.since, value=value, message=message)]
        one_in = 1 / max(p_from_score(score), 10**-DECADES)
        return [
            self.alert_on(
                reading,
                "firing",
                t.since,
                value=value,
                message=f"{field} {value:g} departs from its ordinary operations (score {score:.2f}, "
                f"about 1 in {one_in:,.0f} readings)",
                threshold=self.config.score_above,
                context=self._context(reading, score, judged.detector),
            )
        ]
