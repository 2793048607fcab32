"""Reading the vehicles' state at the start of their first message in a batch: their rows and
progress, locked until the batch commits, or the state this worker last wrote if nobody changed
it since."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import func, select

from domain.vehicle_progress import progress_from_dict
from eta.live import told_from_list
from store.schema import ProgressRow, VehicleRow
from telematics.ingest.state import BatchState, VehicleState

#: PostgreSQL advisory lock class of "writing a vehicle's first progress row" (any constant).
FIRST_ROW_LOCK = 7_041_001


def vehicle_state(
    batch: BatchState, cache: dict[str, VehicleState], vehicle_id: str
) -> VehicleState | None:
    """The vehicle's state for this batch, read once."""
    if vehicle_id not in batch.live:
        load(batch, cache, {vehicle_id})
    return batch.live.get(vehicle_id)


def load(batch: BatchState, cache: dict[str, VehicleState], ids: set[str]) -> None:
    """Read the vehicles' rows (plain columns, no ORM objects: this runs for every
    vehicle of every batch) and their progress, locked until the batch commits."""
    if not ids:
        return
    session = batch.session
    vehicles = session.execute(
        select(
            VehicleRow.id,
            VehicleRow.organisation_id,
            VehicleRow.external_id,
            VehicleRow.active_plan_id,
        ).where(VehicleRow.id.in_(ids))
    ).all()
    progress = select(
        ProgressRow.vehicle_id,
        ProgressRow.plan_id,
        ProgressRow.last_fix_time,
        ProgressRow.last_lat,
        ProgressRow.last_lon,
        ProgressRow.updated_at,
    ).with_for_update()
    rows = {
        r.vehicle_id: r
        for r in session.execute(progress.where(ProgressRow.vehicle_id.in_(ids))).all()
    }
    missing = {v.id for v in vehicles} - rows.keys()
    if missing and session.get_bind().dialect.name == "postgresql":
        # No row yet, so nothing to lock: another worker (a shared subscription) may be
        # writing this vehicle's first one. Lock its id instead (in one order: no
        # deadlock between workers), then look again.
        for vehicle_id in sorted(missing):
            session.execute(
                select(func.pg_advisory_xact_lock(FIRST_ROW_LOCK, func.hashtext(vehicle_id)))
            )
        for r in session.execute(progress.where(ProgressRow.vehicle_id.in_(missing))).all():
            rows[r.vehicle_id] = r
    for vehicle_id, organisation_id, external_id, plan_id in vehicles:
        row = rows.get(vehicle_id)
        cached = cache.get(vehicle_id)
        if (
            row is not None
            and cached is not None
            and cached.updated_at == row.updated_at
            and cached.plan_id == plan_id
            and row.plan_id == plan_id
        ):
            batch.live[vehicle_id] = replace(cached)
            continue
        state: dict[str, Any] = {}
        if row is not None:
            state = (
                session.scalar(
                    select(ProgressRow.state).where(ProgressRow.vehicle_id == vehicle_id)
                )
                or {}
            )
        # Progress of another plan is kept too: a new plan for a vehicle on the road
        # carries its served stops over (carry_over), one sharing no stop starts afresh.
        known = bool(state.get("stops")) and row is not None
        batch.live[vehicle_id] = VehicleState(
            vehicle_id=vehicle_id,
            organisation_id=organisation_id,
            external_id=external_id,
            plan_id=plan_id,
            stored=row is not None,
            last_fix_time=row.last_fix_time if row is not None else None,
            last_lat=row.last_lat if row is not None else None,
            last_lon=row.last_lon if row is not None else None,
            updated_at=row.updated_at if row is not None else None,
            progress=progress_from_dict(state) if known else None,
            told={k: told_from_list(v) for k, v in (state.get("told") or {}).items()},
            eta_log={},
        )
