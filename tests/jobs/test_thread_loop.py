"""The daemon-thread loop the outbox sender, the mailbox poller and the timers run on: a poke
runs a pass at once, a pass with more to do is followed at once, a pass that raises does not
end the thread, and stop waits for the pass under way."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from jobs.thread_loop import ThreadLoop


class Passes(ThreadLoop):
    def __init__(self, poll_s: float, more: int = 0, fail_first: bool = False) -> None:
        super().__init__("passes", poll_s)
        self.count = 0
        self.more = more  # passes that say there is more to do
        self.fail_first = fail_first
        self.ran = threading.Event()

    def turn(self) -> bool:
        self.count += 1
        self.ran.set()
        if self.fail_first and self.count == 1:
            raise RuntimeError("first pass fails")
        return self.count <= self.more


def _wait_for(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("not reached in time")
        time.sleep(0.01)


def test_a_poke_runs_a_pass_before_the_wait_ends() -> None:
    loop = Passes(poll_s=60.0)
    loop.start()
    try:
        _wait_for(lambda: loop.count == 1)  # a pass at start
        loop.ran.clear()
        loop.poke()
        assert loop.ran.wait(5.0)
        assert loop.count == 2
    finally:
        loop.stop()
    assert loop._thread is None


def test_more_to_do_means_no_wait() -> None:
    loop = Passes(poll_s=60.0, more=5)
    loop.start()
    try:
        _wait_for(lambda: loop.count == 6)  # five "more" passes back to back, then the wait
        time.sleep(0.1)
        assert loop.count == 6
    finally:
        loop.stop()


def test_a_failing_pass_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = Passes(poll_s=0.01, fail_first=True)
    with caplog.at_level(logging.ERROR, logger="jobs.thread_loop"):
        loop.start()
        try:
            _wait_for(lambda: loop.count >= 3)
        finally:
            loop.stop()
    assert "passes: a pass failed" in caplog.text


def test_stop_waits_for_the_pass_under_way_and_start_twice_is_one_thread() -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[bool] = []

    class Slow(ThreadLoop):
        def turn(self) -> bool:
            started.set()
            release.wait(5.0)
            finished.append(True)
            return False

    loop = Slow("slow", poll_s=60.0)
    loop.start()
    first = loop._thread
    loop.start()
    assert loop._thread is first
    assert started.wait(5.0)
    stopper = threading.Thread(target=loop.stop)
    stopper.start()
    time.sleep(0.1)
    assert loop.stopping
    assert not finished  # stop is waiting for the pass
    release.set()
    stopper.join(5.0)
    assert finished == [True]
    assert not stopper.is_alive()


def test_poll_s_must_be_positive() -> None:
    with pytest.raises(ValueError, match="poll_s"):
        Passes(poll_s=0)
