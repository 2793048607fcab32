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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from domain.position import Position
from store.db import transaction
from store.schema import (
    DeadLetterRow,
    DeviceRow,
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
    ProgressParams,
    RejoinedRoute,
    RouteTrack,
    apply_fix,
    progress_from_dict,
    progress_to_dict,
    route_track,
    start,
)


@dataclass(frozen=True, slots=True)
class IngestResult:
    status: str  # "applied" | "history" | "rejected"
    reason: str = ""
    vehicle_id: str | None = None
    events: tuple[Event, ...] = ()


@dataclass
class Ingester:
    sessions: sessionmaker[Session]
    hygiene: HygieneParams = field(default_factory=HygieneParams)
    progress: ProgressParams = field(default_factory=ProgressParams)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    osmand_speed_unit: str = "knots"
    counts: Counter[str] = field(default_factory=Counter)
    _tracks: dict[str, RouteTrack] = field(default_factory=dict)
    _vehicle_ids: dict[str, str] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _batch: Session | None = None
    _batch_rows: dict[str, ProgressRow | None] = field(default_factory=dict)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Process several messages in one transaction (committed when the block ends):
        the MQTT side acks them all after that commit."""
        with self._lock, transaction(self.sessions) as session:
            self._batch = session
            self._batch_rows.clear()
            try:
                # Flushing before every read would send each fix on its own; the batch
                # flushes once, at commit.
                with session.no_autoflush:
                    yield
            finally:
                self._batch = None
                self._batch_rows.clear()

    @contextmanager
    def _scope(self) -> Iterator[Session]:
        if self._batch is not None:
            yield self._batch
        else:
            with transaction(self.sessions) as session:
                yield session

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
        payload = "&".join(f"{k}={v}" for k, v in fields.items()).encode()
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
            except (ValueError, AttributeError):
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
                record_driver_event(session, vehicle, order, data["kind"], data["reason"], at)
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
            with self._scope() as session:
                session.add(
                    DeadLetterRow(
                        source=source,
                        topic=topic[:300],
                        reason=result.reason,
                        detail=detail[:1000],
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
        if not external_id:
            return []
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

    def _ingest(self, position: Position) -> IngestResult:
        """``position.vehicle_id`` is the vehicle's row id here."""
        now = self.clock()
        with self._lock, self._scope() as session:
            vehicle = session.get(VehicleRow, position.vehicle_id)
            if vehicle is None:
                return IngestResult("rejected", "unknown_vehicle")
            if vehicle.id in self._batch_rows:
                row = self._batch_rows[vehicle.id]  # locked and loaded earlier in this batch
            else:
                row = session.get(ProgressRow, vehicle.id, with_for_update=True)
            last = None
            if (
                row is not None
                and row.last_fix_time is not None
                and row.last_lat is not None
                and row.last_lon is not None
            ):
                last = Position(vehicle.id, row.last_fix_time, row.last_lat, row.last_lon)
            verdict = screen(position, last, now, self.hygiene)
            if verdict.verdict is Verdict.REJECT:
                return IngestResult("rejected", verdict.reason, vehicle.external_id)
            applied = verdict.verdict is Verdict.APPLY
            session.add(
                PositionRow(
                    organisation_id=vehicle.organisation_id,
                    vehicle_id=vehicle.id,
                    fix_time=position.fix_time,
                    lat=position.lat,
                    lon=position.lon,
                    speed_mps=position.speed_mps,
                    heading_deg=position.heading_deg,
                    accuracy_m=position.accuracy_m,
                    source=position.source,
                    applied=applied,
                    received_at=now,
                )
            )
            if not applied:
                return IngestResult("history", verdict.reason, vehicle.external_id)
            if row is None:
                row = ProgressRow(vehicle_id=vehicle.id, organisation_id=vehicle.organisation_id)
                session.add(row)
                # In a batch the same vehicle's next fix must find this row.
                session.flush()
            if self._batch is not None:
                self._batch_rows[vehicle.id] = row
            row.last_fix_time, row.last_lat, row.last_lon = (
                position.fix_time,
                position.lat,
                position.lon,
            )
            row.updated_at = now
            events: list[Event] = []
            track = self._track(session, vehicle)
            if track is not None:
                state = (
                    progress_from_dict(row.state)
                    if row.state and row.plan_id == track.plan_id
                    else start(track)
                )
                state, events = apply_fix(track, state, position, self.progress)
                row.plan_id = track.plan_id
                row.state = progress_to_dict(state)
                if events:
                    _record(session, vehicle, track, events)
            return IngestResult("applied", "", vehicle.external_id, tuple(events))

    def _track(self, session: Session, vehicle: VehicleRow) -> RouteTrack | None:
        """The vehicle's active route as a track (cached per plan and vehicle)."""
        if vehicle.active_plan_id is None:
            return None
        key = f"{vehicle.active_plan_id}/{vehicle.id}"
        if key in self._tracks:
            return self._tracks[key]
        plan = session.get(PlanRow, vehicle.active_plan_id)
        if plan is None or plan.geojson is None:
            return None
        feature = next(
            (
                f
                for f in plan.geojson["features"]
                if f["properties"].get("vehicle_id") == vehicle.external_id
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
                    OrderRow.organisation_id == vehicle.organisation_id,
                    OrderRow.external_id.in_(order_ids),
                )
            )
        }
        stops = [(oid, rows[oid].lat, rows[oid].lon) for oid in order_ids if oid in rows]
        track = route_track(vehicle.external_id, plan.id, feature["geometry"]["coordinates"], stops)
        self._tracks[key] = track
        return track


def _event_json(payload: bytes) -> dict[str, str]:
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DecodeError("malformed_json", str(exc)[:200]) from exc
    if not isinstance(data, dict):
        raise DecodeError("malformed_json", "expected a JSON object")
    if not isinstance(data.get("order_id"), str) or not data["order_id"]:
        raise DecodeError("missing_field", "'order_id' is required")
    if data.get("kind") not in DRIVER_EVENTS:
        raise DecodeError("bad_field", f"'kind' must be one of {', '.join(DRIVER_EVENTS)}")
    reason = data.get("reason", "")
    return {
        "order_id": data["order_id"],
        "kind": data["kind"],
        "reason": reason if isinstance(reason, str) else "",
        "at": data.get("at") if isinstance(data.get("at"), str | int | float) else "",
    }


def _with_vehicle(position: Position, vehicle_row_id: str) -> Position:
    from dataclasses import replace

    return replace(position, vehicle_id=vehicle_row_id)


def _record(session: Session, vehicle: VehicleRow, track: RouteTrack, events: list[Event]) -> None:
    orders = {
        o.external_id: o
        for o in session.scalars(
            select(OrderRow).where(
                OrderRow.organisation_id == vehicle.organisation_id,
                OrderRow.external_id.in_(track.stop_ids),
            )
        )
    }
    for event in events:
        data: dict[str, Any]
        if isinstance(event, Arrived):
            kind, order, data = "arrived", orders.get(event.order_id), {"inferred": event.inferred}
            at = event.at
        elif isinstance(event, Departed):
            kind, order, data, at = "departed", orders.get(event.order_id), {}, event.at
        elif isinstance(event, LeftRoute):
            kind, order, data, at = (
                "left_route",
                None,
                {"distance_m": round(event.distance_m)},
                event.at,
            )
        else:
            assert isinstance(event, RejoinedRoute)
            kind, order, data, at = "rejoined_route", None, {}, event.at
        session.add(
            EventRow(
                organisation_id=vehicle.organisation_id,
                order_id=order.id if order else None,
                vehicle_id=vehicle.id,
                kind=kind,
                at=at,
                data=data,
            )
        )


DRIVER_EVENTS = ("delivered", "failed", "skipped")


def record_driver_event(
    session: Session,
    vehicle: VehicleRow,
    order: OrderRow,
    kind: str,
    reason: str,
    at: datetime,
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
        state["stops"] = [
            {**s, "departed_at": s["departed_at"] or at.isoformat()}
            if s["order_id"] == order.external_id
            else s
            for s in state["stops"]
        ]
        progress.state = state
