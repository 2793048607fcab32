"""The demo's promise records: what each customer was told and when the van came, built from
the messages that went out, the ETA core's broken windows and the recorded arrivals, and the
summary's figures read from a store holding such a day."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from eta.promise import promise_figures
from lastmile.demo.promise import (
    SUMMARY_KEYS,
    BrokenWindow,
    SentMessage,
    promise_summary,
    stop_promises,
)
from lastmile.demo.summary import summary
from store.db import make_engine, session_factory, transaction, upgrade
from store.schema import EventRow, OrderRow, Organisation, OutboxRow

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def window(start_min: float, end_min: float) -> tuple[datetime, datetime]:
    return at(start_min), at(end_min)


def test_the_first_window_is_the_first_sent_and_late_notices_carry_the_broken_end() -> None:
    """a: told 60-90 at dispatch, then told at 40 that the van will be late (the ETA core's
    window to 92 broken), came at 115: a material delay told 75 minutes ahead. b: an early
    break and a moved ETA are messages, not late notices; it came inside its window."""
    orders = {"row-a": "A", "row-b": "B", "row-c": "C", "row-d": "D"}
    sent = [
        SentMessage("row-a", "out_for_delivery", 1, at(2), window(62, 92)),
        SentMessage("row-a", "plan_confirmed", 0, at(0), window(60, 90)),
        SentMessage("row-a", "stops_away", 1, at(20), window(62, 92)),
        SentMessage("row-a", "window_broken", 2, at(40), window(100, 125)),
        SentMessage("row-b", "plan_confirmed", 0, at(0), window(30, 50)),
        SentMessage("row-b", "window_broken", 2, at(10), window(20, 35)),
        SentMessage("row-b", "eta_changed", 3, at(30), window(25, 40)),
        SentMessage("row-b", "arrived", 3, at(33), None),
        # c was never told a window (a message without one is no promise).
        SentMessage("row-c", "arrived", 0, at(70), None),
        SentMessage("row-elsewhere", "plan_confirmed", 0, at(0), window(0, 10)),
    ]
    broken = [
        BrokenWindow("row-a", 2, at(92), late=True),
        BrokenWindow("row-b", 2, at(50), late=False),
    ]
    arrivals = {"row-a": at(115), "row-b": at(33), "row-c": at(70)}
    stops = {s.stop_id: s for s in stop_promises(orders, sent, broken, arrivals)}
    assert set(stops) == {"A", "B", "C", "D"}
    a = stops["A"]
    assert (a.first_earliest_s, a.first_latest_s) == (at(60).timestamp(), at(90).timestamp())
    assert a.actual_s == at(115).timestamp()
    assert [(n.at_s, n.broken_latest_s) for n in a.late_notices] == [
        (at(40).timestamp(), at(92).timestamp())
    ]
    assert a.messages == 1
    b = stops["B"]
    assert b.late_notices == ()
    assert b.messages == 2
    assert stops["C"].first_latest_s is None
    assert stops["D"].actual_s is None
    assert stops["D"].first_latest_s is None
    f = promise_figures(list(stops.values()))
    assert f["stops_scored"] == 2
    assert f["material_delays"] == 1
    assert f["material_delays_told_15min_ahead"] == 1
    assert f["lead_time_median_min"] == 75.0
    assert f["first_window_hit"] == 0.5
    assert f["late_notice_precision"] == 1.0


def test_a_notice_sent_too_late_is_counted_but_not_as_told_ahead() -> None:
    """Told 5 minutes before the van came: the delay is material, the notice too late."""
    sent = [
        SentMessage("o", "plan_confirmed", 0, at(0), window(0, 30)),
        SentMessage("o", "window_broken", 2, at(50), window(50, 60)),
    ]
    broken = [BrokenWindow("o", 2, at(31), late=True)]
    f = promise_figures(stop_promises({"o": "O"}, sent, broken, {"o": at(55)}))
    assert f["material_delays"] == 1
    assert f["material_delays_told_15min_ahead"] == 0
    assert f["material_delay_recall"] == 0.0
    assert f["lead_time_median_min"] == 5.0


def test_a_reissued_message_tells_the_break_that_caused_it() -> None:
    """A window-broken message queued at version 3 and re-issued under version 4 (a newer
    ETA that told nothing itself) still tells version 3's broken window."""
    sent = [
        SentMessage("o", "plan_confirmed", 0, at(0), window(0, 30)),
        SentMessage("o", "window_broken", 4, at(20), window(45, 60)),
    ]
    broken = [
        BrokenWindow("o", 3, at(30), late=True),
        BrokenWindow("o", 5, at(60), late=True),
    ]
    (stop,) = stop_promises({"o": "O"}, sent, broken, {"o": at(55)})
    assert [n.broken_latest_s for n in stop.late_notices] == [at(30).timestamp()]


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'lastmile.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield session_factory(engine)
    engine.dispose()


def _sent(org: str, order: str, trigger: str, version: int, channel: str, sent_at: datetime,
          told: tuple[datetime, datetime] | None, status: str = "sent") -> OutboxRow:  # fmt: skip
    message = {
        "order_id": order,
        "trigger": trigger,
        "eta_version": version,
        "window": None if told is None else [told[0].isoformat(), told[1].isoformat()],
    }
    return OutboxRow(
        organisation_id=org,
        order_id=order,
        channel=channel,
        trigger=trigger,
        dedupe_key=f"{order}:{trigger}:{version}:{channel}",
        status=status,
        due_at=sent_at,
        sent_at=sent_at if status == "sent" else None,
        payload={"message": message, "idempotency_key": f"{order}:{trigger}:{version}"},
    )


def _event(
    org: str, order: str, kind: str, at_min: float, told_latest: float | None = None
) -> EventRow:
    data = {} if told_latest is None else {
        "version": 2, "told_latest": at(told_latest).isoformat(), "late": True
    }  # fmt: skip
    return EventRow(organisation_id=org, order_id=order, kind=kind, at=at(at_min), data=data)


def test_the_summary_reads_the_promise_from_the_store(sessions: sessionmaker[Session]) -> None:
    """Two customers: one told 60-90, told at 40 that it would be late, the van at 115 (the
    e-mail went a minute after the webhook: the earlier counts); one told 30-50 and the van
    at 45. A window-broken message still queued when the day ended told nobody."""
    with transaction(sessions) as session:
        org = Organisation(name="Kauppa")
        session.add(org)
        session.flush()
        rows = [
            OrderRow(
                organisation_id=org.id,
                external_id=name,
                lat=60.17,
                lon=24.94,
                tracking_token=f"tok-{name}",
            )
            for name in ("late", "fine")
        ]
        session.add_all(rows)
        session.flush()
        late, fine = rows[0].id, rows[1].id
        session.add_all(
            [
                _sent(org.id, late, "plan_confirmed", 0, "email", at(0), window(60, 90)),
                _sent(org.id, late, "window_broken", 2, "webhook", at(40), window(100, 125)),
                _sent(org.id, late, "window_broken", 2, "email", at(41), window(100, 125)),
                _sent(org.id, fine, "plan_confirmed", 0, "email", at(0), window(30, 50)),
                _sent(org.id, fine, "window_broken", 2, "email", at(20), None, "pending"),
                _event(org.id, late, "window_broken", 40, told_latest=92),
                _event(org.id, fine, "window_broken", 20, told_latest=52),
                _event(org.id, late, "arrived", 115),
                _event(org.id, late, "arrived", 118),
                _event(org.id, fine, "arrived", 45),
            ]
        )
        org_id = org.id
    with sessions() as session:
        figures = promise_summary(session, org_id)
        line = summary(session, org_id)
    assert figures["material_delays"] == 1
    assert figures["material_delays_told_15min_ahead"] == 1
    assert figures["material_delay_recall"] == 1.0
    assert figures["lead_time_median_min"] == 75.0
    assert figures["first_window_hit"] == 0.5
    assert figures["first_window_width_min"] == 25.0
    assert figures["late_notices"] == 1
    assert figures["late_notice_precision"] == 1.0
    for key in SUMMARY_KEYS:
        assert line[key] == figures[key]
    assert list(line)[:7] == [
        "orders",
        "delivered",
        "failed",
        "messages_sent",
        "eta_mae_s",
        "late_stops_notified",
        "late_stops",
    ]
