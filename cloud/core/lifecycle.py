"""The alert lifecycle as a small explicit state machine: firing -> acknowledged -> resolved.

    (none) --fire--> firing --ack--> acknowledged
                       |                  |
                       +----resolve-------+--> resolved (final; a new fire opens a new alert)

Firing again while an alert is active is a duplicate (no transition). Acknowledging a resolved
alert, or resolving twice, is refused or ignored as the table below says, never a stuck state.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

ActiveState = Literal["firing", "acknowledged"]
LifecycleState = Literal["firing", "acknowledged", "resolved"]
ACTIVE_STATES: tuple[ActiveState, ...] = ("firing", "acknowledged")


class Event(StrEnum):
    FIRE = "fire"
    ACK = "ack"
    RESOLVE = "resolve"


class InvalidTransitionError(ValueError):
    def __init__(self, state: str | None, event: Event) -> None:
        self.state = state
        self.event = event
        super().__init__(f"cannot {event.value} an alert that is {state or 'absent'}")


# (state, event) -> new state; None as a state is "no active alert". Same state = no-op.
TRANSITIONS: dict[tuple[str | None, Event], str | None] = {
    (None, Event.FIRE): "firing",
    ("firing", Event.FIRE): "firing",
    ("acknowledged", Event.FIRE): "acknowledged",
    ("firing", Event.ACK): "acknowledged",
    ("acknowledged", Event.ACK): "acknowledged",
    ("firing", Event.RESOLVE): "resolved",
    ("acknowledged", Event.RESOLVE): "resolved",
    ("resolved", Event.RESOLVE): "resolved",
    ("resolved", Event.FIRE): "firing",  # a new alert: the resolved one stays in history
}


def next_state(state: str | None, event: Event) -> str:
    try:
        new = TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransitionError(state, event) from None
    assert new is not None
    return new
