"""The promise's records read from the store (store/accuracy.py): what counts as told, which
stop owns which message and arrival, the live windows sampled from the ETA history, the
organisation's time zone for days, and nothing of another organisation; on SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from eta.promise import DelayNotice, StopPromise, WindowSample
from store.accuracy import (
    ToldMessage,
    accuracy_report,
    last_days,
    plan_records,
    promise_records,
    stop_promise,
    window_samples,
)
from store.db import make_engine, session_factory, transaction, upgrade
from store.repo import create_organisation
from tests.store.accuracy_day import (
    MINE_BY_DAY,
    MINE_OVERALL,
    ROME,
    THEIRS,
    Seeded,
    seed_mine,
    seed_theirs,
    subset,
)

D = date(2030, 6, 14)
#: Noon in Rome on D+1: the last three days are D-1, D and D+1.
NOW = datetime(2030, 6, 15, 12, 0, tzinfo=ROME)


def _s(hh_mm: str, day: date = D) -> float:
    return datetime.fromisoformat(f"{day.isoformat()}T{hh_mm}").replace(tzinfo=ROME).timestamp()


# --- pure ------------------------------------------------------------------------------------


def test_first_window_is_the_first_sent_holding_one() -> None:
    """A message holding no window is not a first window; messages before the first window
    are not counted; ETA messages after it are, others (out for delivery) not."""
    told = [
        ToldMessage(_s("08:00"), "out_for_delivery", 1, _s("09:00"), _s("09:30")),
        ToldMessage(_s("07:00"), "stops_away", 0),
        ToldMessage(_s("07:01"), "plan_confirmed", 0, _s("08:45"), _s("09:15")),
        ToldMessage(_s("08:30"), "eta_changed", 2, _s("09:10"), _s("09:40")),
    ]
    assert stop_promise("s", told, _s("09:05")) == StopPromise(
        "s", _s("08:45"), _s("09:15"), _s("09:05"), (DelayNotice(_s("08:30"), _s("09:15")),), 1
    )
    assert stop_promise("s", told[:2], None).first_latest_s == _s("09:30")
    assert stop_promise("s", [told[1]], _s("09:05")) == StopPromise(
        "s", None, None, _s("09:05"), (), 0
    )


def test_a_late_notice_is_a_message_whose_window_ends_later_than_the_one_held() -> None:
    """Whatever its kind, an ETA message whose window ends later than the last one sent is a
    late notice against that one's end; one that moves the window earlier is only a message,
    and the customer holds its window from then on."""
    first = ToldMessage(_s("07:00"), "plan_confirmed", 0, _s("09:00"), _s("09:30"))
    late = ToldMessage(_s("08:00"), "window_broken", 3, _s("10:00"), _s("10:30"))
    early = ToldMessage(_s("08:40"), "window_broken", 4, _s("09:40"), _s("10:10"))
    moved = ToldMessage(_s("09:00"), "eta_changed", 5, _s("09:50"), _s("10:20"))
    record = stop_promise("s", [moved, early, late, first], _s("10:20"))
    assert record.late_notices == (
        DelayNotice(_s("08:00"), _s("09:30")),
        DelayNotice(_s("09:00"), _s("10:10")),
    )
    assert record.messages == 3
    # A window-broken message that held no window counts as a message, never as a notice.
    bare = ToldMessage(_s("08:00"), "window_broken", 1)
    assert stop_promise("s", [first, bare], _s("10:20")).late_notices == ()
    assert stop_promise("s", [first, bare], _s("10:20")).messages == 1


def test_window_samples_hold_each_window_until_the_next_and_stop_at_the_arrival() -> None:
    history = [(_s("08:00:30"), 10.0, 20.0), (_s("08:02"), 30.0, 40.0), (_s("08:05"), 0.0, 1.0)]
    samples = window_samples(history, _s("08:04:30"))
    assert samples == [
        WindowSample(_s("08:01"), 10.0, 20.0, _s("08:04:30")),
        WindowSample(_s("08:02"), 30.0, 40.0, _s("08:04:30")),
        WindowSample(_s("08:03"), 30.0, 40.0, _s("08:04:30")),
        WindowSample(_s("08:04"), 30.0, 40.0, _s("08:04:30")),
    ]
    assert window_samples(history, _s("08:00")) == []


def test_last_days_are_the_zones_calendar_days() -> None:
    # 23:30 UTC on the 14th is already the 15th in Rome.
    late = datetime(2030, 6, 14, 23, 30, tzinfo=UTC)
    assert last_days(late, ROME, 2) == [date(2030, 6, 14), date(2030, 6, 15)]
    assert last_days(late, ZoneInfo("UTC"), 1) == [date(2030, 6, 14)]
    with pytest.raises(ValueError, match="days"):
        last_days(late, ROME, 0)
    with pytest.raises(ValueError, match="days"):
        last_days(late, ROME, 91)


# --- from the store --------------------------------------------------------------------------


@dataclass
class Store:
    url: str
    mine: str
    theirs: str
    seeded: Seeded


@pytest.fixture
def store(database_url: str) -> Store:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        mine, _ = create_organisation(session_factory(engine), "Rome carrier", "UTC")
        theirs, _ = create_organisation(session_factory(engine), "Other carrier", "UTC")
        with transaction(session_factory(engine)) as session:
            seeded = seed_mine(session, mine, D)
            seed_theirs(session, theirs, D)
    finally:
        engine.dispose()
    return Store(database_url, mine, theirs, seeded)


@pytest.fixture
def session(store: Store) -> Iterator[Session]:
    engine = make_engine(store.url)
    with session_factory(engine)() as s:
        yield s
    engine.dispose()


def test_report_per_day_and_overall(store: Store, session: Session) -> None:
    report = accuracy_report(session, store.mine, NOW, 3)
    assert (report["days"], report["timezone"]) == (3, "Europe/Rome")
    assert [d["day"] for d in report["by_day"]] == ["2030-06-13", "2030-06-14", "2030-06-15"]
    for got, expected in zip(report["by_day"], MINE_BY_DAY, strict=True):
        assert subset(got, expected) == expected, got["day"]
    assert subset(report["overall"], MINE_OVERALL) == MINE_OVERALL
    # Today alone: B-1 only.
    today = accuracy_report(session, store.mine, NOW, 1)
    assert [d["day"] for d in today["by_day"]] == ["2030-06-15"]
    assert today["overall"]["stops_scored"] == 1


def test_routes_are_the_days_newest_dispatch(store: Store, session: Session) -> None:
    """B-1's replan moved it to V-C; a cancelled plan and one never dispatched count nowhere."""
    plans = store.seeded.plans
    routes = accuracy_report(session, store.mine, NOW, 3)["by_route"]
    assert [(r["day"], r["vehicle_id"], r["plan_id"], r["stops_scored"]) for r in routes] == [
        ("2030-06-13", "V-A", plans["P13"], 1),
        ("2030-06-14", "V-A", plans["P1"], 4),
        ("2030-06-14", "V-B", plans["P0"], 1),
        ("2030-06-15", "V-C", plans["P3"], 1),
    ]
    assert routes[1]["stops_unscored"] == 2


def test_records_of_a_stop_planned_twice(store: Store, session: Session) -> None:
    """R-1 failed on D-1 and came again on D: each day's stop has its own first window and
    arrival, never the other day's."""
    records = promise_records(session, store.mine, [D - timedelta(days=1), D], ROME)
    r1 = [r for r in records if r.order_id == "R-1"]
    assert [(r.day, r.promise.first_latest_s, r.promise.actual_s) for r in r1] == [
        (
            D - timedelta(days=1),
            _s("09:15", D - timedelta(days=1)),
            _s("09:00", D - timedelta(days=1)),
        ),
        (D, _s("13:15"), _s("13:30")),
    ]
    a2 = next(r for r in records if r.order_id == "A-2")
    # Two channels, one notice; the first arrival; samples stop before it.
    assert a2.promise.late_notices == (DelayNotice(_s("09:30"), _s("10:15")),)
    assert a2.promise.actual_s == _s("10:40")
    assert (a2.samples[0].at_s, a2.samples[-1].at_s, len(a2.samples)) == (
        _s("09:00"),
        _s("10:39"),
        100,
    )
    assert {r.order_id for r in records}.isdisjoint({"X-1", "N-1"})


def test_another_organisation_is_never_counted(store: Store, session: Session) -> None:
    """The other carrier uses the same order ids on the same day: neither sees the other's
    stops, messages, arrivals or live windows."""
    theirs = accuracy_report(session, store.theirs, NOW, 3)
    assert subset(theirs["overall"], THEIRS) == THEIRS
    assert theirs["timezone"] == "UTC"
    assert [(r["vehicle_id"], r["stops_scored"]) for r in theirs["by_route"]] == [("V-A", 2)]
    mine = accuracy_report(session, store.mine, NOW, 3)
    assert subset(mine["overall"], MINE_OVERALL) == MINE_OVERALL


def test_plan_records(store: Store, session: Session) -> None:
    """A plan's stops, under the route each ended on; none for a cancelled plan or one never
    dispatched."""
    plans = store.seeded.plans
    p1 = plan_records(session, plans["P1"])
    assert [r.order_id for r in p1] == ["A-1", "A-2", "A-3", "A-4", "A-5", "R-1"]
    assert {r.day for r in p1} == {D}
    (b1,) = plan_records(session, plans["P2"])
    assert (b1.order_id, b1.plan_id, b1.vehicle_id) == ("B-1", plans["P3"], "V-C")
    assert plan_records(session, plans["PX"]) == []
    assert plan_records(session, plans["PN"]) == []
    assert plan_records(session, "no-such-plan") == []
