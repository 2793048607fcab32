"""A job run every so often on the service's clock, on a daemon thread of its own (the
silence timer, the fleet prior's refit: see ``api/app.py``).

The interval is in the time of ``clock``: the wall clock in production, the demo's sped-up
one in the demo, so "every 30 s" is every 30 simulated seconds there. The thread looks at the
clock every ``poll_s`` wall-clock seconds and runs the job once ``every_s`` of clock time have
passed since the last run (or the clock went back). A job that raises is logged and tried
again at the next turn; the thread never dies of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from jobs.thread_loop import ThreadLoop

log = logging.getLogger(__name__)


class ServiceTimer(ThreadLoop):
    def __init__(
        self,
        name: str,
        job: Callable[[datetime], object],
        clock: Callable[[], datetime],
        every_s: float,
        *,
        poll_s: float = 0.5,
    ) -> None:
        if every_s <= 0 or poll_s <= 0:
            raise ValueError("every_s and poll_s must be > 0")
        super().__init__(name, poll_s)
        self.job = job
        self.clock = clock
        self.every_s = every_s
        self._last: datetime | None = None

    def run_due(self) -> bool:
        """Run the job if ``every_s`` of clock time have passed since the last run (the first
        turn only starts the count). Returns whether it ran."""
        now = self.clock()
        last = self._last
        if last is not None and 0 <= (now - last).total_seconds() < self.every_s:
            return False
        self._last = now
        if last is None:
            return False
        try:
            self.job(now)
        except Exception:
            log.exception("%s failed; trying again in %g s", self.name, self.every_s)
        return True

    def start(self) -> None:
        """Start the count and the thread: the first run is ``every_s`` from now."""
        if self._thread is not None:
            return
        self._last = None
        self.run_due()
        super().start()

    def turn(self) -> bool:
        self.run_due()
        return False
