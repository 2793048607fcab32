"""The ingestion pipeline: decode → screen → place → recompute → tell → store.

Transports (MQTT, HTTP) hand each message to one :class:`Ingester` method and acknowledge it
only after the method returns: by then the fix, its effects, or the reason it was refused are
committed. A refused message goes to the dead letters with its reason and bumps a counter.

The stages, one module each, in the order a fix meets them (``ingester.py`` orders them):

1. ``decode``: the transport's payload to a fix on a vehicle row (each format's decoder, the
   device or vehicle it names); a refused message becomes a dead letter.
2. ``screen``: the hygiene verdict against the vehicle's last fix (apply, history only,
   reject) and redeliveries already stored. The vehicle's state is read once per batch
   (``load``).
3. ``place``: an applied fix moves the vehicle along its dispatched route: progress and its
   events (arrived, departed, passed, left and rejoined the route).
4. ``recompute``: once per vehicle when the batch ends, its ETAs from its newest state, the
   delay events against the windows told, the ETA history rows.
5. ``tell``: what concerns a customer (arrived, first window, ETA changed, window broken, N
   stops or M minutes away) queued for the notification outbox.
6. ``store``: the batch's rows, one statement per table and one progress row per vehicle,
   with the outbox's messages, in the batch's transaction.

Around them: ``batch`` (the one place a transaction is opened, committed or rolled back),
``state`` (what the stages pass along), ``driver_events`` (a driver's delivered / failed /
skipped) and ``text`` (strings from payloads that must be stored).

Without a fix: ``silence`` finds the vehicles on a route that have sent nothing for longer
than the threshold; the service's timer (``Ingester.tick_silent``) runs them through
``recompute``, ``tell`` and ``store`` in a batch of their own, the vehicle taken to stand
where it was last seen.
"""

from telematics.ingest.driver_events import DRIVER_EVENTS, order_on_route, record_driver_event
from telematics.ingest.ingester import Ingester
from telematics.ingest.state import IngestResult

__all__ = ["DRIVER_EVENTS", "IngestResult", "Ingester", "order_on_route", "record_driver_event"]
