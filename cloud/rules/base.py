"""The rule plug-in surface: a rule's Config, the hooks the engine calls, and rule groups.

A rule kind is a subclass of `Rule[XConfig]`: `self.config` is then an `XConfig` to the type
checker, with no `isinstance` check at run time (the engine builds each rule from its own
`Config`, so the config a rule gets is always the one it declared).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from cloud.core.alerts import Alert, Severity
from cloud.core.geo import Geography
from cloud.rules.group import RuleGroup
from cloud.rules.hysteresis import SeriesId
from edge.contract import Reading


class RuleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str  # the registered rule kind; a Literal in each subclass
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")  # the alert's rule id
    severity: Severity = "warning"


ConfigT = TypeVar("ConfigT", bound=RuleConfig)


@dataclass(slots=True)
class Clocks:
    """Time as the engine sees it at a tick. Event time per gateway (its sensors' watermark when
    it was last heard) and overall (the gateways' watermark now), neither of which one source
    stamped ahead can move (cloud/rules/watermark.py); and the wall time, for what is measured
    in it (a service's own health reports)."""

    gateways: dict[tuple[str, str], datetime] = field(default_factory=dict)
    now: datetime | None = None
    wall: datetime | None = None


GatewayState = Literal["online", "offline"]


class Evaluator(Protocol):
    """What the engine hands a reading to: one rule, or a group of rules judged together."""

    def observe(self, reading: Reading) -> list[Alert]: ...

    def observe_many(
        self, readings: Sequence[Reading], keys: Sequence[SeriesId]
    ) -> list[tuple[int, Alert]]: ...


def observe_each(evaluator: Evaluator, readings: Sequence[Reading]) -> list[tuple[int, Alert]]:
    """`observe_many` reading by reading: each alert with the index of the reading that raised it."""
    out: list[tuple[int, Alert]] = []
    observe = evaluator.observe
    for i, reading in enumerate(readings):
        found = observe(reading)
        if found:
            out.extend([(i, a) for a in found])
    return out


class Rule(Generic[ConfigT]):
    """Base of every rule. Hooks return alert transitions; the engine de-duplicates them."""

    kind: ClassVar[str]
    Config: ClassVar[type[RuleConfig]]
    # Rules of this class on one field can be judged by one group (see `group_key`), so that an
    # ordinary reading costs one check per group rather than one call per rule.
    Group: ClassVar[type[RuleGroup[Any]] | None] = None

    def __init__(self, config: ConfigT) -> None:
        self.config = config
        # The sensor kinds whose readings this rule's `observe` needs (None: every reading);
        # the engine indexes rules by it so a reading touches only the rules that apply.
        self.watches: frozenset[str] | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def group_key(self) -> str | None:
        """What rules of one class must share to be judged by one `Group` (None: never grouped)."""
        return None

    def alert_on(
        self,
        r: Reading,
        state: Literal["firing", "resolved"],
        since: datetime,
        *,
        value: float | None,
        message: str,
        threshold: float | None = None,
        context: dict[str, Any] | None = None,
    ) -> Alert:
        """An alert about the sensor that sent `r`, decided at `r`'s own time (event time)."""
        return Alert(
            rule=self.name,
            org=r.org,
            entity=r.sensor,
            gateway=r.gateway,
            kind=r.kind.value,
            severity=self.config.severity,
            state=state,
            since=since,
            ts=r.ts,
            message=message,
            value=value,
            threshold=threshold,
            context=context,
        )

    def bind(self, geography: Geography) -> None:
        """Called once at load with the sensors' sites and the worksite lookup; most rules ignore it."""

    def observe(self, reading: Reading) -> list[Alert]:
        return []

    def observe_many(self, readings: Sequence[Reading], keys: Sequence[SeriesId]) -> list[tuple[int, Alert]]:
        """The readings of one message, all of one kind (the engine splits a message by kind),
        as `observe` each in turn: each alert with the index of its reading. `keys` are their
        series (org, gateway, sensor), the engine's own tuples: a rule that keys per-series state
        by them finds it by identity (`Engine.series`). Override it when judging the readings
        together is cheaper (`ScoredFieldRule`, the groups)."""
        return observe_each(self, readings)

    def tick(self, clocks: Clocks) -> list[Alert]:
        return []

    def gateway_status(self, org: str, gateway: str, state: str, reason: str, ts: datetime) -> list[Alert]:
        return []

    def service_health(
        self, service: str, instance: str, report: Mapping[str, Any], received: datetime
    ) -> list[Alert]:
        """A cloud service's own health report (`sr/v1/services/{service}/{instance}/health`),
        received at wall time `received`; most rules ignore it."""
        return []
