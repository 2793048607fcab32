"""Support: find an order by reference, phone or e-mail with a ready answer; record "where is
my order?" (WISMO) contacts; the WISMO rate per day and route."""

from __future__ import annotations

import re
from collections import Counter as Counter_
from collections import defaultdict
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query, Request
from prometheus_client import Counter
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from api.deps import Reader, SessionDep, service_now
from api.errors import ApiError
from api.proofs import support_proof
from api.routes.fleet import ERRORS
from api.routes.orders import order_row
from api.schemas import (
    ErrorBody,
    SupportContactIn,
    SupportContactOut,
    SupportNotificationOut,
    SupportOrderOut,
    SupportWindowOut,
    WismoDayOut,
    WismoPolicyOut,
    WismoReportOut,
    WismoRouteOut,
)
from notify.answer import ready_answer
from notify.codec import settings_from_json
from store.schema import (
    EventRow,
    OrderRow,
    Organisation,
    OutboxRow,
    PlanRouteRow,
    PlanRow,
    PlanStopRow,
    ProgressRow,
    SupportContactRow,
    VehicleRow,
)

router = APIRouter(
    tags=["support"],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}},
)

MAX_RESULTS = 20
_PHONE = re.compile(r"\+?[0-9]{3,}")
_PHONE_NOISE = (" ", "-", ".", "(", ")", "/")


def normalise_phone(text: str) -> str:
    """Digits with a leading +: spaces, dashes, dots and brackets dropped, 00 → +."""
    out = text.strip()
    for noise in _PHONE_NOISE:
        out = out.replace(noise, "")
    return "+" + out[2:] if out.startswith("00") else out


def _phone_column() -> ColumnElement[str]:
    column: ColumnElement[str] = OrderRow.contact_phone  # type: ignore[assignment]
    for noise in _PHONE_NOISE:
        column = func.replace(column, noise, "")
    return column


def phone_matches(phone: str) -> ColumnElement[bool]:
    """Orders whose phone is ``phone`` (normalised), however the shop wrote it (spaces,
    dashes, dots, brackets; +39 or 0039)."""
    forms = {phone}
    if phone.startswith("+"):
        forms.add("00" + phone[1:])
    return _phone_column().in_(sorted(forms))


def contacts_counter(request: Request) -> Counter:
    """``lastmile_wismo_contacts_total{channel}`` on the app's registry (made at start-up)."""
    counter: Counter = request.app.state.wismo_contacts
    return counter


def _at(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def _latest_route(session: Session, order: OrderRow) -> tuple[str, str] | None:
    """(plan id, vehicle row id) of the order's latest dispatched plan."""
    found = session.execute(
        select(PlanRow.id, PlanRouteRow.vehicle_id)
        .join(PlanRouteRow, PlanRouteRow.plan_id == PlanRow.id)
        .join(PlanStopRow, PlanStopRow.route_id == PlanRouteRow.id)
        .where(
            PlanStopRow.order_id == order.id,
            PlanRow.organisation_id == order.organisation_id,
            PlanRow.dispatched_at.is_not(None),
        )
        .order_by(PlanRow.dispatched_at.desc())
        .limit(1)
    ).first()
    return (found[0], found[1]) if found is not None else None


def _late_minutes(session: Session, order: OrderRow) -> int | None:
    """How late the latest broken window is against the first window told (None: none told)."""
    events = session.scalars(
        select(EventRow)
        .where(
            EventRow.organisation_id == order.organisation_id,
            EventRow.order_id == order.id,
            EventRow.kind.in_(("window_told", "window_broken")),
        )
        .order_by(EventRow.at, EventRow.id)
    ).all()
    told = next((e for e in events if e.kind == "window_told"), None)
    if told is None:
        return None
    broken = [e for e in events if e.kind == "window_broken" and e.at >= told.at]
    if not broken:
        return 0
    first = datetime.fromisoformat(told.data["eta"])
    now = datetime.fromisoformat(broken[-1].data["eta"])
    return max(0, round((now - first).total_seconds() / 60))


def support_view(
    session: Session, order: OrderRow, tracking_url: str, now: datetime
) -> SupportOrderOut:
    """What support sees of an order now, with the ready answer for its customer."""
    window: tuple[datetime, datetime] | None = None
    eta: datetime | None = None
    stops_before: int | None = None
    last_fix: datetime | None = None
    route = _latest_route(session, order)
    if route is not None:
        plan_id, vehicle_id = route
        progress = session.get(ProgressRow, vehicle_id)
        if progress is not None:
            last_fix = progress.last_fix_time
            if progress.plan_id == plan_id and order.status == "dispatched":
                etas = (progress.state or {}).get("etas", [])
                for i, stored in enumerate(etas):
                    if stored[0] == order.external_id:
                        eta = _at(stored[1])
                        window = (_at(stored[2]), _at(stored[3]))
                        stops_before = i
                        break
    if window is None and order.status == "dispatched":
        known = (order.notify_state or {}).get("known_window")
        if isinstance(known, list) and len(known) == 2:
            window = (datetime.fromisoformat(known[0]), datetime.fromisoformat(known[1]))
    late = _late_minutes(session, order)
    notifications = [
        SupportNotificationOut(
            trigger=row.trigger, channel=row.channel, status=row.status, sent_at=row.sent_at
        )
        for row in session.scalars(
            select(OutboxRow)
            .where(OutboxRow.order_id == order.id)
            .order_by(OutboxRow.created_at, OutboxRow.id)
        )
    ]
    answer = ready_answer(
        order.status,
        window,
        eta,
        stops_before,
        late,
        order.language,
        order.timezone,
        now,
        tracking_url,
    )
    return SupportOrderOut(
        order_id=order.external_id,
        customer_ref=order.customer_ref,
        status=order.status,
        window=SupportWindowOut(start=window[0], end=window[1]) if window else None,
        eta=eta,
        last_fix_time=last_fix,
        stops_before=stops_before,
        late_minutes=late,
        notifications=notifications,
        answer=answer,
        proof=support_proof(session, order),
    )


@router.get(
    "/v1/support/lookup",
    summary="Find orders by reference, phone or e-mail, with a ready answer for the customer.",
    responses={422: {"model": ErrorBody}},
)
def lookup(
    caller: Reader,
    session: SessionDep,
    request: Request,
    q: Annotated[
        str,
        Query(
            min_length=3,
            max_length=200,
            description="An order id, the customer's reference, phone or e-mail.",
        ),
    ],
) -> list[SupportOrderOut]:
    """Only the caller's organisation's orders; at most 20, newest first."""
    text = q.strip()
    if len(text) < 3:
        raise ApiError(
            422,
            "invalid",
            "q needs at least 3 characters",
            [{"field": "q", "message": "at least 3 characters"}],
        )
    matches: list[ColumnElement[bool]] = [
        OrderRow.external_id == text,
        func.lower(OrderRow.customer_ref) == text.lower(),
    ]
    if "@" in text:
        matches.append(func.lower(OrderRow.contact_email) == text.lower())
    phone = normalise_phone(text)
    if _PHONE.fullmatch(phone):
        matches.append(phone_matches(phone))
    rows = session.scalars(
        select(OrderRow)
        .where(OrderRow.organisation_id == caller.organisation_id, or_(*matches))
        .order_by(OrderRow.created_at.desc(), OrderRow.external_id)
        .limit(MAX_RESULTS)
    ).all()
    from api.app import TRACKING_PATH  # the app imports this module

    base = request.app.state.settings.tracking_base
    now = service_now(request)
    return [
        support_view(session, row, base + TRACKING_PATH.format(token=row.tracking_token), now)
        for row in rows
    ]


@router.post(
    "/v1/support/contacts",
    status_code=201,
    responses=ERRORS,
    summary='Record a customer\'s "where is my order?" contact.',
)
def record_contact(
    body: SupportContactIn, caller: Reader, session: SessionDep, request: Request
) -> SupportContactOut:
    order = order_row(session, caller.organisation_id, body.order_id)
    row = SupportContactRow(
        organisation_id=caller.organisation_id,
        order_id=order.id,
        channel=body.channel,
        at=service_now(request),
        note=body.note,
        answered_by="person",
    )
    session.add(row)
    session.flush()
    contacts_counter(request).labels(body.channel).inc()
    return SupportContactOut(
        id=row.id, order_id=order.external_id, channel=row.channel, at=row.at, note=row.note
    )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _rate(contacts: int, orders: int) -> float | None:
    return round(100 * contacts / orders, 1) if orders else None


@router.get(
    "/v1/reports/wismo",
    summary="WISMO contacts per 100 delivered or failed orders, per day and route, with the "
    "notification policy.",
)
def wismo_report(
    caller: Reader,
    session: SessionDep,
    request: Request,
    days: Annotated[int, Query(ge=1, le=92, description="Days back, today included.")] = 7,
) -> WismoReportOut:
    organisation = session.get(Organisation, caller.organisation_id)
    assert organisation is not None
    zone = _zone(organisation.timezone)
    today = service_now(request).astimezone(zone).date()
    first_day = today - timedelta(days=days - 1)
    since = datetime.combine(first_day, time(0), tzinfo=zone).astimezone(UTC)

    outcomes: dict[str, set[str]] = defaultdict(set)
    for order_id, at in session.execute(
        select(EventRow.order_id, EventRow.at).where(
            EventRow.organisation_id == caller.organisation_id,
            EventRow.kind.in_(("delivered", "failed")),
            EventRow.at >= since,
            EventRow.order_id.is_not(None),
        )
    ):
        if order_id is not None:
            outcomes[at.astimezone(zone).date().isoformat()].add(order_id)
    contacts: dict[str, list[str]] = defaultdict(list)
    contacts_n: Counter_[str] = Counter_()
    answered_auto: Counter_[str] = Counter_()
    for order_id, at, answered_by in session.execute(
        select(
            SupportContactRow.order_id, SupportContactRow.at, SupportContactRow.answered_by
        ).where(
            SupportContactRow.organisation_id == caller.organisation_id,
            SupportContactRow.at >= since,
        )
    ):
        day = at.astimezone(zone).date().isoformat()
        contacts_n[day] += 1
        answered_auto[day] += answered_by == "auto"
        if order_id is not None:  # a message that matched no order has no route
            contacts[day].append(order_id)

    day_rows = []
    for n in range(days):
        day = (first_day + timedelta(days=n)).isoformat()
        orders_n, asked = len(outcomes[day]), contacts_n[day]
        day_rows.append(
            WismoDayOut(
                day=day,
                orders=orders_n,
                contacts=asked,
                rate=_rate(asked, orders_n),
                answered_auto=answered_auto[day],
            )
        )

    routes = _routes_of(
        session,
        caller.organisation_id,
        {o for ids in outcomes.values() for o in ids} | {o for c in contacts.values() for o in c},
    )
    per_route: dict[str | None, list[int]] = defaultdict(lambda: [0, 0])
    for ids in outcomes.values():
        for order_id in ids:
            per_route[routes.get(order_id)][0] += 1
    for ids_list in contacts.values():
        for order_id in ids_list:
            per_route[routes.get(order_id)][1] += 1
    route_rows = [
        WismoRouteOut(vehicle_id=vehicle, orders=o, contacts=c, rate=_rate(c, o))
        for vehicle, (o, c) in sorted(
            per_route.items(), key=lambda kv: (kv[0] is None, kv[0] or "")
        )
    ]

    policy = settings_from_json(organisation.notification_policy or {})
    total = sum(contacts_n.values())
    return WismoReportOut(
        timezone=str(zone),
        days=day_rows,
        answered_auto_share=round(sum(answered_auto.values()) / total, 3) if total else None,
        routes=route_rows,
        policy=WismoPolicyOut(
            enabled=sorted(str(t) for t in policy.enabled),
            default_channels=[str(c) for c in policy.default_channels],
            stops_away_n=policy.stops_away_n,
            minutes_away_m=policy.minutes_away_m,
            budget_per_order=policy.budget_per_order,
            quiet_start=policy.quiet_start.strftime("%H:%M") if policy.quiet_start else None,
            quiet_end=policy.quiet_end.strftime("%H:%M") if policy.quiet_end else None,
        ),
    )


def _routes_of(session: Session, organisation_id: str, order_ids: set[str]) -> dict[str, Any]:
    """Order row id → the vehicle (your id) of its latest dispatched plan's route."""
    if not order_ids:
        return {}
    out: dict[str, Any] = {}
    for order_id, vehicle, _ in session.execute(
        select(PlanStopRow.order_id, VehicleRow.external_id, PlanRow.dispatched_at)
        .join(PlanRouteRow, PlanRouteRow.id == PlanStopRow.route_id)
        .join(PlanRow, PlanRow.id == PlanRouteRow.plan_id)
        .join(VehicleRow, VehicleRow.id == PlanRouteRow.vehicle_id)
        .where(
            PlanRow.organisation_id == organisation_id,
            PlanRow.dispatched_at.is_not(None),
            PlanStopRow.order_id.in_(sorted(order_ids)),
        )
        .order_by(PlanRow.dispatched_at)
    ):
        out[order_id] = vehicle  # later plans overwrite earlier ones
    return out
