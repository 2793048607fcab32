"""Writing what a batch did: each fix's positions row as it comes, then at the batch's end one
progress row per vehicle changed and one statement per table (positions, ETA history,
events), the customers' messages through the outbox in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.orm import Session

from domain.position import Position
from domain.vehicle_progress import progress_to_dict, stops_to_list
from eta.live import eta_to_list, told_to_list
from notify.outbox import Outbox
from store.schema import EtaRow, EventRow, PositionRow, ProgressRow
from telematics.ingest.state import BatchState, VehicleState

#: (whether the vehicle's progress row exists already, the row as it will be written)
ProgressRows = list[tuple[bool, dict[str, Any]]]


#: The columns of a progress row as :func:`progress_row` makes it (all but the key).
PROGRESS_COLUMNS = (
    "organisation_id",
    "plan_id",
    "last_fix_time",
    "last_lat",
    "last_lon",
    "state",
    "updated_at",
)


def position_row(
    live: VehicleState, position: Position, applied: bool, now: datetime
) -> dict[str, Any]:
    """The fix's positions row (kept whether or not it moved the vehicle's state)."""
    return {
        "organisation_id": live.organisation_id,
        "vehicle_id": live.vehicle_id,
        "fix_time": position.fix_time,
        "lat": position.lat,
        "lon": position.lon,
        "speed_mps": position.speed_mps,
        "heading_deg": position.heading_deg,
        "accuracy_m": position.accuracy_m,
        "source": position.source,
        "applied": applied,
        "received_at": now,
    }


def changed_row(live: VehicleState, now: datetime) -> dict[str, Any] | None:
    """The vehicle's progress row, None if nothing changed since it was last written."""
    if not live.dirty:
        return None
    live.dirty = False
    return progress_row(live, now)


def progress_row(live: VehicleState, now: datetime) -> dict[str, Any]:
    """The vehicle's progress row as it will be written."""
    state: dict[str, Any] = {}
    if live.progress is not None:
        stops = live.stored_stops
        if stops is None or stops[0] is not live.progress.stops:
            stops = (live.progress.stops, stops_to_list(live.progress.stops))
            live.stored_stops = stops
        state = progress_to_dict(live.progress, stops[1])
    # Compact lists of epoch seconds: this is written for every vehicle on every batch, and
    # converted again only when the ETAs were recomputed.
    lists = live.stored_lists
    if lists is None or lists[0] is not live.told or lists[1] is not live.etas:
        lists = (
            live.told,
            live.etas,
            {k: told_to_list(v) for k, v in live.told.items()},
            [eta_to_list(e) for e in live.etas],
        )
        live.stored_lists = lists
    state["told"], state["etas"] = lists[2], lists[3]
    if live.pace is not None:
        state["pace"] = {
            "travel": round(live.pace.travel, 3),
            "service": round(live.pace.service, 3),
        }
    live.updated_at = now
    return {
        "vehicle_id": live.vehicle_id,
        "organisation_id": live.organisation_id,
        "plan_id": live.progress.plan_id if live.progress is not None else live.plan_id,
        "last_fix_time": live.last_fix_time,
        "last_lat": live.last_lat,
        "last_lon": live.last_lon,
        "state": state,
        "updated_at": now,
    }


_PROGRESS = cast(Table, ProgressRow.__table__)
_POSITIONS = cast(Table, PositionRow.__table__)
#: By primary key, one executemany, through SQLAlchemy Core: the ORM's bulk update prepared
#: each row's parameters again, a seventh of a batch's time (ADR 0027).
_UPDATE_PROGRESS = (
    update(_PROGRESS)
    .where(_PROGRESS.c.vehicle_id == bindparam("key_vehicle_id"))
    .values({c: bindparam(c) for c in PROGRESS_COLUMNS})
)


def write_progress_rows(session: Session, rows: ProgressRows) -> None:
    new = [row for stored, row in rows if not stored]
    old = [{**row, "key_vehicle_id": row["vehicle_id"]} for stored, row in rows if stored]
    if new:
        session.execute(insert(_PROGRESS), new)
    if old:
        session.execute(_UPDATE_PROGRESS, old)


def write_batch(
    batch: BatchState, rows: ProgressRows, outbox: Outbox | None, now: datetime
) -> None:
    """One statement per table, one state per vehicle."""
    session = batch.session
    session.flush()
    write_progress_rows(session, rows)
    if batch.positions:
        session.execute(insert(_POSITIONS), batch.positions)
    if batch.etas:
        session.execute(insert(EtaRow), batch.etas)
    if batch.events:
        session.execute(insert(EventRow), batch.events)
    if outbox is not None and batch.deliveries:
        # Same transaction as the events that caused them: told once, never lost.
        batch.queued = outbox.enqueue(session, batch.deliveries, now)
