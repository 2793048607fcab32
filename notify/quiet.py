"""Quiet hours on the customer's wall clock (zoneinfo: DST changes, windows over midnight)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


def in_quiet_hours(at: datetime, start: time, end: time, zone: ZoneInfo) -> bool:
    """Whether the wall clock in ``zone`` reads within ``[start, end)`` at instant ``at``.

    ``start > end`` spans midnight (21:00-08:00); ``start == end`` means no quiet hours.
    """
    if start == end:
        return False
    wall = at.astimezone(zone).time().replace(tzinfo=None)
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


def quiet_end_after(at: datetime, start: time, end: time, zone: ZoneInfo) -> datetime:
    """The first instant at or after ``at`` outside quiet hours (``at`` itself if not quiet).

    The end's wall time may not exist (skipped by a spring-forward change) or exist twice
    (repeated by a fall-back change): both readings are tried and the later instant is kept,
    so the clock never reads quiet hours again after it.
    """
    if not in_quiet_hours(at, start, end, zone):
        return at
    local = at.astimezone(zone)
    day = local.date()
    if start > end and local.time().replace(tzinfo=None) >= start:
        day += timedelta(days=1)
    candidates = [
        datetime.combine(day, end, tzinfo=zone).replace(fold=fold).astimezone(UTC)
        for fold in (0, 1)
    ]
    result = max(candidates)
    # Defensive: an exotic zone change could still leave the wall clock inside the window.
    while in_quiet_hours(result, start, end, zone):
        result += timedelta(minutes=1)
    return result.astimezone(at.tzinfo)
