"""The service's timers run on the service clock (the demo's runs faster than the wall clock),
and a failing run neither stops them nor escapes."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from telematics.timer import ServiceTimer

T0 = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_runs_every_interval_of_clock_time() -> None:
    """Counted from the first turn; a clock that stands still runs nothing, however long the
    wall clock waits; one that goes back (a restarted simulation) runs at once."""
    clock, runs = Clock(), list[datetime]()
    timer = ServiceTimer("t", runs.append, clock, every_s=30.0)
    assert not timer.run_due()  # the first turn starts the count
    clock.now += timedelta(seconds=29)
    assert not timer.run_due()
    clock.now += timedelta(seconds=1)
    assert timer.run_due()
    assert not timer.run_due()
    clock.now += timedelta(minutes=10)  # a long gap: one run, not twenty
    assert timer.run_due()
    assert not timer.run_due()
    clock.now -= timedelta(hours=1)
    assert timer.run_due()
    assert runs == [
        T0 + timedelta(seconds=30),
        T0 + timedelta(seconds=630),
        T0 - timedelta(seconds=2970),
    ]


def test_a_failing_job_is_logged_and_tried_again(caplog: pytest.LogCaptureFixture) -> None:
    clock, calls = Clock(), list[datetime]()

    def job(now: datetime) -> None:
        calls.append(now)
        raise RuntimeError("database is locked")

    timer = ServiceTimer("silence-timer", job, clock, every_s=1.0)
    timer.run_due()
    clock.now += timedelta(seconds=1)
    with caplog.at_level(logging.ERROR):
        assert timer.run_due()
    assert "silence-timer failed" in caplog.text
    clock.now += timedelta(seconds=1)
    assert timer.run_due()
    assert len(calls) == 2


def test_the_thread_follows_the_clock_and_stops() -> None:
    clock, runs = Clock(), list[datetime]()
    timer = ServiceTimer("t", runs.append, clock, every_s=60.0, poll_s=0.01)
    timer.start()
    try:
        clock.now += timedelta(seconds=60)
        deadline = time.monotonic() + 10
        while not runs and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runs == [clock.now]
    finally:
        timer.stop()
    clock.now += timedelta(seconds=60)
    time.sleep(0.05)
    assert len(runs) == 1
