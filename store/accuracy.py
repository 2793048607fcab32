"""The promise's accuracy as the live service stored it (docs/accuracy.md): each stop's record
(the first window told, the late notices, the actual arrival) and the live windows along its
way, read from the store and handed to :mod:`eta.promise`, which computes every figure; the
figures per organisation, per day (the organisation's time zone) and per route.

Where each part comes from:

- A *stop* is an order on a route of a dispatched plan (cancelled plans left out), one per
  order and day of its planned arrival. A replan or an insertion that carries the order on the
  same day moves the stop to its own route (the day's newest dispatch is the stop's route); an
  order planned again for another day (a failed delivery retried) is another stop. A stop owns
  the messages and events of its order from the first dispatch holding it that day until the
  first dispatch of the order's next stop.
- What the customer was told: the notification outbox's *sent* rows, one per notification
  (its channels merged; the first send counts). The first one holding a window is the first
  window told (normally "plan confirmed", sent at dispatch). A customer who was sent none (no
  channel, opted out, the sender off) was told nothing: the stop is not scored. The
  ETA-changed and window-broken messages after it are the stop's ``messages``.
- Late notices: each ETA message sent whose window ends later than the one sent before it
  (``eta.promise.told_stop``), against the end of that earlier window, at the time the
  message went out. (``lastmile demo``'s summary reads its day through this module.)
- The actual arrival: the ingester's first ``arrived`` event (as ``lastmile report`` reads it).
- The live windows: the ETA history (``eta_history``) keeps a stop's window whenever its ETA
  moved a minute or more and at least every five minutes while its van reports
  (telematics/ingest/recompute.py). Each kept window is read as shown until the next one and
  sampled once a minute until the arrival, so coverage has the history's resolution: a window
  that moved by less than a minute since the last one kept is read as that one.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from eta.promise import StopPromise, ToldWindow, WindowSample, promise_figures, told_stop
from store.schema import (
    EtaRow,
    EventRow,
    OrderRow,
    Organisation,
    OutboxRow,
    PlanRouteRow,
    PlanRow,
    PlanStopRow,
    VehicleRow,
)

#: A live window sample per stop this often (docs/accuracy.md).
SAMPLE_EVERY_S = 60.0
#: The messages after the first window that tell a new ETA: a stop's ``messages``.
ETA_MESSAGES = frozenset({"eta_changed", "window_broken"})
#: The ingester's event for a van reaching a stop.
ARRIVED = "arrived"
#: An outbox payload's event time and a plan's dispatch time are the same instant written
#: twice; this much slack keeps a rounding from moving a message to the stop before.
SAME_INSTANT = timedelta(seconds=1)
MAX_DAYS = 90


@dataclass(frozen=True, slots=True)
class ToldMessage:
    """A notification sent to the customer: when (epoch seconds), its trigger, the ETA version
    it told and its window (None: it held none)."""

    at_s: float
    trigger: str
    eta_version: int
    earliest_s: float | None = None
    latest_s: float | None = None


@dataclass(frozen=True, slots=True)
class StopRecord:
    """One stop as its customer lived it, with the day and route it is counted under."""

    #: Your id for the order.
    order_id: str
    day: date
    plan_id: str
    #: Your id for the vehicle.
    vehicle_id: str
    promise: StopPromise
    samples: tuple[WindowSample, ...] = ()


# --- pure: rows in, records out ------------------------------------------------------------


def stop_promise(stop_id: str, told: Iterable[ToldMessage], actual_s: float | None) -> StopPromise:
    """The stop's record from the messages its customer was sent (taken in the order sent):
    the first holding a window, then the ETA messages after it (:func:`eta.promise.told_stop`
    finds the late notices among them)."""
    ordered = sorted(told, key=lambda m: (m.at_s, m.eta_version))
    first = next((m for m in ordered if m.earliest_s is not None and m.latest_s is not None), None)
    after = [m for m in ordered if first is not None and m is not first]
    eta_messages = [m for m in after if m.trigger in ETA_MESSAGES]
    return told_stop(
        stop_id,
        _window(first) if first is not None else None,
        [w for m in eta_messages if (w := _window(m)) is not None],
        actual_s,
        len(eta_messages),
    )


def _window(message: ToldMessage) -> ToldWindow | None:
    if message.earliest_s is None or message.latest_s is None:
        return None
    return ToldWindow(message.at_s, message.earliest_s, message.latest_s)


def window_samples(
    history: Iterable[tuple[float, float, float]],
    actual_s: float,
    every_s: float = SAMPLE_EVERY_S,
) -> list[WindowSample]:
    """The live window every ``every_s`` (on whole multiples of it) from the first one kept
    until the arrival, each read off the newest kept by then. ``history``: (computed at,
    earliest, latest), epoch seconds; windows kept at or after the arrival are not read."""
    kept = sorted(h for h in history if h[0] < actual_s)
    samples: list[WindowSample] = []
    if not kept:
        return samples
    k = 0
    at_s = math.ceil(kept[0][0] / every_s) * every_s
    while at_s < actual_s:
        while k + 1 < len(kept) and kept[k + 1][0] <= at_s:
            k += 1
        samples.append(WindowSample(at_s, kept[k][1], kept[k][2], actual_s))
        at_s += every_s
    return samples


def figures(records: Sequence[StopRecord]) -> dict[str, object]:
    """:func:`eta.promise.promise_figures` of these stops and their window samples."""
    return promise_figures([r.promise for r in records], [s for r in records for s in r.samples])


def grouped_figures(records: Sequence[StopRecord], days: Sequence[date]) -> dict[str, Any]:
    """The figures over all ``records``, per day (every one of ``days``, oldest first, empty
    days included) and per route (by day, vehicle, plan)."""
    by_day: dict[date, list[StopRecord]] = {d: [] for d in days}
    by_route: dict[tuple[str, str], list[StopRecord]] = defaultdict(list)
    for record in records:
        by_day.setdefault(record.day, []).append(record)
        by_route[(record.plan_id, record.vehicle_id)].append(record)
    routes = sorted(
        by_route.items(), key=lambda kv: (min(r.day for r in kv[1]), kv[0][1], kv[0][0])
    )
    return {
        "overall": figures(records),
        "by_day": [{"day": d.isoformat(), **figures(by_day[d])} for d in sorted(by_day)],
        "by_route": [
            {
                "plan_id": plan_id,
                "vehicle_id": vehicle_id,
                "day": min(r.day for r in own).isoformat(),
                **figures(own),
            }
            for (plan_id, vehicle_id), own in routes
        ],
    }


# --- from the store --------------------------------------------------------------------------


def zone_of(name: str | None) -> ZoneInfo:
    """The organisation's time zone (UTC when it names none we know)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def organisation_zone(session: Session, organisation_id: str) -> ZoneInfo:
    organisation = session.get(Organisation, organisation_id)
    return zone_of(organisation.timezone if organisation is not None else None)


def last_days(now: datetime, zone: ZoneInfo, days: int) -> list[date]:
    """The ``days`` calendar days in ``zone`` up to the one of ``now``, oldest first."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be 1-{MAX_DAYS}, not {days}")
    today = now.astimezone(zone).date()
    return [today - timedelta(days=n) for n in range(days - 1, -1, -1)]


@dataclass(frozen=True, slots=True)
class _Stop:
    order_row: str
    order_id: str
    day: date
    #: The first dispatch holding the order that day: the stop owns what happened to the
    #: order from then until its next stop's start.
    start: datetime
    plan_id: str
    vehicle_id: str


def _stops(session: Session, organisation_id: str, zone: ZoneInfo, since: datetime) -> list[_Stop]:
    """The organisation's stops planned to arrive from ``since`` on (later days too: they end
    the stops before them)."""
    rows = session.execute(
        select(
            PlanStopRow.order_id,
            OrderRow.external_id,
            PlanStopRow.arrival,
            PlanRow.id,
            PlanRow.dispatched_at,
            VehicleRow.external_id,
        )
        .join(PlanRouteRow, PlanRouteRow.id == PlanStopRow.route_id)
        .join(PlanRow, PlanRow.id == PlanRouteRow.plan_id)
        .join(VehicleRow, VehicleRow.id == PlanRouteRow.vehicle_id)
        .join(OrderRow, OrderRow.id == PlanStopRow.order_id)
        .where(
            PlanRow.organisation_id == organisation_id,
            VehicleRow.organisation_id == organisation_id,
            OrderRow.organisation_id == organisation_id,
            PlanRow.dispatched_at.is_not(None),
            PlanRow.status != "cancelled",
            PlanStopRow.arrival >= since,
        )
        .order_by(PlanRow.dispatched_at, PlanRow.id)
    )
    stops: dict[tuple[str, date], _Stop] = {}
    for order_row, order_id, arrival, plan_id, dispatched_at, vehicle_id in rows:
        if dispatched_at is None:
            continue
        key = (order_row, arrival.astimezone(zone).date())
        known = stops.get(key)
        if known is None:
            stops[key] = _Stop(order_row, order_id, key[1], dispatched_at, plan_id, vehicle_id)
        else:  # dispatched later the same day: the stop is on this route now
            stops[key] = replace(known, plan_id=plan_id, vehicle_id=vehicle_id)
    return list(stops.values())


def _owner(
    of_order: Mapping[str, Sequence[_Stop]], order_row: str | None, at: datetime
) -> _Stop | None:
    """The stop that owns what happened to an order at ``at``: the last of its stops (in time
    order) started by then."""
    owner = None
    for stop in of_order.get(order_row, ()) if order_row is not None else ():
        if stop.start - SAME_INSTANT <= at:
            owner = stop
    return owner


def _epoch(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _told(
    session: Session, organisation_id: str, since: datetime, of_order: dict[str, list[_Stop]]
) -> dict[_Stop, list[ToldMessage]]:
    """The notifications sent to each stop's customer, each once (its first channel to go)."""
    seen: set[str] = set()
    told: dict[_Stop, list[ToldMessage]] = defaultdict(list)
    for order_row, dedupe_key, trigger, sent_at, payload in session.execute(
        select(
            OutboxRow.order_id,
            OutboxRow.dedupe_key,
            OutboxRow.trigger,
            OutboxRow.sent_at,
            OutboxRow.payload,
        )
        .where(
            OutboxRow.organisation_id == organisation_id,
            OutboxRow.status == "sent",
            OutboxRow.sent_at >= since,
        )
        .order_by(OutboxRow.sent_at, OutboxRow.id)
    ):
        # The outbox's key is the notification's key and its channel (notify/policy.py).
        notification = dedupe_key.rpartition(":")[0] or dedupe_key
        if order_row not in of_order or sent_at is None or notification in seen:
            continue
        seen.add(notification)
        message = payload.get("message") if isinstance(payload, dict) else None
        message = message if isinstance(message, dict) else {}
        version = message.get("eta_version")
        window = message.get("window")
        earliest_s = latest_s = None
        if isinstance(window, list) and len(window) == 2:
            earliest_s, latest_s = _epoch(window[0]), _epoch(window[1])
            if earliest_s is None or latest_s is None:
                earliest_s = latest_s = None
        # What it told happened then: the message belongs to the stop of that moment.
        happened_s = _epoch(message.get("event_at"))
        happened = datetime.fromtimestamp(happened_s, UTC) if happened_s is not None else sent_at
        stop = _owner(of_order, order_row, happened)
        if stop is not None:
            told[stop].append(
                ToldMessage(
                    sent_at.timestamp(),
                    trigger,
                    version if isinstance(version, int) else -1,
                    earliest_s,
                    latest_s,
                )
            )
    return told


def _arrivals(
    session: Session, organisation_id: str, since: datetime, of_order: dict[str, list[_Stop]]
) -> dict[_Stop, datetime]:
    """Each stop's first arrival."""
    arrived: dict[_Stop, datetime] = {}
    for order_row, at in session.execute(
        select(EventRow.order_id, EventRow.at).where(
            EventRow.organisation_id == organisation_id,
            EventRow.kind == ARRIVED,
            EventRow.at >= since,
            EventRow.order_id.is_not(None),
        )
    ):
        stop = _owner(of_order, order_row, at)
        if stop is not None and (stop not in arrived or at < arrived[stop]):
            arrived[stop] = at
    return arrived


def _history(
    session: Session,
    organisation_id: str,
    since: datetime,
    of_order: dict[str, list[_Stop]],
    arrived: dict[_Stop, datetime],
) -> dict[_Stop, list[tuple[float, float, float]]]:
    """The live windows kept for each stop that was reached, before it was."""
    kept: dict[_Stop, list[tuple[float, float, float]]] = defaultdict(list)
    for order_row, computed_at, start, end in session.execute(
        select(EtaRow.order_id, EtaRow.computed_at, EtaRow.window_start, EtaRow.window_end)
        .join(OrderRow, OrderRow.id == EtaRow.order_id)
        .where(OrderRow.organisation_id == organisation_id, EtaRow.computed_at >= since)
    ):
        stop = _owner(of_order, order_row, computed_at)
        if stop is not None and stop in arrived and computed_at < arrived[stop]:
            kept[stop].append((computed_at.timestamp(), start.timestamp(), end.timestamp()))
    return kept


def _records(
    session: Session, organisation_id: str, zone: ZoneInfo, since: datetime
) -> dict[tuple[str, date], StopRecord]:
    """Every stop planned from ``since`` on, by (order row id, day)."""
    stops = _stops(session, organisation_id, zone, since)
    if not stops:
        return {}
    of_order: dict[str, list[_Stop]] = defaultdict(list)
    for stop in sorted(stops, key=lambda s: s.start):
        of_order[stop.order_row].append(stop)
    first = min(s.start for s in stops) - SAME_INSTANT
    told = _told(session, organisation_id, first, of_order)
    arrived = _arrivals(session, organisation_id, first, of_order)
    history = _history(session, organisation_id, first, of_order, arrived)
    records: dict[tuple[str, date], StopRecord] = {}
    for stop in stops:
        actual = arrived.get(stop)
        actual_s = actual.timestamp() if actual is not None else None
        samples = window_samples(history[stop], actual_s) if actual_s is not None else []
        records[(stop.order_row, stop.day)] = StopRecord(
            stop.order_id,
            stop.day,
            stop.plan_id,
            stop.vehicle_id,
            stop_promise(stop.order_id, told.get(stop, ()), actual_s),
            tuple(samples),
        )
    return records


def _sorted(records: Iterable[StopRecord]) -> list[StopRecord]:
    return sorted(records, key=lambda r: (r.day, r.vehicle_id, r.order_id))


def promise_records(
    session: Session, organisation_id: str, days: Sequence[date], zone: ZoneInfo
) -> list[StopRecord]:
    """The organisation's stops of these days (in ``zone``), by day, vehicle and order."""
    if not days:
        return []
    since = datetime.combine(min(days), time(0), tzinfo=zone).astimezone(UTC)
    wanted = set(days)
    return _sorted(
        r for r in _records(session, organisation_id, zone, since).values() if r.day in wanted
    )


def all_records(session: Session, organisation_id: str) -> list[StopRecord]:
    """Every stop the organisation ever dispatched (a demo's day, a test's store)."""
    zone = organisation_zone(session, organisation_id)
    since = datetime(1970, 1, 1, tzinfo=UTC)
    return _sorted(_records(session, organisation_id, zone, since).values())


def plan_records(session: Session, plan_id: str) -> list[StopRecord]:
    """The stops of one dispatched plan (each counted under the route it ended on that day,
    maybe a later replan's); none for a plan never dispatched or cancelled."""
    plan = session.get(PlanRow, plan_id)
    if plan is None or plan.dispatched_at is None or plan.status == "cancelled":
        return []
    zone = organisation_zone(session, plan.organisation_id)
    planned = session.execute(
        select(PlanStopRow.order_id, PlanStopRow.arrival)
        .join(PlanRouteRow, PlanRouteRow.id == PlanStopRow.route_id)
        .where(PlanRouteRow.plan_id == plan_id)
    ).all()
    if not planned:
        return []
    keys = {(order_row, arrival.astimezone(zone).date()) for order_row, arrival in planned}
    since = datetime.combine(min(d for _, d in keys), time(0), tzinfo=zone).astimezone(UTC)
    records = _records(session, plan.organisation_id, zone, since)
    return _sorted(records[k] for k in keys if k in records)


def accuracy_report(
    session: Session, organisation_id: str, now: datetime, days: int
) -> dict[str, Any]:
    """The organisation's last ``days`` days (today, in its time zone, included): ``days``,
    ``timezone``, ``overall``, ``by_day`` and ``by_route`` (see :func:`grouped_figures`)."""
    zone = organisation_zone(session, organisation_id)
    period = last_days(now, zone, days)
    records = promise_records(session, organisation_id, period, zone)
    return {"days": days, "timezone": str(zone), **grouped_figures(records, period)}
