"""Silent vehicles: a vehicle on its route that has sent no fix for longer than the threshold
(a dead phone, a breakdown) still has its ETAs recomputed, as time passes without it.

ETAs are otherwise recomputed only when a fix arrives, so a silent vehicle's customers would
keep their ETAs and no window would ever break. The service's silence timer (``api/app.py``,
every ``silent_tick_s`` of service time) calls :meth:`Ingester.tick_silent`, which finds the
silent vehicles here and runs them through the same stages as a fix's batch: ``recompute``
(the vehicle taken to stand where it was last seen, so its ETAs start now: see
``eta/predict.py``), ``tell`` (a broken window is a ``window_broken`` event and a customer
message, as for a fix) and ``store`` (one transaction). The dispatcher sees ``no signal``
(``api/dashboard_state.py``, ``GET /v1/vehicles/{id}/progress``) by :func:`no_signal`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select

from eta.route import EtaRoute
from store.schema import ProgressRow, VehicleRow
from telematics.ingest.load import load
from telematics.ingest.place import RoutePlan, route_for
from telematics.ingest.recompute import is_silent
from telematics.ingest.state import BatchState, VehicleState

#: No fix for longer than this: the vehicle is silent (a fix every few seconds is normal;
#: a tunnel or a dead zone lasts a minute or two).
SILENT_AFTER_S = 120.0
#: Silent this long, the vehicle is given up on (its day is over, or abandoned): the timer
#: stops recomputing it, and its ETAs stay as last computed.
GIVE_UP_AFTER_S = 12 * 3600.0

__all__ = [
    "GIVE_UP_AFTER_S",
    "SILENT_AFTER_S",
    "is_silent",
    "no_signal",
    "silent_for_s",
    "silent_ids",
    "silent_on_route",
]


def silent_ids(batch: BatchState, now: datetime, after_s: float) -> set[str]:
    """Vehicles (row ids) tracked on their active plan whose last fix is more than
    ``after_s`` old (and less than ``GIVE_UP_AFTER_S``)."""
    rows = batch.session.execute(
        select(ProgressRow.vehicle_id)
        .join(VehicleRow, VehicleRow.id == ProgressRow.vehicle_id)
        .where(
            VehicleRow.active_plan_id.is_not(None),
            ProgressRow.plan_id == VehicleRow.active_plan_id,
            ProgressRow.last_fix_time < now - timedelta(seconds=after_s),
            ProgressRow.last_fix_time >= now - timedelta(seconds=GIVE_UP_AFTER_S),
        )
    )
    return {vehicle_id for (vehicle_id,) in rows}


def silent_on_route(
    batch: BatchState,
    cache: dict[str, VehicleState],
    routes: dict[str, RoutePlan | None],
    ids: Iterable[str],
    now: datetime,
    after_s: float,
) -> list[tuple[VehicleState, RoutePlan, EtaRoute]]:
    """Of ``ids``, the vehicles whose state (read and locked for this batch) shows them
    silent on the route they are tracked on, with stops still ahead and a schedule to
    predict from: their state, route and ETA route."""
    wanted = set(ids)
    load(batch, cache, wanted - batch.live.keys())
    found: list[tuple[VehicleState, RoutePlan, EtaRoute]] = []
    for vehicle_id in sorted(wanted):
        live = batch.live.get(vehicle_id)
        progress = live.progress if live is not None else None
        if live is None or progress is None:
            continue
        if not is_silent(progress.fix_time, now, after_s):
            continue  # a fix came since the query (another worker)
        route = route_for(batch, routes, live)
        if (
            route is None
            or route.eta is None
            or progress.plan_id != route.track.plan_id
            or progress.next_stop >= len(progress.stops)
        ):
            continue
        found.append((live, route, route.eta))
    return found


def silent_for_s(last_fix: datetime | None, now: datetime) -> float | None:
    """Seconds since the vehicle's last fix (None: it has sent none)."""
    if last_fix is None:
        return None
    return max((now - last_fix).total_seconds(), 0.0)


def no_signal(
    last_fix: datetime | None, now: datetime, after_s: float, *, stops_left: bool
) -> bool:
    """What the dispatcher is shown: silent beyond the threshold while stops are still to be
    served (a van back at the depot with its phone off, or one that has not reported yet,
    is not "no signal")."""
    return stops_left and is_silent(last_fix, now, after_s)
