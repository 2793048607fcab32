"""Delay deltas: is a new ETA worth telling the customer?

Each stop remembers the window last told (:class:`Told`). A new prediction produces an event
when the told window is broken (the ETA has left it by more than a margin: hysteresis) or the
ETA has moved more than a threshold; then the new window becomes the told one. Between two
events at least ``min_interval_s`` pass, so an ETA wobbling around a threshold never produces
a stream of events. The events feed customer notifications.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from eta.predict import StopEta


@dataclass(frozen=True, slots=True)
class DelayParams:
    #: The ETA must be this far past the told window's end (or before its start) for the
    #: window to count as broken: noise at the edge breaks nothing.
    break_margin_s: float = 0.0
    #: An ETA move this large is told even inside the window (a 4-hour window told at 8:00
    #: should still narrow when the van is an hour late). One that moves the window later is
    #: a late notice to the customer (docs/accuracy.md), so it must be as sure as a break:
    #: 2400 s was chosen on the training days with the break settings below.
    change_s: float = 2400.0
    #: Least time between two events of one stop. The first delay event after the first
    #: window is not held back by it: a broken promise is told at once.
    min_interval_s: float = 900.0
    #: Do not tell an ETA change inside the window this close to the arrival.
    quiet_horizon_s: float = 300.0
    #: How sure the window must be broken: 0 judges by the ETA itself, 1 by the near edge
    #: of the new window (its P10 past the told end: about 90% sure). Higher: fewer false
    #: alarms, later notices.
    break_confidence: float = 0.5
    #: A break must hold this long before it is told: a spike (a long red light, a noisy
    #: fix) that heals by itself tells nobody anything. 0 s, ``change_s`` and the other
    #: break settings: chosen on the training days by ``python -m bench.eta_accuracy`` (the
    #: best recall of material delays among settings whose late notices were at least 90 %
    #: true there; 2026-12-05, late notices as docs/accuracy.md defines them).
    break_persist_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Told:
    """What the customer was last told about one stop (epoch seconds)."""

    version: int
    eta_s: float
    earliest_s: float
    latest_s: float
    at_s: float
    #: Window versions that were delay events (not the first window).
    changes: int = 0
    #: Since when the ETA has broken the told window, not yet told (epoch seconds).
    breaking_since_s: float | None = None


@dataclass(frozen=True, slots=True)
class WindowTold:
    """The first window for a stop (the plan's promise)."""

    order_id: str
    version: int
    eta: datetime
    earliest: datetime
    latest: datetime
    at: datetime


@dataclass(frozen=True, slots=True)
class EtaChanged:
    """The ETA moved by more than the threshold, still inside the told window."""

    order_id: str
    version: int
    eta: datetime
    earliest: datetime
    latest: datetime
    at: datetime
    previous_eta: datetime
    late: bool


@dataclass(frozen=True, slots=True)
class WindowBroken:
    """The ETA left the told window: the promise is broken (late, or early)."""

    order_id: str
    version: int
    eta: datetime
    earliest: datetime
    latest: datetime
    at: datetime
    told_earliest: datetime
    told_latest: datetime
    late: bool


DelayEvent = WindowTold | EtaChanged | WindowBroken


def _utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def detect(
    told: Told | None, new: StopEta, now: datetime, params: DelayParams
) -> tuple[Told | None, DelayEvent | None]:
    """Compare a new ETA with what was told; return the new told state and the event (if
    any)."""
    if new.arrived:
        return told, None
    now_s = now.timestamp()
    if told is None:
        first = Told(1, new.eta_s, new.earliest_s, new.latest_s, now_s)
        return first, WindowTold(new.order_id, 1, new.eta, new.earliest, new.latest, now)
    w = params.break_confidence
    late_by_s = new.eta_s - told.latest_s - w * (new.eta_s - new.earliest_s)
    early_by_s = told.earliest_s - new.eta_s - w * (new.latest_s - new.eta_s)
    broken = late_by_s > params.break_margin_s or early_by_s > params.break_margin_s
    if broken != (told.breaking_since_s is not None):
        told = replace(told, breaking_since_s=now_s if broken else None)
    if broken and now_s - (told.breaking_since_s or now_s) < params.break_persist_s:
        return told, None
    moved_s = new.eta_s - told.eta_s
    if not broken and (
        abs(moved_s) < params.change_s
        # Close to the door a change inside the window is left to the "arriving" milestone;
        # a broken window is still told.
        or new.eta_s - now_s < params.quiet_horizon_s
    ):
        return told, None
    if told.changes > 0 and now_s - told.at_s < params.min_interval_s:
        return told, None
    version = told.version + 1
    updated = Told(
        version, new.eta_s, new.earliest_s, new.latest_s, now_s, changes=told.changes + 1
    )
    event: DelayEvent
    if broken:
        event = WindowBroken(
            new.order_id,
            version,
            new.eta,
            new.earliest,
            new.latest,
            now,
            _utc(told.earliest_s),
            _utc(told.latest_s),
            late=late_by_s > 0,
        )
    else:
        event = EtaChanged(
            new.order_id,
            version,
            new.eta,
            new.earliest,
            new.latest,
            now,
            _utc(told.eta_s),
            moved_s > 0,
        )
    return updated, event
