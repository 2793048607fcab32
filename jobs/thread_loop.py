"""A job's passes on a daemon thread of its own: the outbox sender, the mailbox poller and the
service timers all run this way.

A pass runs at start, then every ``poll_s`` wall-clock seconds, at once when poked or when the
pass says there is more to do. A pass that raises is logged and the loop goes on: the thread
never dies of one bad turn. ``stop`` lets the current pass finish (what it claimed is
recorded) and joins the thread.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class ThreadLoop:
    """Subclasses say what one pass does in :meth:`turn`."""

    def __init__(self, name: str, poll_s: float) -> None:
        if poll_s <= 0:
            raise ValueError("poll_s must be > 0")
        self.name = name
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def turn(self) -> bool:
        """One pass; True when there is more to do at once (no wait before the next)."""
        raise NotImplementedError

    @property
    def stopping(self) -> bool:
        """Whether ``stop`` was asked: a long pass checks it between its parts."""
        return self._stopping.is_set()

    def start(self) -> None:
        """Run passes on the thread (a second start while running does nothing)."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Run a pass now instead of at the end of the wait."""
        self._wake.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the thread after its current pass."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                again = self.turn()
            except Exception:
                log.exception("%s: a pass failed; trying again in %g s", self.name, self.poll_s)
                again = False
            if not again:
                self._wake.wait(self.poll_s)
