"""The :class:`Ingester`: one method per transport and format, each running the stages of
this package in order (see ``telematics/ingest/__init__.py``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from domain.position import Position
from eta.delay import DelayParams
from eta.params import EtaParams
from eta.route import EtaRoute
from notify.outbox import Outbox
from telematics.decoders import (
    DecodeError,
    decode_fleet_json,
    decode_gpsd_tpv,
    device_topic,
    parse_time,
)
from telematics.hygiene import HygieneParams, Verdict
from telematics.ingest.batch import Batches
from telematics.ingest.decode import (
    dead_letter,
    on_vehicle_row,
    osmand_json_fix,
    osmand_query_fix,
    osmand_query_payload,
    owntracks_fix,
    resolve_vehicles,
    vehicle_row_id,
)
from telematics.ingest.driver_events import decode_driver_event, event_rows, record_driver_event
from telematics.ingest.load import load, vehicle_state
from telematics.ingest.place import RoutePlan, place_fix, route_for, route_key
from telematics.ingest.recompute import first_window_cap_min, recompute_etas
from telematics.ingest.screen import screen_fix
from telematics.ingest.silence import SILENT_AFTER_S, silent_ids, silent_on_route
from telematics.ingest.state import BatchState, IngestResult, VehicleState
from telematics.ingest.store import (
    ProgressRows,
    changed_row,
    position_row,
    write_batch,
    write_progress_rows,
)
from telematics.ingest.tell import tell_arrivals, tell_delays, tell_nearby
from telematics.progress import ProgressParams
from telematics.topics import VehicleRef

#: See ``Ingester.eta_every_s``.
ETA_EVERY_S = 2.0


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
    #: No fix for longer than this (s): the vehicle is silent, taken to stand where it was
    #: last seen (its ETAs start now); :meth:`tick_silent` recomputes it. None: never.
    silent_after_s: float | None = SILENT_AFTER_S
    #: A vehicle's ETAs are recomputed at most once in this many seconds of the clock, unless
    #: a fix caused a progress event (arrived, departed, passed, left or rejoined the route):
    #: a tracker sending every second moves the ETAs by seconds between fixes, and the
    #: recompute with its delay checks was most of the cost of a fix (ADR 0027). The fixes in
    #: between are stored and placed; the next recompute starts from the newest. 0: every
    #: batch.
    eta_every_s: float = ETA_EVERY_S
    counts: Counter[str] = field(default_factory=Counter)
    _routes: dict[str, RoutePlan | None] = field(default_factory=dict)
    #: vehicle row id -> its live state as last written (reused while the stored ``rev`` is
    #: unchanged, so a steady stream never re-parses its own JSON).
    _cache: dict[str, VehicleState] = field(default_factory=dict)
    _batches: Batches = field(init=False, repr=False)
    #: Organisation id -> (the ``eta_params`` and cap they were made from, its parameters).
    _org_params: dict[str, tuple[EtaParams, int, EtaParams]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._batches = Batches(self.sessions, self._cache, self._finish, self._committed)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Process several messages in one transaction (committed when the block ends):
        the MQTT side acks them all after that commit."""
        with self._batches.batch():
            yield

    def prefetch(self, vehicles: Iterable[VehicleRef | str]) -> None:
        """Inside a batch: read (and lock) the state of these vehicles (as topics name them:
        (organisation, own id); a bare id is a deprecated topic's) in a few statements
        instead of two per vehicle."""
        batch = self._batches.current
        if batch is None:
            return
        refs = {(None, v) if isinstance(v, str) else v for v in vehicles}
        resolve_vehicles(batch, refs)
        ids = {rows[0] for r in refs if len(rows := batch.vehicle_rows[r]) == 1}
        load(batch, self._cache, ids - batch.live.keys())

    def eta_params_for(self, session: Session, organisation_id: str) -> EtaParams:
        """The ETA parameters of an organisation's vehicles: ``eta_params`` (the fleet's prior
        and calibration) with the organisation's own cap on the first window told
        (``first_window_cap_min`` in its notification policy, docs/adr/0020). Made again only
        when either changes: a batch pays neither a query (see
        :func:`~telematics.ingest.recompute.first_window_cap_min`) nor a copy per vehicle."""
        cap_min = first_window_cap_min(session, organisation_id, self.outbox)
        fleet = self.eta_params
        made = self._org_params.get(organisation_id)
        if made is not None and made[0] is fleet and made[1] == cap_min:
            return made[2]
        params = replace(fleet, first_window_cap_s=cap_min * 60.0)
        self._org_params[organisation_id] = (fleet, cap_min, params)
        return params

    # One method per transport/format: decode, then the fix goes through _ingest ----------
    def fleet_message(self, topic: str, payload: bytes) -> IngestResult:
        """Our JSON on ``{organisation}/fleet/{vehicle}/position`` (or the deprecated form)."""

        def run() -> IngestResult:
            position = decode_fleet_json(topic, payload)
            return self._by_external(position, device_topic(topic, "position").organisation_id)

        return self._guard("fleet", topic, payload, run)

    def fleet_message_for(
        self, vehicle_row_id: str, payload: bytes, *, topic: str = ""
    ) -> IngestResult:
        """Our JSON for a vehicle known by its row, not by an id other organisations may use
        too (HTTP: the caller's own vehicle); ``topic`` is what a dead letter records."""
        return self._guard(
            "fleet",
            topic,
            payload,
            lambda: self._ingest(decode_fleet_json(f"fleet/{vehicle_row_id}/position", payload)),
        )

    def owntracks_message(self, topic: str, payload: bytes) -> IngestResult:
        return self._guard(
            "owntracks",
            topic,
            payload,
            lambda: self._ingest(owntracks_fix(self.sessions, topic, payload)),
        )

    def osmand_query(self, fields: Mapping[str, str]) -> IngestResult:
        return self._guard(
            "osmand",
            "",
            osmand_query_payload(fields),
            lambda: self._ingest(osmand_query_fix(self.sessions, fields, self.osmand_speed_unit)),
        )

    def osmand_json(self, payload: bytes) -> IngestResult:
        return self._guard(
            "osmand", "", payload, lambda: self._ingest(osmand_json_fix(self.sessions, payload))
        )

    def gpsd_message(self, topic: str, payload: bytes) -> IngestResult:
        """A gpsd TPV on ``{organisation}/fleet/{vehicle}/gpsd`` (or the deprecated form)."""

        def run() -> IngestResult:
            organisation_id, vehicle_id = device_topic(topic, "gpsd").ref
            return self._by_external(decode_gpsd_tpv(vehicle_id, payload), organisation_id)

        return self._guard("gpsd", topic, payload, run)

    def driver_event_message(self, topic: str, payload: bytes) -> IngestResult:
        """``{organisation}/fleet/{vehicle_id}/events`` (or the deprecated form):
        ``{"order_id", "kind": delivered|failed|skipped, "reason", "at"}`` (``at`` optional,
        default now)."""

        def run() -> IngestResult:
            ref, data = decode_driver_event(topic, payload)
            vehicle_id = ref[1]
            with self._batches.scope() as batch:
                session = batch.session
                row_id = vehicle_row_id(batch, ref)
                vehicle, order = event_rows(session, row_id, data["order_id"])
                at = parse_time(data["at"]) if data.get("at") else self.clock()
                # The vehicle's pending state goes to its row first, so the event applies on
                # top of every fix before it; its next fix reads the row again.
                if vehicle.id in batch.live:
                    live = batch.live.pop(vehicle.id)
                    row = self._settle(batch, live, self.clock())
                    if row is not None:
                        write_progress_rows(session, [(live.stored, row)])
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

    def tick_silent(self, now: datetime | None = None) -> int:
        """The silence timer's turn: every vehicle on its route silent for longer than
        ``silent_after_s`` gets its ETAs recomputed at ``now`` (default: the clock), in one
        batch as a fix's would (told windows, delay events, customer messages). Returns how
        many vehicles (see ``silence.py``)."""
        if self.silent_after_s is None:
            return 0
        at = now if now is not None else self.clock()
        with self._batches.scope() as batch:
            ids = silent_ids(batch, at, self.silent_after_s)
            found = silent_on_route(batch, self._cache, self._routes, ids, at, self.silent_after_s)
            for live, route, eta in found:
                self._recompute(batch, live, route, eta, at)
                live.stale_etas, live.dirty = False, True
        return len(found)

    def reject(
        self, source: str, topic: str, payload: bytes, reason: str, detail: str
    ) -> IngestResult:
        """Refuse a message before decoding (e.g. too large), recording why."""

        def run() -> IngestResult:
            raise DecodeError(reason, detail)

        return self._guard(source, topic, payload, run)

    # The stages ---------------------------------------------------------------------
    def _guard(
        self, source: str, topic: str, payload: bytes, run: Callable[[], IngestResult]
    ) -> IngestResult:
        """Run a message through; one refused goes to the dead letters with its reason."""
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
            with self._batches.scope() as batch:
                batch.session.add(dead_letter(source, topic, payload, result.reason, detail))
        else:
            self.counts[result.status] += 1
        return result

    def _by_external(self, position: Position, organisation_id: str | None) -> IngestResult:
        """A fix naming its vehicle by its own id in ``organisation_id`` (None: a deprecated
        topic, the id unique across organisations now), resolved in this batch's transaction
        (never a mapping remembered from an earlier batch)."""
        with self._batches.scope() as batch:
            return self._ingest(on_vehicle_row(batch, position, organisation_id))

    def _ingest(self, position: Position) -> IngestResult:
        """Screen, store, place and tell one fix (``position.vehicle_id`` is the vehicle's
        row id here); ETAs follow once per vehicle when the batch ends."""
        now = self.clock()
        with self._batches.scope() as batch:
            live = vehicle_state(batch, self._cache, position.vehicle_id)
            if live is None:
                return IngestResult("rejected", "unknown_vehicle")
            verdict = screen_fix(batch, live, position, now, self.hygiene)
            if verdict.verdict is Verdict.REJECT:
                return IngestResult("rejected", verdict.reason, live.external_id)
            applied = verdict.verdict is Verdict.APPLY
            batch.positions.append(position_row(live, position, applied, now))
            if not applied:
                return IngestResult("history", verdict.reason, live.external_id)
            route = route_for(batch, self._routes, live)
            events = place_fix(batch, live, route, position, self.progress)
            if route is not None and self.outbox is not None:
                tell_arrivals(batch, live, route, events)
            return IngestResult("applied", "", live.external_id, tuple(events))

    def _finish(self, batch: BatchState) -> None:
        """Write what the batch did: one statement per table, one state per vehicle."""
        now = self.clock()
        rows: ProgressRows = []
        for live in batch.live.values():
            row = self._settle(batch, live, now)
            if row is not None:
                rows.append((live.stored, row))
                live.stored = True
            self._cache[live.vehicle_id] = live
        write_batch(batch, rows, self.outbox, now)

    def _committed(self, batch: BatchState) -> None:
        if batch.queued and self.on_queued is not None:
            self.on_queued()  # committed: the sender can take them now

    def _settle(
        self, batch: BatchState, live: VehicleState, now: datetime
    ) -> dict[str, Any] | None:
        """ETAs from the vehicle's newest state, then its row (None if nothing changed)."""
        if live.stale_etas and live.plan_id is not None and self._etas_due(live, now):
            route = self._routes.get(route_key(live))
            if route is not None and route.eta is not None:
                self._recompute(batch, live, route, route.eta, now)
            live.stale_etas = False
        return changed_row(live, now)

    def _etas_due(self, live: VehicleState, now: datetime) -> bool:
        if live.eta_due or live.etas_at is None:
            return True
        return (now - live.etas_at).total_seconds() >= self.eta_every_s

    def _recompute(
        self, batch: BatchState, live: VehicleState, route: RoutePlan, eta: EtaRoute, now: datetime
    ) -> None:
        previous = live.etas
        live.etas_at, live.eta_due = now, False
        delays = recompute_etas(
            batch,
            live,
            route,
            eta,
            now,
            self.eta_params_for(batch.session, live.organisation_id),
            self.delay_params,
            self.off_route_travel,
            self.silent_after_s,
        )
        if self.outbox is not None:
            tell_delays(batch, live, route, delays, now)
            if live.etas:
                tell_nearby(batch, live, route, live.etas, previous, now, self.outbox)
