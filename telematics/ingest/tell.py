"""Telling customers: the events that concern one (the van arrived, its first window, a
changed ETA, a broken window, N stops or M minutes away) queued in the batch for the
notification outbox, which writes them in the batch's transaction (notify/outbox.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from eta.delay import DelayEvent, EtaChanged, WindowBroken, WindowTold
from eta.predict import StopEta
from notify.outbox import Outbox
from notify.triggers import DeliveryEvent, Trigger
from telematics.ingest.place import RoutePlan
from telematics.ingest.state import BatchState, VehicleState
from telematics.progress import Arrived, Event

DELAY_TRIGGERS: dict[type, Trigger] = {
    WindowTold: Trigger.OUT_FOR_DELIVERY,
    EtaChanged: Trigger.ETA_CHANGED,
    WindowBroken: Trigger.WINDOW_BROKEN,
}


def tell_arrivals(
    batch: BatchState, live: VehicleState, route: RoutePlan, events: Iterable[Event]
) -> None:
    """The van arrived at a customer's door."""
    for event in events:
        if isinstance(event, Arrived):
            deliver(batch, live, route, event.order_id, Trigger.ARRIVED, event.at)


def tell_delays(
    batch: BatchState,
    live: VehicleState,
    route: RoutePlan,
    events: Iterable[DelayEvent],
    now: datetime,
) -> None:
    """A window told for the first time, an ETA changed, a window broken."""
    for event in events:
        trigger = DELAY_TRIGGERS[type(event)]
        deliver(batch, live, route, event.order_id, trigger, now, event=event)


def tell_nearby(
    batch: BatchState,
    live: VehicleState,
    route: RoutePlan,
    etas: Sequence[StopEta],
    previous: Sequence[StopEta],
    now: datetime,
    outbox: Outbox,
) -> None:
    """ "N stops away" when the stops ahead of a customer drop to N or fewer, "M minutes
    away" when the ETA crosses M minutes: events only on the crossing, so the policy runs
    for an order when something changed, not on every batch."""
    settings = outbox.settings(batch.session, live.organisation_id)
    first = etas[0].index
    old_first = previous[0].index if previous else 0
    before = {e.order_id: e for e in previous}
    near_s = settings.minutes_away_m * 60.0
    now_s = now.timestamp()
    for eta in etas:
        if eta.arrived:
            continue
        stops_before = eta.index - first
        old = before.get(eta.order_id)
        old_before = old.index - old_first if old is not None else None
        if stops_before <= settings.stops_away_n and (
            old_before is None or old_before > settings.stops_away_n
        ):
            deliver(
                batch, live, route, eta.order_id, Trigger.STOPS_AWAY, now,
                stops_before=stops_before, eta_stop=eta,
            )  # fmt: skip
        if eta.eta_s - now_s <= near_s and (old is None or old.eta_s - now_s > near_s):
            deliver(batch, live, route, eta.order_id, Trigger.MINUTES_AWAY, now, eta_stop=eta)


def deliver(
    batch: BatchState,
    live: VehicleState,
    route: RoutePlan,
    order_id: str,
    trigger: Trigger,
    at: datetime,
    *,
    event: DelayEvent | None = None,
    stops_before: int | None = None,
    eta_stop: StopEta | None = None,
) -> None:
    """Queue a customer-facing event for the outbox, with the order's current window."""
    row_id = route.order_rows.get(order_id)
    if row_id is None:
        return
    told = live.told.get(order_id)
    version = event.version if event is not None else (told.version if told else 0)
    start: datetime | None
    end: datetime | None
    eta: datetime | None
    if event is not None:
        start, end, eta = event.earliest, event.latest, event.eta
    elif told is not None:
        start, end = utc(told.earliest_s), utc(told.latest_s)
        eta = eta_stop.eta if eta_stop is not None else utc(told.eta_s)
    else:
        start = end = None
        eta = eta_stop.eta if eta_stop is not None else None
    batch.deliveries.setdefault(row_id, []).append(
        DeliveryEvent(row_id, trigger, at, version, start, end, stops_before=stops_before, eta=eta)
    )


def utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)
