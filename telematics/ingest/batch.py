"""The batch and its transaction, handled here and nowhere else.

Several messages go through one transaction (MQTT: a worker's batch, acked after the commit);
a message outside one (HTTP) gets a batch of its own. One batch runs at a time: its lock is held
from the first read to the commit or the rollback.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from store.db import transaction
from telematics.ingest.state import BatchState, VehicleState


@dataclass(eq=False)
class Batches:
    sessions: sessionmaker[Session]
    #: Vehicle row id -> its state as last written (what the next batch may reuse).
    cache: dict[str, VehicleState]
    #: Writes what the batch did, inside its transaction.
    finish: Callable[[BatchState], None]
    #: Told once the batch has committed.
    committed: Callable[[BatchState], None]
    lock: threading.RLock = field(default_factory=threading.RLock)
    #: The batch running, if any.
    current: BatchState | None = None

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Process several messages in one transaction (committed when the block ends):
        the MQTT side acks them all after that commit."""
        with self.lock:
            if self.current is not None:  # nested: the outer batch commits
                yield
                return
            try:
                with transaction(self.sessions) as session:
                    batch = BatchState(session)
                    self.current = batch
                    # Flushing before every read would send each fix on its own; the batch
                    # writes once, at its end.
                    with session.no_autoflush:
                        yield
                    self.finish(batch)
                self.committed(batch)
            except BaseException:
                # Rolled back: what was cached from this batch never reached the store.
                for vehicle_id in self.current.live if self.current else ():
                    self.cache.pop(vehicle_id, None)
                raise
            finally:
                self.current = None

    @contextmanager
    def scope(self) -> Iterator[BatchState]:
        """The batch running, or one for this message alone; locked either way (another
        thread's batch must not take what this one adds)."""
        with self.lock:
            if self.current is not None:
                yield self.current
            else:
                with self.batch():
                    assert self.current is not None
                    yield self.current
