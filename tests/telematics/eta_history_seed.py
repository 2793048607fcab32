"""Past live ETAs and arrivals in the store, as the ingester leaves them: ``eta_history`` rows
and ``arrived`` events of orders."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.orm import Session, sessionmaker

from store.db import transaction
from store.schema import EtaRow, EventRow, OrderRow

#: Residuals (arrival - ETA, s) of the seeded orders of a day: one order each, from 5 min early
#: to 14 min late, late likelier than early as on real days.
RESIDUALS_S: tuple[float, ...] = tuple(-300.0 + 60.0 * k for k in range(20))
#: Each seeded order's ETA is kept once a minute from this many minutes ahead down to...
LEAD_MIN = 60
#: ...this many: before the earliest arrival (the ingester keeps none after a stop's).
LAST_LEAD_MIN = 6


def add_order(session: Session, organisation_id: str, external_id: str) -> str:
    """A delivered order; returns its row id."""
    order = OrderRow(
        organisation_id=organisation_id,
        external_id=external_id,
        lat=60.17,
        lon=24.94,
        status="delivered",
        tracking_token=uuid.uuid4().hex,
    )
    session.add(order)
    session.flush()
    return order.id


def add_etas(session: Session, order_row: str, etas: Iterable[tuple[datetime, datetime]]) -> None:
    """ETA history rows: (computed at, ETA), the window 10 minutes either side."""
    for computed_at, eta in etas:
        session.add(
            EtaRow(
                order_id=order_row,
                computed_at=computed_at,
                eta=eta,
                window_start=eta - timedelta(minutes=10),
                window_end=eta + timedelta(minutes=10),
            )
        )


def add_arrival(session: Session, organisation_id: str, order_row: str, at: datetime) -> None:
    session.add(
        EventRow(organisation_id=organisation_id, order_id=order_row, kind="arrived", at=at)
    )


def add_eta_history(
    sessions: sessionmaker[Session],
    organisation_id: str,
    days: Sequence[date],
    residuals_s: Sequence[float] = RESIDUALS_S,
) -> None:
    """Per day, one order per residual, 15 minutes apart from 09:00 UTC: its ETA steady and
    kept once a minute from ``LEAD_MIN`` minutes ahead down to ``LAST_LEAD_MIN``, its van
    arriving ``residual`` after it. Every horizon bucket from 5 minutes to an hour gets one
    sample per order and minute of its span, so the same residuals in each."""
    with transaction(sessions) as session:
        for day in days:
            for k, residual_s in enumerate(residuals_s):
                eta = datetime.combine(day, time(9), tzinfo=UTC) + timedelta(minutes=15 * k)
                row = add_order(session, organisation_id, f"{day}-h{k}")
                made = [eta - timedelta(minutes=m) for m in range(LEAD_MIN, LAST_LEAD_MIN - 1, -1)]
                add_etas(session, row, [(at, eta) for at in made])
                add_arrival(session, organisation_id, row, eta + timedelta(seconds=residual_s))
