"""What operators do to alerts in the store (acknowledge, resolve), sent on as the engine's alerts are.

An alert is acknowledged or resolved by hand in the alert store, through any of three doors:
`sitroom cloud alerts ack|resolve`, the HTTP API and the console. They only change the store.
The rules service, which already publishes every alert retained on MQTT and writes it to
InfluxDB (as the write-only user), follows the store's history and sends each such move on:

- to InfluxDB, an `alerts` point with the firing point's tags and state `acknowledged` (field
  `ack_s`, seconds from firing to acknowledgement: the Alerts dashboard's time to acknowledge)
  or `resolved`;
- to MQTT, retained on the alert's topic, so that a subscriber no longer reads "firing" there —
  unless the alert has moved on since (a later move, or a new alert for the same key).

The cursor is the history's row id. At start it goes back `lookback`, so moves made while the
service was down are sent too; InfluxDB keeps one point per series and timestamp, so sending a
move twice (a restart, or two rules instances) stores it once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import get_args

from cloud.core.alerts import Alert, OperatorMove, Severity, State
from cloud.rules.store import AlertStore

DEFAULT_LOOKBACK = timedelta(days=1)


class OperatorRelay:
    """Turns the store's new operator moves into alerts to publish and write."""

    def __init__(
        self, store: AlertStore, *, lookback: timedelta = DEFAULT_LOOKBACK, now: datetime | None = None
    ) -> None:
        self.store = store
        self.cursor = store.last_event_id(before=(now or datetime.now(UTC)) - lookback)
        self._pending_cursor = self.cursor

    def pending(self) -> list[tuple[Alert, bool]]:
        """(alert, still current?) for each move after the cursor, oldest first; `commit()`
        moves the cursor past them once they are sent. An alert is current when the store still
        holds it in the state the move put it in, and no newer alert of the same key is active:
        only then may it replace the retained MQTT message."""
        moves = self.store.operator_moves_after(self.cursor)
        if not moves:
            return []
        self._pending_cursor = moves[-1].event_id
        active = set(self.store.active_keys())
        out = []
        for move in moves:
            alert = alert_of(move)
            a = move.alert
            is_current = a.state == alert.state and (a.is_active or alert.key not in active)
            out.append((alert, is_current))
        return out

    def commit(self) -> None:
        """The moves `pending()` returned are sent: do not return them again."""
        self.cursor = max(self.cursor, self._pending_cursor)


def alert_of(move: OperatorMove) -> Alert:
    a = move.alert
    severity: Severity = a.severity if a.severity in get_args(Severity) else "warning"  # type: ignore[assignment]
    state: State
    ack_s: float | None = None
    if move.event == "ack":
        state, message = "acknowledged", a.message
        ack_s = round(max((move.ts - a.fired_at).total_seconds(), 0.0), 3)
    else:
        state = "resolved"
        message = f"resolved by {move.actor}" + (f": {move.note}" if move.note else "")
    return Alert(
        rule=a.rule,
        org=a.org,
        entity=a.entity,
        gateway=a.gateway,
        kind=a.kind,
        severity=severity,
        state=state,
        since=a.since,
        ts=move.ts,
        message=message,
        value=a.value,
        threshold=a.threshold,
        context=a.context or None,
        id=a.id,
        acked_by=move.actor if move.event == "ack" else a.acked_by,
        ack_s=ack_s,
    )
