"""A live worksite on a bus route: the municipality and the route's operator are told, once per
worksite and route, while the worksite is active; resolved when it ends or moves off the route."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from cloud.core.alerts import Alert
from cloud.core.geo import Geography, NoWorksites, WorksiteLookup, WorksiteRef
from cloud.core.orgs import OrgId
from cloud.core.transit import DEFAULT_WITHIN_M, NoTransit, RouteRef, TransitImpact, TransitNetwork
from cloud.rules.base import Clocks, Rule, RuleConfig
from cloud.rules.registry import register
from edge.contract.gtfs.ids import sensor_id

AlertKey = tuple[str, str, str]  # (org, worksite id, route entity)


class WorksiteOnRouteConfig(RuleConfig):
    rule: Literal["worksite_on_route"] = "worksite_on_route"
    within_m: float = Field(default=DEFAULT_WITHIN_M, ge=0, le=500)
    notify: list[OrgId] = Field(default_factory=lambda: ["comune-prato"], max_length=20)
    notify_operator: bool = True
    check_s: float = Field(default=60.0, gt=0)
    severity: Literal["info", "warning", "critical"] = "warning"


def route_entity(worksite_id: str, route_id: str) -> str:
    """The alert's entity: the worksite and the route, as one id (`[a-z0-9-]`)."""
    return sensor_id(f"{worksite_id}--{route_id.lower()}")


@register("worksite_on_route")
class WorksiteOnRoute(Rule[WorksiteOnRouteConfig]):
    Config = WorksiteOnRouteConfig

    def __init__(self, config: WorksiteOnRouteConfig) -> None:
        super().__init__(config)
        self.watches = frozenset()  # time-driven: it reads no sensor
        self.worksites: WorksiteLookup = NoWorksites()
        self.transit: TransitNetwork = NoTransit()
        self.firing: dict[AlertKey, Alert] = {}
        self._checked: datetime | None = None

    def bind(self, geography: Geography) -> None:
        self.worksites = geography.worksites
        self.transit = geography.transit

    def _impact(self, ws: WorksiteRef) -> TransitImpact:
        # Asked at every check, not kept: the network changes under the rule (a first import
        # after the service started, a new feed version). The store's network keeps each
        # geometry's answer per feed version (cloud/transit/lookup.py).
        return self.transit.impact(ws.geometry, self.config.within_m) if ws.geometry else TransitImpact()

    def _orgs(self, route: RouteRef) -> list[str]:
        extra = [route.operator] if self.config.notify_operator else []
        return list(dict.fromkeys([*self.config.notify, *extra]))

    def _alert(
        self, org: str, ws: WorksiteRef, route: RouteRef, impact: TransitImpact, at: datetime
    ) -> Alert:
        stops = [s.name for s in impact.stops if s.operator == route.operator and route.route_id in s.routes]
        where = f" ({ws.street})" if ws.street else ""
        message = (
            f"worksite {ws.name or ws.id}{where} is on bus route {route.name} of {route.operator}, "
            f"{route.distance_m:.0f} m, until {ws.ends_at:%Y-%m-%d %H:%M} UTC"
            + (f"; stops inside: {', '.join(stops)}" if stops else "")
        )
        context: dict[str, Any] = {
            "worksite": ws.to_context() | {"owner": ws.org},
            "route": route.to_dict(),
            "stops": stops,
        }
        return Alert(
            rule=self.name,
            org=org,
            entity=route_entity(ws.id, route.route_id),
            gateway="registry",
            kind="worksite",
            severity=self.config.severity,
            state="firing",
            since=at,
            ts=at,
            message=message,
            value=route.distance_m,
            threshold=self.config.within_m,
            context=context,
        )

    def tick(self, clocks: Clocks) -> list[Alert]:
        # Event time once readings flow; before any, wall time (worksites are planned in it).
        at = clocks.now if clocks.now is not None else clocks.wall
        if at is None:
            return []
        # Due every `check_s`, and at once when time went back: the switch from wall time to
        # the event time of a replay (the demo's gateways start an hour behind) would else wait
        # until event time caught up with the wall time of the first look.
        if self._checked is not None and 0 <= (at - self._checked).total_seconds() < self.config.check_s:
            return []
        self._checked = at
        current: dict[AlertKey, Alert] = {}
        for ws in self.worksites.active(at):
            impact = self._impact(ws)
            for route in impact.routes:
                for org in self._orgs(route):
                    alert = self._alert(org, ws, route, impact, at)
                    current[(org, ws.id, alert.entity)] = alert
        out = [a for key, a in current.items() if key not in self.firing]
        for key, old in self.firing.items():
            if key not in current:
                out.append(old.resolved(at, _gone(old)))
        self.firing = {key: self.firing.get(key, a) for key, a in current.items()}
        return out


def _gone(alert: Alert) -> str:
    context = alert.context or {}
    ws, route = context.get("worksite", {}), context.get("route", {})
    return (
        f"worksite {ws.get('name') or ws.get('id', '?')} no longer on bus route {route.get('name', '?')} "
        "(ended, moved or cancelled)"
    )
