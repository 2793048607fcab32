"""What the dispatcher dashboard shows (:func:`dashboard_state`): today's routes and vehicles,
every stop with its planned and live ETA and whether it is late, the orders left unassigned and
why, the notification feed and the week's promise figures (:mod:`api.dashboard_accuracy`),
JSON-ready. The routes that serve it over HTTP, sign-in included, are in
:mod:`api.routes.dashboard`; ``lastmile demo`` draws the same state in the terminal.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session, undefer

from api.dashboard_accuracy import accuracy_panel
from api.routes.tracking import _zone as zone_of
from notify.answer import LATE_FROM_MINUTES
from store.repo import order_windows
from store.schema import (
    EventRow,
    OrderRow,
    Organisation,
    OutboxRow,
    PlanRouteRow,
    PlanRow,
    PlanStopRow,
    ProgressRow,
    VehicleRow,
)
from telematics.ingest.silence import SILENT_AFTER_S, no_signal

#: Notification feed length, newest first.
FEED_SIZE = 50
#: Unassigned orders listed at most (the count says how many there are).
MAX_UNASSIGNED = 200
#: An outbox error is cut to this many characters: the feed is a glance, not a log.
MAX_ERROR_CHARS = 300
#: Line coordinates are rounded to this many decimals (about a metre, plenty on a map): the
#: stored 7 would only lengthen the state pushed on every change.
LINE_DECIMALS = 5
#: The order's outcome → the stop's status on the map (a skipped stop is a failed visit).
OUTCOMES = {"delivered": "delivered", "failed": "failed", "skipped": "failed"}
#: Orders still waiting for a plan.
WAITING = ("open", "planned")
#: Order statuses that leave nothing to do at the stop.
FINISHED = ("delivered", "failed", "skipped", "cancelled")


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat(timespec="seconds") if at is not None else None


def _iso_s(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds")


def lateness(
    eta_s: float, windows: Sequence[tuple[datetime, datetime]], told_eta: datetime | None
) -> tuple[int, list[str]]:
    """(Minutes late, why: "window" and/or "told"); (0, []) when not late.

    Late against the order's windows when the live ETA is after the end of its last window (an
    ETA in a gap between windows waits for the next one); late against what the customer was
    told when the live ETA is at least ``LATE_FROM_MINUTES`` after the told ETA, the threshold
    at which the tracking page and support tell the customer it is late.
    """
    minutes = 0
    reasons: list[str] = []
    if windows:
        over_min = round((eta_s - max(end for _, end in windows).timestamp()) / 60)
        if over_min >= 1:
            minutes, reasons = over_min, ["window"]
    if told_eta is not None:
        over_min = round((eta_s - told_eta.timestamp()) / 60)
        if over_min >= LATE_FROM_MINUTES:
            minutes = max(minutes, over_min)
            reasons.append("told")
    return minutes, reasons


def _line(feature: Any) -> list[list[float]]:
    """A GeoJSON LineString's [lon, lat] coordinates as Leaflet's [lat, lon] (none if odd)."""
    try:
        geometry = feature["geometry"]
        if geometry["type"] != "LineString":
            return []
        return [
            [round(float(p[1]), LINE_DECIMALS), round(float(p[0]), LINE_DECIMALS)]
            for p in geometry["coordinates"]
        ]
    except (KeyError, TypeError, ValueError, IndexError):
        return []


def _lines(geojson: dict[str, Any] | None) -> dict[str, list[list[float]]]:
    """Each route's line by the feature's vehicle id (your id for the vehicle, as the planner
    writes it)."""
    out: dict[str, list[list[float]]] = {}
    features = (geojson or {}).get("features")
    for feature in features if isinstance(features, list) else []:
        props = feature.get("properties") if isinstance(feature, dict) else None
        if isinstance(props, dict) and isinstance(props.get("vehicle_id"), str):
            out[props["vehicle_id"]] = _line(feature)
    return out


def _overlaps(windows: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime) -> bool:
    return any(w_start < end and w_end > start for w_start, w_end in windows)


def _told_etas(session: Session, organisation_id: str, order_ids: set[str]) -> dict[str, datetime]:
    """Each order's ETA when its first window was told, by order row id. The latest such event
    counts: an order planned again (failed yesterday, rescheduled today) was promised anew."""
    told: dict[str, datetime] = {}
    if not order_ids:
        return told
    for order_id, data in session.execute(
        select(EventRow.order_id, EventRow.data)
        .where(
            EventRow.organisation_id == organisation_id,
            EventRow.kind == "window_told",
            EventRow.order_id.in_(sorted(order_ids)),
        )
        .order_by(EventRow.at.desc(), EventRow.id.desc())
    ):
        eta = data.get("eta") if isinstance(data, dict) else None
        if order_id is not None and order_id not in told and isinstance(eta, str):
            told[order_id] = datetime.fromisoformat(eta)
    return told


def _still_driven() -> Any:
    """A route whose vehicle is still on it: its progress tracks the route's plan and a stop is
    still to be done. A van running late past midnight is on the dashboard until it finishes,
    not dropped when the calendar day turns."""
    tracked = exists().where(
        ProgressRow.vehicle_id == PlanRouteRow.vehicle_id,
        ProgressRow.plan_id == PlanRouteRow.plan_id,
    )
    open_stop = exists().where(
        PlanStopRow.route_id == PlanRouteRow.id,
        OrderRow.id == PlanStopRow.order_id,
        OrderRow.status.not_in(FINISHED),
    )
    return and_(tracked, open_stop)


def dashboard_state(
    session: Session,
    organisation_id: str,
    now: datetime,
    silent_after_s: float = SILENT_AFTER_S,
) -> dict[str, Any]:
    """Everything the dashboard shows, JSON-ready, for the organisation's day around ``now``.

    Today's routes are the routes of dispatched plans (not cancelled) that overlap the
    organisation's calendar day, and yesterday's that a vehicle is still driving. Each vehicle
    shows its newest such route (a replan or an insertion supersedes the route it changed);
    stops of its older routes stay only when their outcome is known, as replanning leaves done
    stops out. Live ETAs are used only while the vehicle's progress tracks that same plan.
    ``now`` (the service's clock) picks the day and tells which vehicles with stops still to
    serve have sent no fix for over ``silent_after_s`` (``no_signal``); nothing else changes
    with the clock, so the live stream sends only real changes (a vehicle falling silent is
    one).
    """
    organisation = session.get(Organisation, organisation_id)
    zone = zone_of(organisation.timezone if organisation is not None else "UTC")
    day = now.astimezone(zone).date()
    day_start = datetime.combine(day, clock_time(0), tzinfo=zone)
    day_end = datetime.combine(day + timedelta(days=1), clock_time(0), tzinfo=zone)

    routes = session.execute(
        select(PlanRouteRow, VehicleRow)
        .join(PlanRow, PlanRow.id == PlanRouteRow.plan_id)
        .join(VehicleRow, VehicleRow.id == PlanRouteRow.vehicle_id)
        .where(
            PlanRow.organisation_id == organisation_id,
            VehicleRow.organisation_id == organisation_id,
            PlanRow.dispatched_at.is_not(None),
            PlanRow.status != "cancelled",
            PlanRouteRow.start < day_end,
            or_(
                PlanRouteRow.end >= day_start,
                and_(PlanRouteRow.start >= day_start - timedelta(days=1), _still_driven()),
            ),
        )
        .order_by(PlanRow.dispatched_at.desc(), PlanRow.id.desc(), PlanRouteRow.id)
    ).all()
    stops_of: dict[str, list[PlanStopRow]] = defaultdict(list)
    if routes:
        for stop in session.scalars(
            select(PlanStopRow)
            .where(PlanStopRow.route_id.in_([route.id for route, _ in routes]))
            .order_by(PlanStopRow.seq)
        ):
            stops_of[stop.route_id].append(stop)
    order_ids = {s.order_id for stops in stops_of.values() for s in stops}
    orders = {
        o.id: o
        for o in session.scalars(
            select(OrderRow).where(
                OrderRow.organisation_id == organisation_id, OrderRow.id.in_(sorted(order_ids))
            )
        )
    }

    # Newest route first: a vehicle's first route seen is its current one, and an order is
    # shown once, on the newest route that has it.
    current: dict[str, tuple[PlanRouteRow, VehicleRow]] = {}
    shown: dict[str, list[tuple[bool, PlanStopRow, OrderRow]]] = defaultdict(list)
    placed: set[str] = set()
    for route, vehicle in routes:
        is_current = vehicle.id not in current
        if is_current:
            current[vehicle.id] = (route, vehicle)
        for stop in stops_of[route.id]:
            order = orders.get(stop.order_id)
            if order is None or order.id in placed:
                continue
            if not is_current and order.status not in OUTCOMES:
                continue
            placed.add(order.id)
            shown[vehicle.id].append((is_current, stop, order))

    progress = {
        p.vehicle_id: p
        for p in session.scalars(
            select(ProgressRow)
            .options(undefer(ProgressRow.state))
            .where(
                ProgressRow.organisation_id == organisation_id,
                ProgressRow.vehicle_id.in_(sorted(current)),
            )
        )
    }
    plan_ids = list(dict.fromkeys(route.plan_id for route, _ in routes))
    plans = {
        plan_id: (result, geojson)
        for plan_id, result, geojson in session.execute(
            select(PlanRow.id, PlanRow.result, PlanRow.geojson).where(
                PlanRow.organisation_id == organisation_id, PlanRow.id.in_(plan_ids)
            )
        )
    }
    lines = {plan_id: _lines(geojson) for plan_id, (_, geojson) in plans.items()}
    windows = order_windows(orders.values())
    told = _told_etas(session, organisation_id, placed)

    vehicles: list[dict[str, Any]] = []
    late_total = 0
    for vehicle_id, (route, vehicle) in current.items():
        row = progress.get(vehicle_id)
        live = row is not None and row.plan_id == route.plan_id
        state: dict[str, Any] = (row.state or {}) if row is not None and live else {}
        etas = {e[0]: e for e in state.get("etas", []) if isinstance(e, list) and len(e) >= 6}
        visits = {s.get("order_id"): s for s in state.get("stops", []) if isinstance(s, dict)}
        stops: list[dict[str, Any]] = []
        next_found = False
        items = sorted(shown[vehicle_id], key=lambda i: (i[0], i[1].arrival, i[1].seq))
        for is_current, stop, order in items:
            entry = etas.get(order.external_id) if is_current else None
            visit = visits.get(order.external_id) if is_current else None
            if order.status in OUTCOMES:
                status = OUTCOMES[order.status]
            elif order.status == "cancelled":
                status = "cancelled"
            elif entry is not None and entry[5]:
                status = "arrived"
            elif visit is not None and visit.get("departed_at"):
                status = "left"  # the vehicle moved on; the driver has not told the outcome
            elif entry is not None and not next_found:
                status, next_found = "next", True
            else:
                status = "planned"
            own_windows = windows.get(order.external_id, [])
            late_min = 0
            reasons: list[str] = []  # not late, or no live ETA to tell
            if entry is not None and status in ("arrived", "next", "planned"):
                late_min, reasons = lateness(float(entry[1]), own_windows, told.get(order.id))
            late_total += bool(reasons)
            stops.append(
                {
                    "order": order.external_id,
                    "ref": order.customer_ref,
                    "seq": stop.seq + 1,  # as drivers count: the first stop is 1
                    "lat": order.lat,
                    "lon": order.lon,
                    "status": status,
                    "order_status": order.status,
                    "planned_arrival": _iso(stop.arrival),
                    "eta": _iso_s(float(entry[1])) if entry is not None else None,
                    "eta_window": [_iso_s(float(entry[2])), _iso_s(float(entry[3]))]
                    if entry is not None
                    else None,
                    "time_windows": [[_iso(s), _iso(e)] for s, e in own_windows],
                    "late": bool(reasons),
                    "late_min": late_min,
                    "late_reasons": reasons,
                }
            )
        plan_lines = lines.get(route.plan_id, {})
        done = sum(s["status"] in ("delivered", "failed", "left") for s in stops)
        # A cancelled order stays on the map where it was, but it is not work to do.
        total = sum(s["status"] != "cancelled" for s in stops)
        vehicles.append(
            {
                "id": vehicle.external_id,
                "driver": vehicle.driver_first_name,
                "plan_id": route.plan_id,
                "route_start": _iso(route.start),
                "route_end": _iso(route.end),
                "last_fix": _iso(row.last_fix_time) if row is not None else None,
                "last_fix_at": _iso(row.last_fix_time) if row is not None else None,
                "no_signal": no_signal(
                    row.last_fix_time if row is not None else None,
                    now,
                    silent_after_s,
                    stops_left=done < total,
                ),
                "lat": row.last_lat if row is not None else None,
                "lon": row.last_lon if row is not None else None,
                "line": plan_lines.get(vehicle.external_id) or plan_lines.get(vehicle.id) or [],
                "stops": stops,
                "stops_done": done,
                "stops_total": total,
            }
        )
    vehicles.sort(key=lambda v: str(v["id"]))

    unassigned, unassigned_total = _unassigned(
        session, organisation_id, plan_ids, plans, placed, day_start, day_end
    )
    feed = _feed(session, organisation_id)
    sent = session.scalar(
        select(func.count()).where(
            OutboxRow.organisation_id == organisation_id,
            OutboxRow.status == "sent",
            OutboxRow.sent_at >= day_start,
            OutboxRow.sent_at < day_end,
        )
    )
    # A failed message has no time of its own: it counts on the day it was queued.
    failed = session.scalar(
        select(func.count()).where(
            OutboxRow.organisation_id == organisation_id,
            OutboxRow.status.in_(("failed", "dead")),
            OutboxRow.created_at >= day_start,
            OutboxRow.created_at < day_end,
        )
    )
    all_stops = [s for v in vehicles for s in v["stops"]]
    return {
        "organisation": organisation.name if organisation is not None else "",
        "timezone": str(zone),
        "day": day.isoformat(),
        "counts": {
            "vehicles": len(vehicles),
            "stops_total": sum(v["stops_total"] for v in vehicles),
            "stops_done": sum(v["stops_done"] for v in vehicles),
            "stops_delivered": sum(s["status"] == "delivered" for s in all_stops),
            "stops_failed": sum(s["status"] == "failed" for s in all_stops),
            "stops_late": late_total,
            "unassigned": unassigned_total,
            "messages_sent": sent or 0,
            "messages_failed": failed or 0,
        },
        "vehicles": vehicles,
        "unassigned": unassigned,
        "feed": feed,
        "accuracy": accuracy_panel(session, organisation_id, now),
    }


def _unassigned(
    session: Session,
    organisation_id: str,
    plan_ids: Sequence[str],
    plans: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]],
    placed: set[str],
    day_start: datetime,
    day_end: datetime,
) -> tuple[list[dict[str, Any]], int]:
    """Orders still waiting for a plan: those today's plans left out, with the newest plan's
    reason, and the others due today (a window overlapping it, or none). An order that has
    since been dispatched elsewhere, cancelled or done is not waiting."""
    reasons: dict[str, dict[str, Any]] = {}
    for plan_id in plan_ids:  # newest first
        result = plans.get(plan_id, (None, None))[0] or {}
        for left in result.get("unassigned", []):
            if isinstance(left, dict) and isinstance(left.get("order_id"), str):
                reasons.setdefault(left["order_id"], left)
    waiting = [
        o
        for o in session.scalars(
            select(OrderRow)
            .where(
                OrderRow.organisation_id == organisation_id,
                OrderRow.status.in_(WAITING),
                OrderRow.created_at < day_end,
            )
            .order_by(OrderRow.created_at, OrderRow.external_id)
        )
        if o.id not in placed
    ]
    windows = order_windows(waiting)
    out: list[dict[str, Any]] = []
    for order in waiting:
        left = reasons.get(order.external_id)
        own = windows.get(order.external_id, [])
        if left is None and own and not _overlaps(own, day_start, day_end):
            continue
        out.append(
            {
                "order": order.external_id,
                "ref": order.customer_ref,
                "status": order.status,
                "reason": str(left["reason"]) if left is not None else "not planned yet",
                "marginal_cost": left.get("marginal_cost") if left is not None else None,
                "time_windows": [[_iso(s), _iso(e)] for s, e in own],
            }
        )
    # The plan's reasons first: those orders were tried and could not be served.
    out.sort(key=lambda u: u["order"] not in reasons)
    return out[:MAX_UNASSIGNED], len(out)


def _feed(session: Session, organisation_id: str) -> list[dict[str, Any]]:
    """The organisation's newest notifications (payloads are not read: they can be large)."""
    rows = session.execute(
        select(
            OutboxRow.id,
            OutboxRow.created_at,
            OutboxRow.sent_at,
            OutboxRow.trigger,
            OutboxRow.channel,
            OutboxRow.status,
            OutboxRow.attempts,
            OutboxRow.last_error,
            OrderRow.external_id,
            OrderRow.customer_ref,
        )
        .join(OrderRow, OrderRow.id == OutboxRow.order_id)
        .where(OutboxRow.organisation_id == organisation_id)
        .order_by(OutboxRow.created_at.desc(), OutboxRow.id.desc())
        .limit(FEED_SIZE)
    )
    return [
        {
            "id": r.id,
            "at": _iso(r.created_at),
            "sent_at": _iso(r.sent_at),
            "order": r.external_id,
            "ref": r.customer_ref,
            "trigger": r.trigger,
            "channel": r.channel,
            "status": r.status,
            "attempts": r.attempts,
            "last_error": (r.last_error or "")[:MAX_ERROR_CHARS],
        }
        for r in rows
    ]
