"""Three days of a Rome carrier's promise, row by row (and a second carrier beside it), for the
accuracy report's tests: the store, the API, the dashboard and ``lastmile report``.

``day`` is the middle day D. What the figures must come to is worked out in MINE_BY_DAY and
THEIRS below, from the stops as described in :func:`seed_mine`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from store.schema import (
    EtaRow,
    EventRow,
    OrderRow,
    Organisation,
    OutboxRow,
    PlanRouteRow,
    PlanRow,
    PlanStopRow,
    VehicleRow,
)

ROME = ZoneInfo("Europe/Rome")

#: The figures of the carrier's days D-1, D and D+1 (a subset of eta.promise's keys).
MINE_BY_DAY: tuple[dict[str, object], ...] = (
    {  # R-1 came inside its window (and failed: planned again on D)
        "first_window_hit": 1.0,
        "stops_scored": 1,
        "stops_unscored": 0,
        "material_delays": 0,
        "late_notices": 0,
        "window_samples": 0,
    },
    {  # C-1 (just after midnight), A-1 and A-3 inside; A-2 told 70 min ahead; R-1 not told
        "first_window_hit": 0.6,
        "first_window_width_min": 30.0,
        "stops_scored": 5,
        "stops_unscored": 2,  # A-4 told nothing, A-5 not reached
        "material_delays": 2,
        "material_delays_told_15min_ahead": 1,
        "material_delay_recall": 0.5,
        "lead_time_median_min": 70.0,
        "late_notices": 2,  # A-2's (true, two channels: one notice), A-3's (false)
        "late_notice_precision": 0.5,
        "messages_per_stop": 0.8,  # A-2 1, A-3 2, C-1 1 (an early break)
        "coverage": 0.636,
        "coverage_by_horizon": {"0-10": 1.0, "10-30": 1.0, "30-60": 0.683, "60+": 0.128},
        "window_samples": 165,
    },
    {  # B-1, moved by a replan to V-C, 25 min late and not told
        "first_window_hit": 0.0,
        "stops_scored": 1,
        "material_delays": 1,
        "material_delays_told_15min_ahead": 0,
        "material_delay_recall": 0.0,
        "late_notices": 0,
        "late_notice_precision": None,
    },
)
MINE_OVERALL: dict[str, object] = {
    "first_window_hit": 0.571,
    "stops_scored": 7,
    "stops_unscored": 2,
    "material_delays": 3,
    "material_delays_told_15min_ahead": 1,
    "material_delay_recall": 0.333,
    "late_notices": 2,
    "late_notice_precision": 0.5,
    "coverage": 0.636,
    "window_samples": 165,
}
#: The other carrier's D: its A-1 (the same ids as ours) 90 min late and told; A-2 inside.
THEIRS: dict[str, object] = {
    "first_window_hit": 0.5,
    "stops_scored": 2,
    "material_delays": 1,
    "material_delays_told_15min_ahead": 1,
    "late_notices": 1,
    "late_notice_precision": 1.0,
    "coverage": 0.0,
    "window_samples": 30,
}


def subset(figures: dict[str, Any], expected: dict[str, object]) -> dict[str, Any]:
    """``figures`` cut to ``expected``'s keys, to compare whole."""
    return {k: figures[k] for k in expected}


@dataclass
class Seeded:
    plans: dict[str, str]  # name -> plan id
    orders: dict[str, str]  # your id -> row id


class _Day:
    """Row builders for one organisation, times as wall-clock in ``zone`` around day D."""

    def __init__(self, session: Session, organisation_id: str, day: date, zone: ZoneInfo) -> None:
        self.session, self.org, self.day, self.zone = session, organisation_id, day, zone
        self.orders: dict[str, OrderRow] = {}
        self.vehicles: dict[str, VehicleRow] = {}
        self.plans: dict[str, PlanRow] = {}

    def at(self, hh_mm: str, offset_days: int = 0) -> datetime:
        day = self.day + timedelta(days=offset_days)
        return datetime.fromisoformat(f"{day.isoformat()}T{hh_mm}").replace(tzinfo=self.zone)

    def order(self, ext: str) -> OrderRow:
        if ext not in self.orders:
            row = OrderRow(
                organisation_id=self.org,
                external_id=ext,
                lat=45.46,
                lon=9.18,
                tracking_token=f"token-{self.org}-{ext}",
            )
            self.session.add(row)
            self.session.flush()
            self.orders[ext] = row
        return self.orders[ext]

    def vehicle(self, ext: str) -> VehicleRow:
        if ext not in self.vehicles:
            row = VehicleRow(
                organisation_id=self.org,
                external_id=ext,
                start_lat=45.46,
                start_lon=9.18,
                shift_start=self.at("06:00"),
                shift_end=self.at("18:00"),
            )
            self.session.add(row)
            self.session.flush()
            self.vehicles[ext] = row
        return self.vehicles[ext]

    def plan(
        self,
        name: str,
        dispatched: datetime | None,
        routes: dict[str, list[tuple[str, datetime]]],
        **kw: Any,
    ) -> PlanRow:
        row = PlanRow(
            organisation_id=self.org, dispatched_at=dispatched, **{"status": "succeeded", **kw}
        )
        self.session.add(row)
        self.session.flush()
        for vehicle, stops in routes.items():
            route = PlanRouteRow(
                plan_id=row.id,
                vehicle_id=self.vehicle(vehicle).id,
                start=stops[0][1] - timedelta(hours=1),
                end=stops[-1][1] + timedelta(hours=1),
                distance_m=10_000,
                duration_s=3_600,
            )
            self.session.add(route)
            self.session.flush()
            for seq, (ext, arrival) in enumerate(stops):
                self.session.add(
                    PlanStopRow(
                        route_id=route.id,
                        seq=seq,
                        order_id=self.order(ext).id,
                        arrival=arrival,
                        service_start=arrival,
                        departure=arrival + timedelta(minutes=3),
                        wait_s=0,
                    )
                )
        self.plans[name] = row
        return row

    def sent(
        self,
        ext: str,
        trigger: str,
        version: int,
        sent_at: datetime | None,
        window: tuple[datetime, datetime] | None,
        *,
        event_at: datetime | None = None,
        channel: str = "sms",
        status: str = "sent",
    ) -> None:
        """A message as the outbox writes it (payload included)."""
        order = self.order(ext)
        happened = event_at or sent_at or self.at("00:00")
        self.session.add(
            OutboxRow(
                organisation_id=self.org,
                order_id=order.id,
                channel=channel,
                trigger=trigger,
                dedupe_key=f"{order.id}:{trigger}:{version}:{channel}",
                status=status,
                due_at=happened,
                sent_at=sent_at if status == "sent" else None,
                payload={
                    "message": {
                        "order_id": order.id,
                        "trigger": trigger,
                        "eta_version": version,
                        "channel": channel,
                        "event_at": happened.isoformat(),
                        "window": [window[0].isoformat(), window[1].isoformat()]
                        if window is not None
                        else None,
                    },
                    "idempotency_key": f"{order.id}:{trigger}:{version}:{channel}",
                },
            )
        )

    def event(self, ext: str, kind: str, at: datetime, **data: Any) -> None:
        self.session.add(
            EventRow(
                organisation_id=self.org, order_id=self.order(ext).id, kind=kind, at=at, data=data
            )
        )

    def broken(
        self, ext: str, version: int, at: datetime, told_latest: datetime, late: bool
    ) -> None:
        self.event(
            ext,
            "window_broken",
            at,
            version=version,
            told_latest=told_latest.isoformat(),
            late=late,
        )

    def eta(self, ext: str, computed_at: datetime, start: datetime, end: datetime) -> None:
        self.session.add(
            EtaRow(
                order_id=self.order(ext).id,
                computed_at=computed_at,
                eta=start + (end - start) / 2,
                window_start=start,
                window_end=end,
            )
        )


def seed_mine(session: Session, organisation_id: str, day: date) -> Seeded:
    """The organisation (made a Rome one) on D-1, D and D+1. Every window told is 30 min.

    - D-1: plan P13 (V-A) holds R-1 at 09:00, told 08:45-09:15, arrived 09:00.
    - D-1 22:00: plan P0 (V-B) holds C-1 at 00:30 on D (22:30 UTC on D-1), told 00:15-00:45,
      arrived 00:20; an early break told at 00:05 (a message, not a late notice).
    - D 07:00: plan P1 (V-A): A-1 09:00, A-2 10:00, A-3 11:00, A-4 12:00, A-5 12:30 and R-1
      again at 13:00 (rescheduled, told 12:45-13:15, arrived 13:30: 15 min late, not told).
      A-1: told 08:45-09:15, out for delivery 08:50-09:20, arrived 09:05; a window-broken
      message that died and one still pending (neither told). Live windows from 08:00.
      A-2: told 09:45-10:15; window broken (late, against 10:15) sent 09:30 by SMS and 09:31 by
      e-mail; arrived 10:40 and again 10:55. Live windows from 09:00 (and one after arrival).
      A-3: told 10:45-11:15; window broken (late, against 11:15) at 10:00, ETA changed at
      10:30; arrived 11:10, inside after all. A-4 was sent nothing, arrived 12:00. A-5 told,
      never reached.
    - D 06:00: plan PX (V-A), cancelled, held X-1 (told, arrived very late): not counted.
    - D: plan PN, never dispatched, held N-1: not counted.
    - D+1 06:30: plan P2 (V-B) holds B-1 at 08:00, told 07:45-08:15; its replan P3 at 07:30
      moves B-1 to V-C at 08:10; arrived 08:40, not told.
    """
    organisation = session.get(Organisation, organisation_id)
    assert organisation is not None
    organisation.timezone = "Europe/Rome"
    d = _Day(session, organisation_id, day, ROME)
    at = d.at

    def told(ext: str, when: datetime, start: str, offset_days: int = 0, **kw: Any) -> None:
        begin = at(start, offset_days)
        d.sent(
            ext,
            "plan_confirmed",
            0,
            when + timedelta(seconds=5),
            (begin, begin + timedelta(minutes=30)),
            event_at=when,
            **kw,
        )

    p13 = d.plan("P13", at("07:00", -1), {"V-A": [("R-1", at("09:00", -1))]})
    told("R-1", p13.dispatched_at or at("07:00", -1), "08:45", -1)
    d.event("R-1", "arrived", at("09:00", -1))

    p0 = d.plan("P0", at("22:00", -1), {"V-B": [("C-1", at("00:30"))]})
    told("C-1", p0.dispatched_at or at("22:00", -1), "00:15")
    d.broken("C-1", 2, at("00:04"), at("00:45"), late=False)
    d.sent("C-1", "window_broken", 2, at("00:05"), (at("00:05"), at("00:35")))
    d.event("C-1", "arrived", at("00:20"))

    p1 = d.plan(
        "P1",
        at("07:00"),
        {
            "V-A": [
                ("A-1", at("09:00")),
                ("A-2", at("10:00")),
                ("A-3", at("11:00")),
                ("A-4", at("12:00")),
                ("A-5", at("12:30")),
                ("R-1", at("13:00")),
            ]
        },
    )
    dispatch = p1.dispatched_at or at("07:00")
    for ext, start in (("A-1", "08:45"), ("A-2", "09:45"), ("A-3", "10:45"), ("A-5", "12:15")):
        told(ext, dispatch, start)
    d.sent("R-1", "rescheduled", 3, at("07:00"), (at("12:45"), at("13:15")), event_at=dispatch)
    d.event("R-1", "arrived", at("13:30"))

    d.sent("A-1", "out_for_delivery", 1, at("08:00"), (at("08:50"), at("09:20")))
    d.sent("A-1", "window_broken", 2, None, (at("09:30"), at("10:00")), status="dead")
    d.sent("A-1", "window_broken", 3, None, (at("09:30"), at("10:00")), status="pending")
    d.event("A-1", "arrived", at("09:05"))
    d.eta("A-1", at("08:00"), at("08:50"), at("09:20"))
    d.eta("A-1", at("08:30"), at("08:55"), at("09:10"))

    d.broken("A-2", 2, at("09:29"), at("10:15"), late=True)
    d.sent("A-2", "window_broken", 2, at("09:30"), (at("10:20"), at("10:50")))
    d.sent("A-2", "window_broken", 2, at("09:31"), (at("10:20"), at("10:50")), channel="email")
    d.event("A-2", "arrived", at("10:40"))
    d.event("A-2", "arrived", at("10:55"))
    d.eta("A-2", at("09:00"), at("09:50"), at("10:20"))
    d.eta("A-2", at("10:00"), at("10:30"), at("10:50"))
    d.eta("A-2", at("10:45"), at("10:40"), at("11:00"))

    d.broken("A-3", 2, at("09:59"), at("11:15"), late=True)
    d.sent("A-3", "window_broken", 2, at("10:00"), (at("11:20"), at("11:50")))
    d.sent("A-3", "eta_changed", 3, at("10:30"), (at("11:00"), at("11:20")))
    d.event("A-3", "arrived", at("11:10"))

    d.event("A-4", "arrived", at("12:00"))

    d.plan("PX", at("06:00"), {"V-A": [("X-1", at("09:30"))]}, status="cancelled")
    told("X-1", at("06:00"), "09:15")
    d.event("X-1", "arrived", at("11:00"))
    d.plan("PN", None, {"V-A": [("N-1", at("09:45"))]})

    p2 = d.plan("P2", at("06:30", 1), {"V-B": [("B-1", at("08:00", 1))]})
    d.plan(
        "P3",
        at("07:30", 1),
        {"V-C": [("B-1", at("08:10", 1))]},
        kind="replan",
        parent_plan_id=p2.id,
    )
    told("B-1", p2.dispatched_at or at("06:30", 1), "07:45", 1)
    d.event("B-1", "arrived", at("08:40", 1))
    session.flush()
    return Seeded({k: v.id for k, v in d.plans.items()}, {k: v.id for k, v in d.orders.items()})


def seed_theirs(session: Session, organisation_id: str, day: date) -> Seeded:
    """Another carrier (UTC) on D with our ids: A-1 told 09:00-09:30, told late at 09:45
    (against 09:30), arrived 11:00; A-2 told 10:00-10:30, arrived 10:10. A-1's live windows,
    all wrong, from 10:30."""
    d = _Day(session, organisation_id, day, ZoneInfo("UTC"))
    at = d.at
    plan = d.plan("T1", at("07:00"), {"V-A": [("A-1", at("09:15")), ("A-2", at("10:15"))]})
    dispatch = plan.dispatched_at or at("07:00")
    for ext, start in (("A-1", "09:00"), ("A-2", "10:00")):
        begin = at(start)
        d.sent(
            ext,
            "plan_confirmed",
            0,
            at("07:01"),
            (begin, begin + timedelta(minutes=30)),
            event_at=dispatch,
        )
    d.broken("A-1", 2, at("09:44"), at("09:30"), late=True)
    d.sent("A-1", "window_broken", 2, at("09:45"), (at("10:30"), at("11:30")))
    d.event("A-1", "arrived", at("11:00"))
    d.event("A-2", "arrived", at("10:10"))
    d.eta("A-1", at("10:30"), at("11:10"), at("11:20"))
    session.flush()
    return Seeded({k: v.id for k, v in d.plans.items()}, {k: v.id for k, v in d.orders.items()})


def utc(at: datetime) -> datetime:
    return at.astimezone(UTC)
