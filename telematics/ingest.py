"""The ingestion pipeline: decode → screen → store → place on the route → store progress.

Transports (MQTT, HTTP) hand each message to one :class:`Ingester` method and acknowledge it
only after the method returns: by then the fix, its effects, or the reason it was refused are
committed. A refused message goes to the dead letters with its reason and bumps a counter.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from domain.position import Position
from domain.route_track import RouteTrack, route_track
from domain.vehicle_progress import Progress, progress_from_dict, progress_to_dict
from eta.delay import DelayEvent, DelayParams, EtaChanged, Told, WindowBroken, WindowTold
from eta.live import (
    eta_to_list,
    recompute,
    route_from_plan,
    route_progress,
    told_from_list,
    told_to_list,
)
from eta.pace import Pace
from eta.params import EtaParams
from eta.predict import StopEta
from eta.route import EtaRoute
from notify.outbox import Outbox
from notify.triggers import DeliveryEvent, Trigger
from store.db import transaction
from store.repo import order_windows
from store.schema import (
    DeadLetterRow,
    DeviceRow,
    EtaRow,
    EventRow,
    OrderRow,
    PlanRow,
    PositionRow,
    ProgressRow,
    VehicleRow,
)
from telematics.decoders import (
    DecodeError,
    decode_fleet_json,
    decode_gpsd_tpv,
    decode_osmand,
    decode_osmand_json,
    decode_owntracks,
    parse_time,
    topic_part,
)
from telematics.hygiene import HygieneParams, Verdict, screen
from telematics.progress import (
    Arrived,
    Departed,
    Event,
    LeftRoute,
    Passed,
    ProgressParams,
    apply_fix,
    carry_over,
    start,
)


@dataclass(frozen=True, slots=True)
class IngestResult:
    status: str  # "applied" | "history" | "rejected"
    reason: str = ""
    vehicle_id: str | None = None
    events: tuple[Event, ...] = ()


@dataclass(frozen=True, slots=True)
class _RoutePlan:
    """A vehicle's dispatched route, ready for the hot path (cached per plan and vehicle)."""

    track: RouteTrack
    #: None when the plan carries no schedule for the route (then no ETAs, progress only).
    eta: EtaRoute | None
    #: External order id -> order row id.
    order_rows: dict[str, str]
    #: (lat, lon) of each stop, in route order.
    stop_points: tuple[tuple[float, float], ...] = ()


@dataclass
class _Live:
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
    stale_etas: bool = False


@dataclass
class _Batch:
    session: Session
    live: dict[str, _Live] = field(default_factory=dict)
    positions: list[dict[str, Any]] = field(default_factory=list)
    etas: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    #: Order row id -> what its customer may be told about (for the notification outbox).
    deliveries: dict[str, list[DeliveryEvent]] = field(default_factory=dict)
    #: Messages the batch queued to send now.
    queued: int = 0


#: PostgreSQL advisory lock class of "writing a vehicle's first progress row" (any constant).
FIRST_ROW_LOCK = 7_041_001
#: The ETA history keeps a stop's ETA when it moved this much since the last one kept...
ETA_LOG_CHANGE_S = 60.0
#: ...or when the last one kept is this old (so accuracy can be measured at every horizon).
ETA_LOG_EVERY_S = 300.0


@dataclass
class Ingester:
    sessions: sessionmaker[Session]
    hygiene: HygieneParams = field(default_factory=HygieneParams)
    progress: ProgressParams = field(default_factory=ProgressParams)
    eta_params: EtaParams = field(default_factory=EtaParams)
    delay_params: DelayParams = field(default_factory=DelayParams)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    osmand_speed_unit: str = "knots"
    #: Where customer notifications are queued (None: no notifications, e.g. a benchmark).
    outbox: Outbox | None = None
    #: Called after a batch that queued messages has committed (wakes the sender).
    on_queued: Callable[[], None] | None = None
    #: (lat, lon, stop lat, stop lon) -> drive seconds, for vehicles off their route.
    off_route_travel: Callable[[float, float, float, float], float] | None = None
    counts: Counter[str] = field(default_factory=Counter)
    _routes: dict[str, _RoutePlan | None] = field(default_factory=dict)
    _vehicle_ids: dict[str, str] = field(default_factory=dict)
    #: vehicle row id -> its live state as last written (reused while the stored ``rev`` is
    #: unchanged, so a steady stream never re-parses its own JSON).
    _cache: dict[str, _Live] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _batch: _Batch | None = None

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Process several messages in one transaction (committed when the block ends):
        the MQTT side acks them all after that commit."""
        with self._lock:
            if self._batch is not None:  # nested: the outer batch commits
                yield
                return
            try:
                with transaction(self.sessions) as session:
                    batch = _Batch(session)
                    self._batch = batch
                    # Flushing before every read would send each fix on its own; the batch
                    # writes once, at its end.
                    with session.no_autoflush:
                        yield
                    self._finish(batch)
                if batch.queued and self.on_queued is not None:
                    self.on_queued()  # committed: the sender can take them now
            except BaseException:
                # Rolled back: what was cached from this batch never reached the store.
                for vehicle_id in self._batch.live if self._batch else ():
                    self._cache.pop(vehicle_id, None)
                raise
            finally:
                self._batch = None

    @contextmanager
    def _scope(self) -> Iterator[Session]:
        if self._batch is not None:
            yield self._batch.session
        else:
            with self.batch():
                assert self._batch is not None
                yield self._batch.session

    def prefetch(self, external_ids: Iterable[str]) -> None:
        """Inside a batch: read (and lock) the state of these vehicles in two statements
        instead of two per vehicle."""
        batch = self._batch
        if batch is None:
            return
        ids = {self._vehicle_ids[e] for e in external_ids if e in self._vehicle_ids}
        self._load(batch, ids - batch.live.keys())

    def _load(self, batch: _Batch, ids: set[str]) -> None:
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
            cached = self._cache.get(vehicle_id)
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
            batch.live[vehicle_id] = _Live(
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

    # One method per transport/format -------------------------------------------------
    def fleet_message(self, topic: str, payload: bytes) -> IngestResult:
        return self._guard(
            "fleet", topic, payload, lambda: self._by_external(decode_fleet_json(topic, payload))
        )

    def owntracks_message(self, topic: str, payload: bytes) -> IngestResult:
        def run() -> IngestResult:
            parts = topic.split("/")
            key = "/".join(parts[1:3]) if len(parts) == 3 else ""
            registrations = {tuple(key.split("/")): v for v in self._devices("owntracks", key)}
            return self._ingest(decode_owntracks(topic, payload, registrations))  # type: ignore[arg-type]

        return self._guard("owntracks", topic, payload, run)

    def osmand_query(self, fields: Mapping[str, str]) -> IngestResult:
        device = fields.get("id") or fields.get("deviceid") or ""
        # Kept for the dead letters only: whatever the fields hold, it must encode.
        payload = "&".join(f"{k}={v}" for k, v in fields.items()).encode(
            "utf-8", "backslashreplace"
        )
        return self._guard(
            "osmand",
            "",
            payload,
            lambda: self._ingest(
                decode_osmand(
                    fields,
                    self._device_map("osmand", device),
                    speed_unit=self.osmand_speed_unit,
                )
            ),
        )

    def osmand_json(self, payload: bytes) -> IngestResult:
        def run() -> IngestResult:
            try:
                device = str(json.loads(payload).get("device_id") or "")
            except (ValueError, AttributeError, RecursionError):
                device = ""
            return self._ingest(decode_osmand_json(payload, self._device_map("osmand", device)))

        return self._guard("osmand", "", payload, run)

    def gpsd_message(self, vehicle_id: str, payload: bytes) -> IngestResult:
        return self._guard(
            "gpsd",
            vehicle_id,
            payload,
            lambda: self._by_external(decode_gpsd_tpv(vehicle_id, payload)),
        )

    def driver_event_message(self, topic: str, payload: bytes) -> IngestResult:
        """``fleet/{vehicle_id}/events``: ``{"order_id", "kind": delivered|failed|skipped,
        "reason", "at"}`` (``at`` optional, default now)."""

        def run() -> IngestResult:
            vehicle_id = topic_part(topic, 1, expect=("fleet", "", "events"))
            if not _storable(vehicle_id):
                raise DecodeError("unknown_vehicle", vehicle_id[:100])
            data = _event_json(payload)
            with self._lock, self._scope() as session:
                vehicles = list(
                    session.scalars(select(VehicleRow).where(VehicleRow.external_id == vehicle_id))
                )
                if len(vehicles) != 1:
                    raise DecodeError("unknown_vehicle", vehicle_id[:100])
                vehicle = vehicles[0]
                order = session.scalar(
                    select(OrderRow).where(
                        OrderRow.organisation_id == vehicle.organisation_id,
                        OrderRow.external_id == data["order_id"],
                    )
                )
                if order is None:
                    raise DecodeError("unknown_order", str(data["order_id"])[:100])
                at = parse_time(data["at"]) if data.get("at") else self.clock()
                # The vehicle's pending state goes to its row first, so the event applies on
                # top of every fix before it; its next fix reads the row again.
                if self._batch is not None and vehicle.id in self._batch.live:
                    live = self._batch.live.pop(vehicle.id)
                    row = self._settle(self._batch, live, self.clock())
                    if row is not None:
                        self._write_rows(session, [(live.stored, row)])
                self._cache.pop(vehicle.id, None)
                record_driver_event(
                    session,
                    vehicle,
                    order,
                    data["kind"],
                    data["reason"],
                    at,
                    self.outbox,
                    now=self.clock(),
                )
                # The vehicle's next fix in this batch reads its row again: it must see this.
                session.flush()
            return IngestResult("applied", "", vehicle_id)

        return self._guard("events", topic, payload, run)

    def reject(
        self, source: str, topic: str, payload: bytes, reason: str, detail: str
    ) -> IngestResult:
        """Refuse a message before decoding (e.g. too large), recording why."""

        def run() -> IngestResult:
            raise DecodeError(reason, detail)

        return self._guard(source, topic, payload, run)

    # Plumbing -----------------------------------------------------------------------
    def _guard(
        self, source: str, topic: str, payload: bytes, run: Callable[[], IngestResult]
    ) -> IngestResult:
        try:
            result = run()
        except DecodeError as exc:
            result = IngestResult("rejected", exc.reason)
            detail = exc.detail
        else:
            detail = ""
        if result.status == "rejected":
            self.counts[result.reason] += 1
            # Locked as _ingest is: another thread's batch must not take this dead letter.
            with self._lock, self._scope() as session:
                session.add(
                    DeadLetterRow(
                        source=source,
                        topic=_clean(topic)[:300],
                        reason=result.reason,
                        detail=_clean(detail)[:1000],
                        payload=base64.b64encode(payload[:4096]).decode(),
                    )
                )
        else:
            self.counts[result.status] += 1
        return result

    def _device_map(self, protocol: str, external_id: str) -> dict[str, str]:
        """{device id: vehicle row id} for one registered device (empty if unknown)."""
        vehicles = self._devices(protocol, external_id)
        return {external_id: vehicles[0]} if vehicles else {}

    def _devices(self, protocol: str, external_id: str) -> list[str]:
        if not external_id or not _storable(external_id):
            return []  # no device has an id that cannot be stored
        with self.sessions() as session:
            rows = session.scalars(
                select(DeviceRow.vehicle_id).where(
                    DeviceRow.protocol == protocol,
                    DeviceRow.external_device_id == external_id,
                    DeviceRow.revoked_at.is_(None),
                )
            )
            return list(rows)[:1]

    def _by_external(self, position: Position) -> IngestResult:
        known = self._vehicle_ids.get(position.vehicle_id)
        if known is not None:
            return self._ingest(_with_vehicle(position, known))
        if not _storable(position.vehicle_id):
            raise DecodeError("unknown_vehicle", position.vehicle_id[:100])
        with self.sessions() as session:
            ids = list(
                session.scalars(
                    select(VehicleRow.id).where(VehicleRow.external_id == position.vehicle_id)
                )
            )
        if len(ids) != 1:
            raise DecodeError(
                "unknown_vehicle" if not ids else "ambiguous_vehicle", position.vehicle_id[:100]
            )
        # Vehicles are never renamed or deleted, so the mapping can be kept.
        self._vehicle_ids[position.vehicle_id] = ids[0]
        return self._ingest(_with_vehicle(position, ids[0]))

    def _live(self, batch: _Batch, vehicle_id: str) -> _Live | None:
        """The vehicle's state for this batch, read once."""
        if vehicle_id not in batch.live:
            self._load(batch, {vehicle_id})
        return batch.live.get(vehicle_id)

    def _ingest(self, position: Position) -> IngestResult:
        """``position.vehicle_id`` is the vehicle's row id here."""
        now = self.clock()
        with self._lock, self._scope():
            batch = self._batch
            assert batch is not None
            live = self._live(batch, position.vehicle_id)
            if live is None:
                return IngestResult("rejected", "unknown_vehicle")
            last = None
            if (
                live.last_fix_time is not None
                and live.last_lat is not None
                and live.last_lon is not None
            ):
                last = Position(live.vehicle_id, live.last_fix_time, live.last_lat, live.last_lon)
            verdict = screen(position, last, now, self.hygiene)
            if verdict.verdict is Verdict.REJECT:
                return IngestResult("rejected", verdict.reason, live.external_id)
            if verdict.verdict is Verdict.HISTORY_ONLY and _stored(
                batch, live.vehicle_id, position.fix_time
            ):
                # A redelivery (MQTT QoS 1 is at-least-once: a fix committed whose ack was
                # lost comes again after a reconnect or a crash): it is stored once.
                return IngestResult("rejected", "duplicate", live.external_id)
            applied = verdict.verdict is Verdict.APPLY
            batch.positions.append(
                {
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
            )
            if not applied:
                return IngestResult("history", verdict.reason, live.external_id)
            live.last_fix_time, live.last_lat, live.last_lon = (
                position.fix_time,
                position.lat,
                position.lon,
            )
            live.dirty = True
            events: list[Event] = []
            route = self._route(batch.session, live)
            if route is not None:
                if live.progress is None or live.progress.plan_id != route.track.plan_id:
                    # A new plan starts a new progress, but what each customer still on the
                    # route was told stands: delays are judged against it and its versions go
                    # on rising, so the policy never takes a new ETA for an old one.
                    kept = set(route.track.stop_ids)
                    live.told = {k: v for k, v in live.told.items() if k in kept}
                    # Stops it shares with the old plan keep their arrivals, and the search
                    # for its place starts where it had got to (not at the depot).
                    fresh = (
                        carry_over(route.track, live.progress)
                        if live.progress is not None
                        else start(route.track)
                    )
                    live.progress, live.eta_log = fresh, {}
                live.progress, events = apply_fix(
                    route.track, live.progress, position, self.progress
                )
                for event in events:
                    batch.events.append(_progress_event(live, route, event))
                    if isinstance(event, Arrived) and self.outbox is not None:
                        _deliver(batch, live, route, event.order_id, Trigger.ARRIVED, event.at)
                # ETAs are recomputed from the vehicle's newest state when the batch ends: the
                # ones of earlier fixes in the same batch would be overwritten unread.
                live.stale_etas = route.eta is not None
            return IngestResult("applied", "", live.external_id, tuple(events))

    def _recompute(
        self, batch: _Batch, live: _Live, route: _RoutePlan, eta: EtaRoute, now: datetime
    ) -> None:
        assert live.progress is not None
        previous = live.etas
        result = recompute(
            eta,
            route_progress(live.progress, self._way_back_s(live.progress, route)),
            live.told,
            now,
            self.eta_params,
            self.delay_params,
        )
        live.etas, live.told, live.pace = result.etas, result.told, result.pace
        for event in result.events:
            batch.events.append(_delay_event(live, route, event))
            if self.outbox is not None:
                trigger = DELAY_TRIGGERS[type(event)]
                _deliver(batch, live, route, event.order_id, trigger, now, event=event)
        if self.outbox is not None and result.etas:
            self._nearby(batch, live, route, result.etas, previous, now)
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

    def _nearby(
        self,
        batch: _Batch,
        live: _Live,
        route: _RoutePlan,
        etas: Sequence[StopEta],
        previous: Sequence[StopEta],
        now: datetime,
    ) -> None:
        """ "N stops away" when the stops ahead of a customer drop to N or fewer, "M minutes
        away" when the ETA crosses M minutes: events only on the crossing, so the policy runs
        for an order when something changed, not on every batch."""
        assert self.outbox is not None
        settings = self.outbox.settings(batch.session, live.organisation_id)
        first = etas[0].index
        old_first = previous[0].index if previous else 0
        before = {e.order_id: e for e in previous}
        near_s = settings.minutes_away_m * 60.0
        now_s = now.timestamp()
        for eta in etas:
            if eta.arrived:
                continue
            stops_before = eta.index - first
            old = before.get(eta.order_id)
            old_before = old.index - old_first if old is not None else None
            if stops_before <= settings.stops_away_n and (
                old_before is None or old_before > settings.stops_away_n
            ):
                _deliver(
                    batch, live, route, eta.order_id, Trigger.STOPS_AWAY, now,
                    stops_before=stops_before, eta_stop=eta,
                )  # fmt: skip
            if eta.eta_s - now_s <= near_s and (old is None or old.eta_s - now_s > near_s):
                _deliver(batch, live, route, eta.order_id, Trigger.MINUTES_AWAY, now, eta_stop=eta)

    def _way_back_s(self, progress: Progress, route: _RoutePlan) -> float | None:
        """Off the route: the drive back to the next stop (a graph search, only then)."""
        k = progress.next_stop
        if (
            progress.on_route
            or self.off_route_travel is None
            or progress.lat is None
            or progress.lon is None
            or k >= len(route.stop_points)
        ):
            return None
        try:
            return self.off_route_travel(progress.lat, progress.lon, *route.stop_points[k])
        except ValueError:
            return None  # no road near enough: the ETA falls back to the planned line

    def _row(self, live: _Live, now: datetime) -> dict[str, Any]:
        """The vehicle's progress row as it will be written."""
        state: dict[str, Any] = progress_to_dict(live.progress) if live.progress is not None else {}
        # Compact lists of epoch seconds: this is written for every vehicle on every batch.
        state["told"] = {k: told_to_list(v) for k, v in live.told.items()}
        state["etas"] = [eta_to_list(e) for e in live.etas]
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

    def _settle(self, batch: _Batch, live: _Live, now: datetime) -> dict[str, Any] | None:
        """ETAs from the vehicle's newest state, then its row (None if nothing changed)."""
        if live.stale_etas and live.plan_id is not None:
            route = self._routes.get(f"{live.plan_id}/{live.vehicle_id}")
            if route is not None and route.eta is not None:
                self._recompute(batch, live, route, route.eta, now)
            live.stale_etas = False
        if not live.dirty:
            return None
        live.dirty = False
        return self._row(live, now)

    def _write_rows(self, session: Session, rows: list[tuple[bool, dict[str, Any]]]) -> None:
        new = [row for stored, row in rows if not stored]
        old = [row for stored, row in rows if stored]
        if new:
            session.execute(insert(ProgressRow), new)
        if old:
            # By primary key, one executemany: no ORM objects for a row per vehicle per batch.
            session.execute(update(ProgressRow), old)

    def _finish(self, batch: _Batch) -> None:
        """Write what the batch did: one statement per table, one state per vehicle."""
        now = self.clock()
        rows: list[tuple[bool, dict[str, Any]]] = []
        for live in batch.live.values():
            row = self._settle(batch, live, now)
            if row is not None:
                rows.append((live.stored, row))
                live.stored = True
            self._cache[live.vehicle_id] = live
        session = batch.session
        session.flush()
        self._write_rows(session, rows)
        if batch.positions:
            session.execute(insert(PositionRow), batch.positions)
        if batch.etas:
            session.execute(insert(EtaRow), batch.etas)
        if batch.events:
            session.execute(insert(EventRow), batch.events)
        if self.outbox is not None and batch.deliveries:
            # Same transaction as the events that caused them: told once, never lost.
            batch.queued = self.outbox.enqueue(session, batch.deliveries, now)

    def _route(self, session: Session, live: _Live) -> _RoutePlan | None:
        """The vehicle's active route (cached per plan and vehicle)."""
        if live.plan_id is None:
            return None
        key = f"{live.plan_id}/{live.vehicle_id}"
        if key in self._routes:
            return self._routes[key]
        plan = session.get(PlanRow, live.plan_id)
        route = _route_plan(session, plan, live) if plan is not None else None
        self._routes[key] = route
        return route


def _route_plan(session: Session, plan: PlanRow, live: _Live) -> _RoutePlan | None:
    if plan.geojson is None:
        return None
    feature = next(
        (
            f
            for f in plan.geojson["features"]
            if f["properties"].get("vehicle_id") == live.external_id
        ),
        None,
    )
    if feature is None:
        return None
    order_ids = list(feature["properties"]["order_ids"])
    rows = {
        o.external_id: o
        for o in session.scalars(
            select(OrderRow).where(
                OrderRow.organisation_id == live.organisation_id,
                OrderRow.external_id.in_(order_ids),
            )
        )
    }
    stops = [(oid, rows[oid].lat, rows[oid].lon) for oid in order_ids if oid in rows]
    track = route_track(live.external_id, plan.id, feature["geometry"]["coordinates"], stops)
    return _RoutePlan(
        track,
        _eta_route(plan, track, live.external_id, rows),
        {k: r.id for k, r in rows.items()},
        tuple((lat, lon) for _, lat, lon in stops),
    )


def _eta_route(
    plan: PlanRow, track: RouteTrack, vehicle: str, orders: Mapping[str, OrderRow]
) -> EtaRoute | None:
    """The route's schedule from the plan's result (leg drive times, service, breaks); None if
    the result has no route for the vehicle or its stops differ from the track's."""
    planned = next(
        (r for r in (plan.result or {}).get("routes", []) if r.get("vehicle_id") == vehicle), None
    )
    if planned is None or [s["order_id"] for s in planned["stops"]] != list(track.stop_ids):
        return None

    try:
        return route_from_plan(
            track.vehicle_id,
            track.plan_id,
            planned,
            order_windows(orders.values()),
            track.stop_along_m,
        )
    except (KeyError, ValueError, TypeError):
        return None


DELAY_TRIGGERS: dict[type, Trigger] = {
    WindowTold: Trigger.OUT_FOR_DELIVERY,
    EtaChanged: Trigger.ETA_CHANGED,
    WindowBroken: Trigger.WINDOW_BROKEN,
}


def _deliver(
    batch: _Batch,
    live: _Live,
    route: _RoutePlan,
    order_id: str,
    trigger: Trigger,
    at: datetime,
    *,
    event: DelayEvent | None = None,
    stops_before: int | None = None,
    eta_stop: StopEta | None = None,
) -> None:
    """Queue a customer-facing event for the outbox, with the order's current window."""
    row_id = route.order_rows.get(order_id)
    if row_id is None:
        return
    told = live.told.get(order_id)
    version = event.version if event is not None else (told.version if told else 0)
    start: datetime | None
    end: datetime | None
    eta: datetime | None
    if event is not None:
        start, end, eta = event.earliest, event.latest, event.eta
    elif told is not None:
        start, end = _utc(told.earliest_s), _utc(told.latest_s)
        eta = eta_stop.eta if eta_stop is not None else _utc(told.eta_s)
    else:
        start = end = None
        eta = eta_stop.eta if eta_stop is not None else None
    batch.deliveries.setdefault(row_id, []).append(
        DeliveryEvent(row_id, trigger, at, version, start, end, stops_before=stops_before, eta=eta)
    )


def _utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def _progress_event(live: _Live, route: _RoutePlan, event: Event) -> dict[str, Any]:
    order_id: str | None = None
    data: dict[str, Any]
    if isinstance(event, Arrived):
        kind, order_id, data = "arrived", event.order_id, {"inferred": event.inferred}
    elif isinstance(event, Departed):
        kind, order_id, data = "departed", event.order_id, {}
    elif isinstance(event, Passed):
        kind, order_id, data = "passed", event.order_id, {}
    elif isinstance(event, LeftRoute):
        kind, data = "left_route", {"distance_m": round(event.distance_m)}
    else:
        kind, data = "rejoined_route", {}
    return {
        "organisation_id": live.organisation_id,
        "order_id": route.order_rows.get(order_id) if order_id else None,
        "vehicle_id": live.vehicle_id,
        "kind": kind,
        "at": event.at,
        "data": data,
    }


def _delay_event(live: _Live, route: _RoutePlan, event: DelayEvent) -> dict[str, Any]:
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


def _event_json(payload: bytes) -> dict[str, str]:
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DecodeError("malformed_json", str(exc)[:200]) from exc
    if not isinstance(data, dict):
        raise DecodeError("malformed_json", "expected a JSON object")
    if not isinstance(data.get("order_id"), str) or not data["order_id"]:
        raise DecodeError("missing_field", "'order_id' is required")
    if not _storable(data["order_id"]):
        raise DecodeError("bad_field", "'order_id' is not storable text")
    if data.get("kind") not in DRIVER_EVENTS:
        raise DecodeError("bad_field", f"'kind' must be one of {', '.join(DRIVER_EVENTS)}")
    reason = data.get("reason", "")
    return {
        "order_id": data["order_id"],
        "kind": data["kind"],
        "reason": _clean(reason) if isinstance(reason, str) else "",
        "at": data.get("at") if isinstance(data.get("at"), str | int | float) else "",
    }


def _storable(text: str) -> bool:
    """Whether a string from a payload can be looked up or stored: no lone surrogate (from a
    JSON ``\\ud800`` escape; no driver encodes one) and no NUL (PostgreSQL text refuses it)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clean(text: str) -> str:
    """``text`` made storable for the dead letters and events (escapes what is not)."""
    if _storable(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _stored(batch: _Batch, vehicle_id: str, fix_time: datetime) -> bool:
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


def _with_vehicle(position: Position, vehicle_row_id: str) -> Position:
    return replace(position, vehicle_id=vehicle_row_id)


DRIVER_EVENTS = ("delivered", "failed", "skipped")


def record_driver_event(
    session: Session,
    vehicle: VehicleRow,
    order: OrderRow,
    kind: str,
    reason: str,
    at: datetime,
    outbox: Outbox | None = None,
    *,
    now: datetime | None = None,
) -> None:
    """A driver's delivered / failed / skipped: stored, and it overrides what the fixes
    suggested (the order's status, and the stop counts as left)."""
    if kind not in DRIVER_EVENTS:
        raise ValueError(f"kind must be one of {', '.join(DRIVER_EVENTS)}")
    session.add(
        EventRow(
            organisation_id=vehicle.organisation_id,
            order_id=order.id,
            vehicle_id=vehicle.id,
            kind=kind,
            at=at,
            data={"reason": reason, "by": "driver"},
        )
    )
    order.status = kind
    progress = session.get(ProgressRow, vehicle.id)
    if progress is not None and progress.state:
        state = dict(progress.state)
        # A vehicle tracked without a route has a state with no stops.
        state["stops"] = [
            {**s, "departed_at": s["departed_at"] or at.isoformat()}
            if s["order_id"] == order.external_id
            else s
            for s in state.get("stops", [])
        ]
        # Time inside a fence counted so far belonged to this stop: the next one's dwell
        # starts afresh (a neighbour's fence may hold the van all along).
        state["inside_since"] = None
        progress.state = state
        # A worker holding this vehicle's state in memory sees the row changed and reloads.
        progress.updated_at = datetime.now(UTC)
    outcome = {"delivered": Trigger.DELIVERED, "failed": Trigger.FAILED}.get(kind)
    if outbox is not None and outcome is not None:
        # The customer hears the outcome in the same transaction that records it.
        event = DeliveryEvent(order.id, outcome, at, 0, reason=reason)
        outbox.enqueue(session, {order.id: [event]}, now or datetime.now(UTC))
