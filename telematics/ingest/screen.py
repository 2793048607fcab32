"""Screening a decoded fix against the vehicle's state: the hygiene verdict
(telematics/hygiene.py), and a redelivered fix found already stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from domain.position import Position
from store.schema import PositionRow
from telematics.hygiene import HygieneParams, Screened, Verdict, screen
from telematics.ingest.state import BatchState, VehicleState


def screen_fix(
    batch: BatchState,
    live: VehicleState,
    position: Position,
    now: datetime,
    params: HygieneParams,
) -> Screened:
    """Apply, keep as history only, or reject (with the reason for the dead letters)."""
    last = None
    if live.last_fix_time is not None and live.last_lat is not None and live.last_lon is not None:
        last = Position(live.vehicle_id, live.last_fix_time, live.last_lat, live.last_lon)
    verdict = screen(position, last, now, params)
    if verdict.verdict is Verdict.HISTORY_ONLY and stored(
        batch, live.vehicle_id, position.fix_time
    ):
        # A redelivery (MQTT QoS 1 is at-least-once: a fix committed whose ack was
        # lost comes again after a reconnect or a crash): it is stored once.
        return Screened(Verdict.REJECT, "duplicate")
    return verdict


def stored(batch: BatchState, vehicle_id: str, fix_time: datetime) -> bool:
    """Whether the vehicle already has a position at ``fix_time``, in this batch or stored
    (asked only for out-of-order fixes, so the steady stream pays nothing)."""
    if any(p["vehicle_id"] == vehicle_id and p["fix_time"] == fix_time for p in batch.positions):
        return True
    found = batch.session.scalar(
        select(PositionRow.id)
        .where(PositionRow.vehicle_id == vehicle_id, PositionRow.fix_time == fix_time)
        .limit(1)
    )
    return found is not None
