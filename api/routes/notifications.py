"""Customer notifications of an order: what was queued, sent or given up, with every attempt."""

from __future__ import annotations

from collections import defaultdict

from fastapi import APIRouter
from sqlalchemy import select

from api.deps import OrderId, Reader, SessionDep
from api.routes.fleet import ERRORS
from api.routes.orders import order_row
from api.schemas import ErrorBody, NotificationAttemptOut, NotificationOut
from store.schema import NotificationAttemptRow, OutboxRow

router = APIRouter(
    prefix="/v1/orders",
    tags=["notifications"],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}},
)


@router.get(
    "/{order_id}/notifications",
    responses=ERRORS,
    summary="The order's customer notifications, newest first, with their delivery attempts.",
)
def list_notifications(
    order_id: OrderId, caller: Reader, session: SessionDep
) -> list[NotificationOut]:
    order = order_row(session, caller.organisation_id, order_id)
    rows = session.scalars(
        select(OutboxRow)
        .where(OutboxRow.order_id == order.id)
        .order_by(OutboxRow.created_at.desc(), OutboxRow.id.desc())
    ).all()
    attempts: dict[int, list[NotificationAttemptOut]] = defaultdict(list)
    if rows:
        for attempt in session.scalars(
            select(NotificationAttemptRow)
            .where(NotificationAttemptRow.outbox_id.in_([r.id for r in rows]))
            .order_by(NotificationAttemptRow.at, NotificationAttemptRow.id)
        ):
            attempts[attempt.outbox_id].append(
                NotificationAttemptOut(at=attempt.at, status=attempt.status, detail=attempt.detail)
            )
    return [
        NotificationOut(
            channel=row.channel,
            trigger=row.trigger,
            status=row.status,
            due_at=row.due_at,
            attempts=row.attempts,
            sent_at=row.sent_at,
            last_error=row.last_error,
            created_at=row.created_at,
            attempts_detail=attempts[row.id],
        )
        for row in rows
    ]
