"""Quiet hours 21:00-08:00 on the nights the clocks change (Europe/Rome, America/New_York):
a message held back goes at 08:00 local time on the right morning, never inside quiet hours,
and no morning is skipped."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notify.policy import OrderNotifyState, decide
from notify.quiet import in_quiet_hours, quiet_end_after
from notify.settings import NotifySettings, Recipient
from notify.triggers import DeliveryEvent, Trigger

START, END = time(21, 0), time(8, 0)
MINUTE = timedelta(minutes=1)

#: (zone, the morning the clocks change, UTC offset the evening before, offset that morning)
NIGHTS = [
    ("Europe/Rome", date(2026, 3, 29), 1, 2),  # spring forward: 02:00 CET -> 03:00 CEST
    ("Europe/Rome", date(2026, 10, 25), 2, 1),  # fall back: 03:00 CEST -> 02:00 CET
    ("America/New_York", date(2026, 3, 8), -5, -4),  # 02:00 EST -> 03:00 EDT
    ("America/New_York", date(2026, 11, 1), -4, -5),  # 02:00 EDT -> 01:00 EST
]
IDS = ["rome-spring", "rome-fall", "new-york-spring", "new-york-fall"]


def _eight_am_utc(morning: date, offset_h: int) -> datetime:
    return datetime.combine(morning, END, tzinfo=UTC) - timedelta(hours=offset_h)


def _night(zone: ZoneInfo, morning: date) -> list[datetime]:
    """Every 5 minutes (UTC) from 20:00 local the evening before to 09:00 local that morning."""
    first = datetime.combine(morning - timedelta(days=1), time(20), tzinfo=zone).astimezone(UTC)
    last = datetime.combine(morning, time(9), tzinfo=zone).astimezone(UTC)
    steps = int((last - first) / timedelta(minutes=5))
    return [first + k * timedelta(minutes=5) for k in range(steps + 1)]


@pytest.mark.parametrize(("zone_name", "morning", "before_h", "after_h"), NIGHTS, ids=IDS)
def test_the_night_the_clocks_change_ends_at_eight_local(
    zone_name: str, morning: date, before_h: int, after_h: int
) -> None:
    """Every quiet instant of the night defers to 08:00 local of that morning (in the
    morning's offset); the instants outside quiet hours are not deferred at all."""
    zone = ZoneInfo(zone_name)
    assert datetime.combine(morning - timedelta(days=1), time(20), zone).utcoffset() == timedelta(
        hours=before_h
    )
    eight = _eight_am_utc(morning, after_h)
    assert eight.astimezone(zone).time() == END
    quiet = 0
    for at in _night(zone, morning):
        end = quiet_end_after(at, START, END, zone)
        if in_quiet_hours(at, START, END, zone):
            quiet += 1
            assert end == eight, at
        else:
            assert end == at
            wall = at.astimezone(zone).time()
            assert START > wall >= END  # 20:xx the evening before, or 08:xx-09:00 after
    # The night is an hour shorter or longer than the usual eleven, never skipped.
    expected_h = 11 - (after_h - before_h)
    assert quiet == expected_h * 12


@pytest.mark.parametrize(("zone_name", "morning", "before_h", "after_h"), NIGHTS, ids=IDS)
def test_quiet_starts_at_nine_the_evening_before(
    zone_name: str, morning: date, before_h: int, after_h: int
) -> None:
    """21:00 local is quiet, 20:59 is not, 07:59 is, 08:00 is not (the edges, in UTC)."""
    zone = ZoneInfo(zone_name)
    nine_pm = datetime.combine(morning - timedelta(days=1), START, tzinfo=UTC) - timedelta(
        hours=before_h
    )
    eight = _eight_am_utc(morning, after_h)
    assert not in_quiet_hours(nine_pm - MINUTE, START, END, zone)
    assert in_quiet_hours(nine_pm, START, END, zone)
    assert in_quiet_hours(eight - MINUTE, START, END, zone)
    assert not in_quiet_hours(eight, START, END, zone)
    assert (eight - nine_pm) == timedelta(hours=11 - (after_h - before_h))


@pytest.mark.parametrize(
    ("zone_name", "local", "fold"),
    [
        # New York, 1 November 2026: 01:00-02:00 happens twice.
        ("America/New_York", datetime(2026, 11, 1, 1, 30), 0),
        ("America/New_York", datetime(2026, 11, 1, 1, 30), 1),
        # Rome, 25 October 2026: 02:00-03:00 happens twice.
        ("Europe/Rome", datetime(2026, 10, 25, 2, 30), 0),
        ("Europe/Rome", datetime(2026, 10, 25, 2, 30), 1),
    ],
    ids=["ny-first", "ny-second", "rome-first", "rome-second"],
)
def test_both_passes_of_the_repeated_hour_are_quiet(
    zone_name: str, local: datetime, fold: int
) -> None:
    """In the hour the clocks repeat, either pass is quiet and ends at 08:00 local."""
    zone = ZoneInfo(zone_name)
    at = local.replace(tzinfo=zone, fold=fold).astimezone(UTC)
    assert in_quiet_hours(at, START, END, zone)
    end = quiet_end_after(at, START, END, zone)
    assert end.astimezone(zone).replace(tzinfo=None) == local.replace(hour=8, minute=0)
    assert not in_quiet_hours(end, START, END, zone)


@pytest.mark.parametrize(
    ("zone_name", "local"),
    [
        ("America/New_York", datetime(2026, 3, 8, 2, 30)),  # 02:00-03:00 does not exist
        ("Europe/Rome", datetime(2026, 3, 29, 2, 30)),
    ],
    ids=["new-york", "rome"],
)
def test_a_time_in_the_skipped_hour_is_quiet_and_ends_at_eight(
    zone_name: str, local: datetime
) -> None:
    """A wall time the spring-forward change skips (as a device's local clock might give
    it) still lands in quiet hours and ends at 08:00 that morning."""
    zone = ZoneInfo(zone_name)
    at = local.replace(tzinfo=zone).astimezone(UTC)
    assert in_quiet_hours(at, START, END, zone)
    end = quiet_end_after(at, START, END, zone)
    assert end.astimezone(zone).replace(tzinfo=None) == local.replace(hour=8, minute=0)


@pytest.mark.parametrize(("zone_name", "morning", "before_h", "after_h"), NIGHTS, ids=IDS)
def test_the_policy_defers_a_late_delivery_to_eight_local(
    zone_name: str, morning: date, before_h: int, after_h: int
) -> None:
    """A delivery told at 22:00 local, and one at 04:00 local, on the night the clocks change:
    the message waits for 08:00 local that morning."""
    who = Recipient(locale="en", timezone=zone_name, email="anna@example.com")
    eight = _eight_am_utc(morning, after_h)
    evening = datetime.combine(morning - timedelta(days=1), time(22), tzinfo=UTC) - timedelta(
        hours=before_h
    )
    small_hours = datetime.combine(morning, time(4), tzinfo=UTC) - timedelta(hours=after_h)
    for at in (evening, small_hours):
        decision = decide(
            OrderNotifyState("o1"),
            [DeliveryEvent("o1", Trigger.DELIVERED, at, 1)],
            NotifySettings(),
            who,
            at,
        )
        assert decision.send == ()
        assert decision.deferred
        assert {m.not_before for m in decision.deferred} == {eight}, at


@settings(max_examples=300, deadline=None)
@given(
    night=st.sampled_from(NIGHTS),
    minutes=st.integers(0, 36 * 60),
)
def test_deferral_is_the_first_instant_out_of_quiet_hours(
    night: tuple[str, date, int, int], minutes: int
) -> None:
    """Any instant from noon the day before to midnight after the change: the deferral is
    outside quiet hours, at 08:00 local, not before ``at``, and the minute before it was
    quiet (so no earlier morning was skipped)."""
    zone_name, morning, _, _ = night
    zone = ZoneInfo(zone_name)
    noon = datetime.combine(morning - timedelta(days=1), time(12), tzinfo=zone).astimezone(UTC)
    at = noon + timedelta(minutes=minutes)
    end = quiet_end_after(at, START, END, zone)
    assert end >= at
    assert not in_quiet_hours(end, START, END, zone)
    if end != at:
        assert end.astimezone(zone).time() == END
        assert in_quiet_hours(end - MINUTE, START, END, zone)
        assert end - at <= timedelta(hours=12)
