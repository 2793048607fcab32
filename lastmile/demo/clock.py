"""The demo's clock: a simulated day running ``speed`` times faster than the wall clock.

Every part of the demo reads it (the service's routes, ingester and sender, the fleet
simulator), so a fix stamped by a van is never "in the future" for the ingester and a
customer's quiet hours end at 08:00 of the simulated day.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta


class SimClock:
    """Stands at ``start`` until :meth:`run`, then moves ``speed`` simulated seconds per
    wall-clock second. Thread-safe; callable like ``datetime.now(UTC)``."""

    def __init__(self, start: datetime, speed: float) -> None:
        if start.tzinfo is None:
            raise ValueError("start must carry a time zone")
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.start = start
        self.speed = speed
        self._since: float | None = None
        self._at = start
        self._lock = threading.Lock()

    def run(self) -> None:
        """Let simulated time flow from where it stands."""
        with self._lock:
            if self._since is None:
                self._since = time.monotonic()

    @property
    def running(self) -> bool:
        return self._since is not None

    def __call__(self) -> datetime:
        with self._lock:
            if self._since is None:
                return self._at
            return self._at + timedelta(seconds=(time.monotonic() - self._since) * self.speed)

    def wall_s(self, sim_s: float) -> float:
        """Wall-clock seconds that ``sim_s`` simulated seconds take."""
        return sim_s / self.speed
