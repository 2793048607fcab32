"""What the stages pass along: a message's result, one vehicle's state while a batch runs, and
the batch itself (its transaction and the rows it will write when it ends)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from domain.vehicle_progress import Progress
from eta.delay import Told
from eta.pace import Pace
from eta.predict import StopEta
from notify.triggers import DeliveryEvent
from telematics.progress import Event

if TYPE_CHECKING:
    from telematics.ingest.place import PlanRoutes


@dataclass(frozen=True, slots=True)
class IngestResult:
    status: str  # "applied" | "history" | "rejected"
    reason: str = ""
    vehicle_id: str | None = None
    events: tuple[Event, ...] = ()


@dataclass
class VehicleState:
    """One vehicle's state while a batch runs: read once, written once at its end."""

    vehicle_id: str
    organisation_id: str
    external_id: str
    #: The vehicle's active plan (what it should be tracked on).
    plan_id: str | None
    #: Whether its progress row exists yet (insert or update when the batch ends).
    stored: bool
    last_fix_time: datetime | None
    last_lat: float | None
    last_lon: float | None
    #: ``updated_at`` of the row: as read, then as this batch will write it.
    updated_at: datetime | None
    progress: Progress | None
    told: dict[str, Told]
    #: order id -> (ETA, computed at) last written to the ETA history, epoch seconds. Kept in
    #: memory only: after a restart the history gets one extra row per stop, nothing worse.
    eta_log: dict[str, tuple[float, float]]
    etas: tuple[StopEta, ...] = ()
    pace: Pace | None = None
    #: ``updated_at`` as this worker last wrote it: if the row still has it, nobody else
    #: (another worker, a driver event over HTTP) changed the state since.
    written_at: datetime | None = None
    dirty: bool = False
    #: A fix moved the vehicle since its ETAs were last computed.
    stale_etas: bool = False
    #: A fix caused a progress event (arrived, departed, ...): its ETAs are recomputed when
    #: the batch ends, however recently they were last (see ``Ingester.eta_every_s``).
    eta_due: bool = False
    #: When its ETAs were last computed (in memory only: after a restart, at the first fix).
    etas_at: datetime | None = None
    #: (told, etas, their stored form): reused while both are the same objects, so a batch
    #: that did not recompute the vehicle's ETAs does not convert them again.
    stored_lists: tuple[object, object, dict[str, Any], list[Any]] | None = None
    #: (progress stops, their stored form): the same, for the stops' statuses.
    stored_stops: tuple[object, list[dict[str, object]]] | None = None


@dataclass
class BatchState:
    session: Session
    live: dict[str, VehicleState] = field(default_factory=dict)
    #: A topic's (organisation or None, vehicle id) -> the rows holding it, read in this
    #: transaction and kept for this batch only (decode.resolve_vehicles).
    vehicle_rows: dict[tuple[str | None, str], tuple[str, ...]] = field(default_factory=dict)
    #: Plan id -> its routes by vehicle (None: no such plan), read once in this batch.
    plans: dict[str, PlanRoutes | None] = field(default_factory=dict)
    positions: list[dict[str, Any]] = field(default_factory=list)
    etas: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    #: Order row id -> what its customer may be told about (for the notification outbox).
    deliveries: dict[str, list[DeliveryEvent]] = field(default_factory=dict)
    #: Messages the batch queued to send now.
    queued: int = 0
