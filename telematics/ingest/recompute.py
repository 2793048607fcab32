"""Recomputing a vehicle's ETAs from its newest state, once per batch (eta/live.py): the
delay events against the windows told, and the ETA history rows worth keeping; and the
organisation's cap on the first window told."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from domain.errors import ValidationError
from domain.vehicle_progress import Progress
from eta.delay import DelayEvent, DelayParams, EtaChanged, WindowTold
from eta.live import recompute, route_progress
from eta.params import EtaParams
from eta.route import EtaRoute
from notify.codec import settings_from_json
from notify.outbox import Outbox
from notify.settings import NotifySettings
from store.schema import Organisation
from telematics.ingest.place import RoutePlan
from telematics.ingest.state import BatchState, VehicleState

#: The ETA history keeps a stop's ETA when it moved this much since the last one kept...
ETA_LOG_CHANGE_S = 60.0
#: ...or when the last one kept is this old (so accuracy can be measured at every horizon).
ETA_LOG_EVERY_S = 300.0

#: Where a session keeps the caps it read (organisation id -> minutes), without an outbox.
_CAPS_READ = "first_window_cap_min"

#: (lat, lon, stop lat, stop lon) -> drive seconds, for vehicles off their route.
OffRouteTravel = Callable[[float, float, float, float], float]


def recompute_etas(
    batch: BatchState,
    live: VehicleState,
    route: RoutePlan,
    eta: EtaRoute,
    now: datetime,
    eta_params: EtaParams,
    delay_params: DelayParams,
    off_route_travel: OffRouteTravel | None,
    silent_after_s: float | None = None,
) -> tuple[DelayEvent, ...]:
    """The vehicle's ETAs, told windows and pace from its progress; the delay events (their
    rows queued in the batch, returned for the customers) and the ETA history rows.

    A vehicle whose newest fix is more than ``silent_after_s`` old (None: never) is silent:
    the ETA core takes it to stand where it was last seen, so its ETAs move later as ``now``
    advances (whether a fix, an old one arriving late, or the silence timer asked)."""
    assert live.progress is not None
    result = recompute(
        eta,
        route_progress(
            live.progress,
            way_back_s(live.progress, route, off_route_travel),
            silent=is_silent(live.progress.fix_time, now, silent_after_s),
        ),
        live.told,
        now,
        eta_params,
        delay_params,
    )
    live.etas, live.told, live.pace = result.etas, result.told, result.pace
    for event in result.events:
        batch.events.append(delay_event(live, route, event))
    stamp = now.timestamp()
    for stop in result.etas:
        if stop.arrived:
            continue
        value = stop.eta_s
        logged = live.eta_log.get(stop.order_id)
        if (
            logged is not None
            and abs(value - logged[0]) < ETA_LOG_CHANGE_S
            and stamp - logged[1] < ETA_LOG_EVERY_S
        ):
            continue
        live.eta_log[stop.order_id] = (value, stamp)
        order_row = route.order_rows.get(stop.order_id)
        if order_row is not None:
            batch.etas.append(
                {
                    "order_id": order_row,
                    "computed_at": now,
                    "eta": stop.eta,
                    "window_start": stop.earliest,
                    "window_end": stop.latest,
                }
            )
    return result.events


def first_window_cap_min(session: Session, organisation_id: str, outbox: Outbox | None) -> int:
    """The organisation's cap on the first window told, minutes (``first_window_cap_min`` in
    its notification policy). Read through the outbox, which keeps each organisation's policy
    until it changes; without one, from the organisation's row, once per session (a batch's
    transaction): a policy changed meanwhile counts from the next batch. A stored policy that
    does not validate counts as the defaults, as the outbox has it."""
    if outbox is not None:
        return outbox.settings(session, organisation_id).first_window_cap_min
    read: dict[str, int] = session.info.setdefault(_CAPS_READ, {})
    if organisation_id not in read:
        org = session.get(Organisation, organisation_id)
        try:
            policy = settings_from_json(org.notification_policy if org is not None else {})
        except ValidationError:
            policy = NotifySettings()
        read[organisation_id] = policy.first_window_cap_min
    return read[organisation_id]


def is_silent(last_fix: datetime | None, now: datetime, silent_after_s: float | None) -> bool:
    """Whether a vehicle last seen at ``last_fix`` is silent at ``now``: no fix for longer
    than ``silent_after_s`` (None: never silent; no fix at all: not silent, it has not
    started reporting)."""
    if silent_after_s is None or last_fix is None:
        return False
    return (now - last_fix).total_seconds() > silent_after_s


def way_back_s(
    progress: Progress, route: RoutePlan, off_route_travel: OffRouteTravel | None
) -> float | None:
    """Off the route: the drive back to the next stop (a graph search, only then)."""
    k = progress.next_stop
    if (
        progress.on_route
        or off_route_travel is None
        or progress.lat is None
        or progress.lon is None
        or k >= len(route.stop_points)
    ):
        return None
    try:
        return off_route_travel(progress.lat, progress.lon, *route.stop_points[k])
    except ValueError:
        return None  # no road near enough: the ETA falls back to the planned line


def delay_event(live: VehicleState, route: RoutePlan, event: DelayEvent) -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": event.version,
        "eta": event.eta.isoformat(),
        "earliest": event.earliest.isoformat(),
        "latest": event.latest.isoformat(),
    }
    if isinstance(event, WindowTold):
        kind = "window_told"
    elif isinstance(event, EtaChanged):
        kind = "eta_changed"
        data |= {"previous_eta": event.previous_eta.isoformat(), "late": event.late}
    else:
        kind = "window_broken"
        data |= {
            "told_earliest": event.told_earliest.isoformat(),
            "told_latest": event.told_latest.isoformat(),
            "late": event.late,
        }
    return {
        "organisation_id": live.organisation_id,
        "order_id": route.order_rows.get(event.order_id),
        "vehicle_id": live.vehicle_id,
        "kind": kind,
        "at": event.at,
        "data": data,
    }
