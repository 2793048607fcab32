"""The demo day's promise as its customers lived it (docs/accuracy.md, ``eta/promise.py``),
read from what the service really did: the messages the sender got out (the outbox's sent
rows, the same ones the mailbox and the shop's webhook log received), the windows the ETA core
said were broken, and the arrivals the ingester recorded. Nothing here reads the day's script.

Per order: the **first window told** is the window of the first message that reached the
customer carrying one (the plan's, sent when the plan was dispatched); a **late notice** is a
sent ``window_broken`` message whose ETA event says ``late``, with the end of the window that
event said was broken, at the time the message went out; the **actual arrival** is the first
``arrived`` event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from eta.promise import DelayNotice, StopPromise, promise_figures
from store.schema import EventRow, OrderRow, OutboxRow

#: Messages about the ETA after the first window (moved, or the window broken).
ETA_MESSAGE_TRIGGERS = frozenset({"eta_changed", "window_broken"})
#: The promise's figures the demo's summary line shows (eta/promise.py's keys).
SUMMARY_KEYS = (
    "material_delays",
    "material_delays_told_15min_ahead",
    "material_delay_recall",
    "first_window_hit",
    "first_window_width_min",
    "late_notice_precision",
    "lead_time_median_min",
)


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One notification that went out (its earliest channel copy)."""

    order_id: str
    trigger: str
    eta_version: int
    sent_at: datetime
    #: The window it told (start, end); None: it told none.
    window: tuple[datetime, datetime] | None


@dataclass(frozen=True, slots=True)
class BrokenWindow:
    """The ETA core's ``window_broken`` event: the window told until then is broken."""

    order_id: str
    version: int
    told_latest: datetime
    late: bool


def aware(at: datetime) -> datetime:
    # SQLite hands back naive UTC datetimes; the store writes UTC only.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _late_notice(message: SentMessage, broken: Iterable[BrokenWindow]) -> DelayNotice | None:
    """The notice a sent ``window_broken`` message gave, from the event it told: the newest
    window-broken event of the order at or before the message's version (a queued message
    re-issued under a newer version still tells the break that caused it)."""
    causes = [b for b in broken if b.version <= message.eta_version]
    if not causes:
        return None
    cause = max(causes, key=lambda b: b.version)
    if not cause.late:
        return None
    return DelayNotice(message.sent_at.timestamp(), cause.told_latest.timestamp())


def stop_promises(
    orders: Mapping[str, str],
    sent: Iterable[SentMessage],
    broken: Iterable[BrokenWindow],
    arrivals: Mapping[str, datetime],
) -> list[StopPromise]:
    """Each order's record (``orders``: order id -> the stop id to report it by) from the
    messages that went out, the ETA core's broken windows and the first arrivals."""
    sent_by: dict[str, list[SentMessage]] = {order_id: [] for order_id in orders}
    for message in sent:
        if message.order_id in sent_by:
            sent_by[message.order_id].append(message)
    broken_by: dict[str, list[BrokenWindow]] = {order_id: [] for order_id in orders}
    for event in broken:
        if event.order_id in broken_by:
            broken_by[event.order_id].append(event)
    out: list[StopPromise] = []
    for order_id, stop_id in orders.items():
        messages = sorted(sent_by[order_id], key=lambda m: (m.sent_at, m.eta_version))
        first = next((m for m in messages if m.window is not None), None)
        after = [
            m
            for m in messages
            if first is not None and m is not first and m.trigger in ETA_MESSAGE_TRIGGERS
        ]
        notices = tuple(
            notice
            for m in after
            if m.trigger == "window_broken"
            and (notice := _late_notice(m, broken_by[order_id])) is not None
        )
        arrived = arrivals.get(order_id)
        out.append(
            StopPromise(
                stop_id,
                None if first is None or first.window is None else first.window[0].timestamp(),
                None if first is None or first.window is None else first.window[1].timestamp(),
                None if arrived is None else arrived.timestamp(),
                notices,
                len(after),
            )
        )
    return out


def sent_messages(session: Session, organisation_id: str) -> list[SentMessage]:
    """Every notification that went out, once per (order, trigger, version): the channels
    carry the same message, and the customer had it from the first that went."""
    first: dict[tuple[str, str, int], SentMessage] = {}
    for order_id, trigger, sent_at, payload in session.execute(
        select(OutboxRow.order_id, OutboxRow.trigger, OutboxRow.sent_at, OutboxRow.payload).where(
            OutboxRow.organisation_id == organisation_id,
            OutboxRow.status == "sent",
            OutboxRow.sent_at.is_not(None),
        )
    ):
        message: dict[str, Any] = (payload or {}).get("message") or {}
        version = int(message.get("eta_version", -1))
        raw = message.get("window")
        window = (
            (aware(datetime.fromisoformat(raw[0])), aware(datetime.fromisoformat(raw[1])))
            if isinstance(raw, list) and len(raw) == 2
            else None
        )
        at = aware(sent_at)
        key = (order_id, trigger, version)
        if key not in first or at < first[key].sent_at:
            first[key] = SentMessage(order_id, trigger, version, at, window)
    return list(first.values())


def broken_windows(session: Session, organisation_id: str) -> list[BrokenWindow]:
    out: list[BrokenWindow] = []
    for order_id, data in session.execute(
        select(EventRow.order_id, EventRow.data).where(
            EventRow.organisation_id == organisation_id,
            EventRow.kind == "window_broken",
            EventRow.order_id.is_not(None),
        )
    ):
        if order_id is None or "told_latest" not in data or "version" not in data:
            continue
        out.append(
            BrokenWindow(
                order_id,
                int(data["version"]),
                aware(datetime.fromisoformat(data["told_latest"])),
                bool(data.get("late")),
            )
        )
    return out


def first_arrivals(session: Session, organisation_id: str) -> dict[str, datetime]:
    """Order row id -> when a vehicle first arrived there (the ingester's "arrived")."""
    rows = session.execute(
        select(EventRow.order_id, func.min(EventRow.at))
        .where(
            EventRow.organisation_id == organisation_id,
            EventRow.kind == "arrived",
            EventRow.order_id.is_not(None),
        )
        .group_by(EventRow.order_id)
    )
    return {order_id: aware(at) for order_id, at in rows if order_id is not None}


def promise_summary(session: Session, organisation_id: str) -> dict[str, object]:
    """The promise's figures of the organisation's day (``SUMMARY_KEYS`` and the rest of
    :func:`eta.promise.promise_figures`), from the store."""
    orders = dict(
        session.execute(
            select(OrderRow.id, OrderRow.external_id).where(
                OrderRow.organisation_id == organisation_id
            )
        ).all()
    )
    stops = stop_promises(
        orders,
        sent_messages(session, organisation_id),
        broken_windows(session, organisation_id),
        first_arrivals(session, organisation_id),
    )
    return promise_figures(stops)
