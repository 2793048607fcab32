"""Quiet hours on the customer's wall clock, across midnight and DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notify.policy import OrderNotifyState, decide
from notify.quiet import in_quiet_hours, quiet_end_after
from notify.settings import NotifySettings, Recipient
from notify.triggers import DeliveryEvent, Trigger

ROME = ZoneInfo("Europe/Rome")
NIGHT = (time(21, 0), time(8, 0))


@pytest.mark.parametrize(
    ("utc", "quiet"),
    [
        (datetime(2026, 6, 10, 18, 59, tzinfo=UTC), False),  # 20:59 CEST
        (datetime(2026, 6, 10, 19, 0, tzinfo=UTC), True),  # 21:00 CEST
        (datetime(2026, 6, 10, 23, 0, tzinfo=UTC), True),  # 01:00 CEST
        (datetime(2026, 6, 11, 5, 59, tzinfo=UTC), True),  # 07:59 CEST
        (datetime(2026, 6, 11, 6, 0, tzinfo=UTC), False),  # 08:00 CEST
    ],
)
def test_window_spanning_midnight(utc: datetime, quiet: bool) -> None:
    """21:00-08:00 is judged on Rome's wall clock, not UTC."""
    assert in_quiet_hours(utc, *NIGHT, ROME) is quiet


def test_daytime_window_and_no_window() -> None:
    """A 12:00-14:00 window does not span midnight; equal ends mean no quiet hours."""
    noon = datetime(2026, 6, 10, 11, 0, tzinfo=UTC)  # 13:00 CEST
    assert in_quiet_hours(noon, time(12), time(14), ROME)
    assert quiet_end_after(noon, time(12), time(14), ROME) == datetime(
        2026, 6, 10, 12, 0, tzinfo=UTC
    )
    assert not in_quiet_hours(noon, time(12), time(12), ROME)


def test_spring_forward_night_is_an_hour_shorter() -> None:
    """On 29 March 2026 Rome moves to CEST: 08:00 is 06:00 UTC, not 07:00."""
    evening = datetime(2026, 3, 28, 21, 0, tzinfo=UTC)  # 22:00 CET
    assert quiet_end_after(evening, *NIGHT, ROME) == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)


def test_fall_back_night_is_an_hour_longer() -> None:
    """On 25 October 2026 Rome moves to CET: 08:00 is 07:00 UTC."""
    evening = datetime(2026, 10, 24, 20, 0, tzinfo=UTC)  # 22:00 CEST
    assert quiet_end_after(evening, *NIGHT, ROME) == datetime(2026, 10, 25, 7, 0, tzinfo=UTC)


def test_end_inside_the_skipped_hour() -> None:
    """Quiet until 02:30, a time that does not exist on 29 March: it ends at 03:30 CEST."""
    at = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)  # 01:00 CET
    end = quiet_end_after(at, time(0, 30), time(2, 30), ROME)
    assert end == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert end.astimezone(ROME).hour == 3


def test_end_inside_the_repeated_hour() -> None:
    """Quiet until 02:30, which happens twice on 25 October: it ends at the second one."""
    at = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)  # 01:00 CEST
    end = quiet_end_after(at, time(1, 0), time(2, 30), ROME)
    assert end == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 CET
    assert not in_quiet_hours(end, time(1, 0), time(2, 30), ROME)


def test_policy_defers_across_the_dst_change() -> None:
    """A delivery at 22:00 the night clocks go forward is told at 08:00 CEST."""
    at = datetime(2026, 3, 28, 21, 0, tzinfo=UTC)
    who = Recipient(locale="it", timezone="Europe/Rome", phone="+393331234567")
    d = decide(
        OrderNotifyState("o1"),
        [DeliveryEvent("o1", Trigger.DELIVERED, at, 1)],
        NotifySettings(),
        who,
        at,
    )
    assert {m.not_before for m in d.deferred} == {datetime(2026, 3, 29, 6, 0, tzinfo=UTC)}


ZONES = ["Europe/Rome", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"]


@given(
    at=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
    ),
    start=st.times(),
    end=st.times(),
    zone=st.sampled_from(ZONES),
)
def test_quiet_end_is_never_quiet_and_never_early(
    at: datetime, start: time, end: time, zone: str
) -> None:
    """The end of quiet hours is outside them, not before ``at``, and within a day."""
    tz = ZoneInfo(zone)
    result = quiet_end_after(at, start, end, tz)
    assert not in_quiet_hours(result, start, end, tz)
    assert at <= result <= at + (result - at).__class__(days=1, hours=1)
    if not in_quiet_hours(at, start, end, tz):
        assert result == at
