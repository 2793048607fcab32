"""What can happen to an order that a customer may be told about, as the policy's input.

The ETA core emits its own delay events (ETA changed, window broken) with a version number and
the new window; the caller maps them, and the plan, driver and progress events, onto
:class:`DeliveryEvent`. Every event carries the order's ETA version at the time it happened:
``(trigger, eta_version)`` is what makes a notification unique.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Trigger(StrEnum):
    PLAN_CONFIRMED = "plan_confirmed"
    OUT_FOR_DELIVERY = "out_for_delivery"
    STOPS_AWAY = "stops_away"
    MINUTES_AWAY = "minutes_away"
    ETA_CHANGED = "eta_changed"
    WINDOW_BROKEN = "window_broken"
    ARRIVED = "arrived"
    DELIVERED = "delivered"
    FAILED = "failed"
    RESCHEDULED = "rescheduled"


#: Told again for every new ETA version; paced by the minimum interval, superseded when stale.
ETA_TRIGGERS = frozenset({Trigger.ETA_CHANGED, Trigger.WINDOW_BROKEN})
#: The outcome of an attempt: the budget keeps its last slot for one of these.
FINAL_TRIGGERS = frozenset({Trigger.DELIVERED, Trigger.FAILED})
#: Never paced by the minimum interval (quiet hours and staleness still apply).
MILESTONES = frozenset({Trigger.ARRIVED, Trigger.DELIVERED, Trigger.FAILED})
#: "Nearly there": whichever of the two comes first is sent, once per attempt.
NEARBY = frozenset({Trigger.STOPS_AWAY, Trigger.MINUTES_AWAY})
#: Sent at most once per delivery attempt (a reschedule starts a new attempt).
ONCE_PER_ATTEMPT = frozenset(
    {Trigger.OUT_FOR_DELIVERY, Trigger.STOPS_AWAY, Trigger.MINUTES_AWAY, Trigger.ARRIVED}
    | {Trigger.FAILED}
)
#: Sent at most once per order.
ONCE_PER_ORDER = frozenset({Trigger.PLAN_CONFIRMED, Trigger.DELIVERED})


@dataclass(frozen=True, slots=True)
class Window:
    """A delivery window as told to a customer; both ends timezone-aware."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window ends must carry a time zone")
        if self.end < self.start:
            raise ValueError(f"window ends ({self.end}) before it starts ({self.start})")


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """Something that happened to one order at ``at`` (timezone-aware).

    ``window_start``/``window_end`` (both or neither) are the order's current window at that ETA
    version; ``eta`` the point estimate if known. ``stops_before`` is how many stops the driver
    still makes before this one (for ``stops_away``); ``reason`` is free text (failed,
    rescheduled) passed through to webhooks, never shown translated.
    """

    order_id: str
    trigger: Trigger
    at: datetime
    eta_version: int
    window_start: datetime | None = None
    window_end: datetime | None = None
    stops_before: int | None = None
    eta: datetime | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("event time must carry a time zone")
        if (self.window_start is None) != (self.window_end is None):
            raise ValueError("window_start and window_end come together")
        if self.window_start is not None and self.window_end is not None:
            Window(self.window_start, self.window_end)  # validates
        if self.eta is not None and self.eta.tzinfo is None:
            raise ValueError("eta must carry a time zone")
        if self.eta_version < 0:
            raise ValueError("eta_version must be >= 0")
        if self.stops_before is not None and self.stops_before < 0:
            raise ValueError("stops_before must be >= 0")
        if self.trigger in ETA_TRIGGERS and self.window_start is None:
            raise ValueError(f"{self.trigger} events carry the new window")

    @property
    def window(self) -> Window | None:
        if self.window_start is None or self.window_end is None:
            return None
        return Window(self.window_start, self.window_end)
