"""Screening decoded fixes against the clock and the vehicle's last applied fix.

Pure: ``screen(position, last, now, params)`` says whether a fix moves the vehicle's state,
is kept only as history (out of order: shared subscriptions spread one vehicle's fixes over
workers, and buffered fixes arrive late), or is rejected with a reason for the dead letters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from domain.geo import LatLon, haversine_m
from domain.position import Position


@dataclass(frozen=True, slots=True)
class HygieneParams:
    #: Device clocks drift; beyond this a fix "from the future" is a broken clock.
    max_future_s: float = 120.0
    #: Devices buffer fixes while offline; older than this they are no use to anyone.
    max_age_s: float = 7 * 86_400.0
    #: Worse than this (metres) the fix cannot place the vehicle on a street.
    max_accuracy_m: float = 100.0
    #: A van does not exceed this between two fixes (216 km/h): faster means a bad fix.
    max_speed_mps: float = 60.0
    #: Jumps are only judged over at least this distance, so jitter at a stop is not one.
    min_jump_m: float = 200.0


class Verdict(Enum):
    APPLY = "apply"
    HISTORY_ONLY = "history_only"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Screened:
    verdict: Verdict
    reason: str = ""


def screen(
    position: Position, last: Position | None, now: datetime, params: HygieneParams
) -> Screened:
    """Judge one fix against the clock and the last fix applied to the same vehicle."""
    if position.fix_time > now + timedelta(seconds=params.max_future_s):
        return Screened(Verdict.REJECT, "from_the_future")
    if position.fix_time < now - timedelta(seconds=params.max_age_s):
        return Screened(Verdict.REJECT, "too_old")
    if position.accuracy_m is not None and position.accuracy_m > params.max_accuracy_m:
        return Screened(Verdict.REJECT, "inaccurate")
    if last is None:
        return Screened(Verdict.APPLY)
    if position.fix_time == last.fix_time:
        return Screened(Verdict.REJECT, "duplicate")
    if position.fix_time < last.fix_time:
        return Screened(Verdict.HISTORY_ONLY, "out_of_order")
    distance = haversine_m(LatLon(last.lat, last.lon), LatLon(position.lat, position.lon))
    elapsed = (position.fix_time - last.fix_time).total_seconds()
    if distance > params.min_jump_m and distance / elapsed > params.max_speed_mps:
        return Screened(Verdict.REJECT, "implausible_jump")
    return Screened(Verdict.APPLY)
