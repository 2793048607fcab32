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
import threading
from collections.abc import Callable
from datetime import datetime

log = logging.getLogger(__name__)


class ServiceTimer:
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
        self.name = name
        self.job = job
        self.clock = clock
        self.every_s = every_s
        self.poll_s = poll_s
        self._last: datetime | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

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
        if self._thread is not None:
            return
        self._stopping.clear()
        self._last = None
        self.run_due()  # starts the count: the first run is ``every_s`` from now
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the thread after the job's current run, if any."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _loop(self) -> None:
        while not self._stopping.wait(self.poll_s):
            self.run_due()
