"""What the demo's day came to, read from the store: orders, outcomes, messages, how right
the ETAs were, and whether the customers of late stops were told before the van came."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.accuracy import all_records, figures
from store.schema import EtaRow, EventRow, OrderRow, OutboxRow, SupportContactRow

#: Messages that tell a customer their delivery is later than they were told.
DELAY_TRIGGERS = ("eta_changed", "window_broken")
#: The promise's figures the demo's summary line shows (eta/promise.py's keys, read from the
#: store as the accuracy report reads it: store/accuracy.py).
SUMMARY_KEYS = (
    "material_delays",
    "material_delays_told_15min_ahead",
    "material_delay_recall",
    "first_window_hit",
    "first_window_width_min",
    "late_notice_precision",
    "lead_time_median_min",
)


def aware(at: datetime) -> datetime:
    # SQLite hands back naive UTC datetimes; the store writes UTC only.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


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


def first_told_latest(session: Session, organisation_id: str) -> dict[str, datetime]:
    """Order row id -> the end of the first live window the customer was given."""
    told: dict[str, tuple[datetime, datetime]] = {}
    for order_id, at, data in session.execute(
        select(EventRow.order_id, EventRow.at, EventRow.data).where(
            EventRow.organisation_id == organisation_id, EventRow.kind == "window_told"
        )
    ):
        if order_id is None or "latest" not in data:
            continue
        at = aware(at)
        if order_id not in told or at < told[order_id][0]:
            told[order_id] = (at, datetime.fromisoformat(data["latest"]))
    return {k: latest for k, (_, latest) in told.items()}


def eta_mae_s(
    session: Session, organisation_id: str, arrivals: dict[str, datetime]
) -> float | None:
    """Mean absolute error of every ETA computed before the vehicle arrived, in seconds."""
    errors: list[float] = []
    ids = list(arrivals)
    for order_id, computed_at, eta in session.execute(
        select(EtaRow.order_id, EtaRow.computed_at, EtaRow.eta)
        .join(OrderRow, OrderRow.id == EtaRow.order_id)
        .where(OrderRow.organisation_id == organisation_id, EtaRow.order_id.in_(ids))
    ):
        arrived = arrivals[order_id]
        if aware(computed_at) < arrived:
            errors.append(abs((aware(eta) - arrived).total_seconds()))
    return round(sum(errors) / len(errors), 1) if errors else None


def summary(session: Session, organisation_id: str) -> dict[str, Any]:
    """The demo's last line: ``orders``, ``delivered``, ``failed``, ``messages_sent``,
    ``eta_mae_s``, ``late_stops`` (arrived after the end of the first window told),
    ``late_stops_notified`` (of those, told of the delay by a message sent before arrival),
    ``contacts`` (customers' messages) and ``answered_auto`` (answered by the service itself),
    then the promise's figures (:data:`SUMMARY_KEYS`)."""
    statuses: dict[str, int] = defaultdict(int)
    for status, n in session.execute(
        select(OrderRow.status, func.count())
        .where(OrderRow.organisation_id == organisation_id)
        .group_by(OrderRow.status)
    ):
        statuses[status] = n
    sent = session.scalar(
        select(func.count()).where(
            OutboxRow.organisation_id == organisation_id, OutboxRow.status == "sent"
        )
    )
    arrivals = first_arrivals(session, organisation_id)
    told = first_told_latest(session, organisation_id)
    late = {o for o, arrived in arrivals.items() if o in told and arrived > told[o]}
    warned: dict[str, datetime] = {}
    for order_id, sent_at in session.execute(
        select(OutboxRow.order_id, OutboxRow.sent_at).where(
            OutboxRow.organisation_id == organisation_id,
            OutboxRow.status == "sent",
            OutboxRow.trigger.in_(DELAY_TRIGGERS),
            OutboxRow.order_id.in_(list(late)),
        )
    ):
        if sent_at is not None:
            at = aware(sent_at)
            warned[order_id] = min(at, warned.get(order_id, at))
    promise = figures(all_records(session, organisation_id))
    notified = sum(1 for o in late if o in warned and warned[o] <= arrivals[o])
    contacts = dict(
        session.execute(
            select(SupportContactRow.answered_by, func.count())
            .where(SupportContactRow.organisation_id == organisation_id)
            .group_by(SupportContactRow.answered_by)
        ).all()
    )
    return {
        "orders": sum(statuses.values()),
        "delivered": statuses["delivered"],
        "failed": statuses["failed"],
        "messages_sent": int(sent or 0),
        "eta_mae_s": eta_mae_s(session, organisation_id, arrivals),
        "late_stops_notified": notified,
        "late_stops": len(late),
        # Customers who wrote anyway, and how many the service answered by itself.
        "contacts": sum(contacts.values()),
        "answered_auto": contacts.get("auto", 0),
    } | {k: promise[k] for k in SUMMARY_KEYS}


def summary_line(app: Any, org_id: str) -> dict[str, Any]:
    """The organisation's summary, read from the running service's store."""
    with app.state.sessions() as session:
        return summary(session, org_id)


def settled(app: Any, org_id: str) -> bool:
    """No message due and not yet sent (deferred ones wait for the morning, not for us)."""
    with app.state.sessions() as session:
        waiting = session.scalar(
            select(func.count()).where(
                OutboxRow.organisation_id == org_id, OutboxRow.status.in_(("pending", "sending"))
            )
        )
    return not waiting


def summary_json(result: dict[str, Any]) -> str:
    """The demo's last line: the summary keys first, in their order."""
    keys = (
        "orders",
        "delivered",
        "failed",
        "messages_sent",
        "eta_mae_s",
        "late_stops_notified",
        "late_stops",
    )
    ordered = {k: result[k] for k in keys} | {k: v for k, v in result.items() if k not in keys}
    return json.dumps(ordered)
