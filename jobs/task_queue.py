"""Planning jobs on a task queue: Dramatiq on Redis or RabbitMQ, when LASTMILE_TASK_QUEUE_URL
is set (in-process on the service's worker thread otherwise).

The service sends each job's id (the job itself is already committed in ``plan_jobs``); a
``lastmile worker`` process runs it with the same code as the in-process thread,
:meth:`jobs.plan_runner.PlanRunner.run`. Run as many workers as planning needs.

- Delivery is at least once: the broker keeps a message until a worker has finished with it
  (Redis: requeued when its worker's heartbeat stops; RabbitMQ: unacked until done).
- A job is claimed under its row lock. A second delivery of a job another worker is running
  (within its time limit plus :data:`jobs.plan_runner.LEASE_GRACE_S`) is retried later, so a job
  runs once at a time and a dead worker's job runs again after its lease.
- A failing job is recorded as failed in its row (as in-process); the message is retried,
  and the retry finds the job finished and stops.
- At start-up the service sends its still-queued jobs again (it may have stopped between
  committing a job and sending it); a duplicate finds the job taken or done.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import dramatiq
from dramatiq.broker import Broker

from api.settings import Settings
from jobs.plan_runner import LEASE_GRACE_S, JobBusyError, PlanRunner
from routing.network import load_road_graph
from routing.road_graph import RoadGraph
from routing.snapping import Snapper
from store.db import make_engine, session_factory

log = logging.getLogger(__name__)
ACTOR_NAME = "lastmile_plan_job"
#: A job another worker holds is tried again after this long (milliseconds)...
BUSY_RETRY_MS = 15_000
#: ...at most this many times (with the backoff of other failures: well past any lease).
MAX_RETRIES = 100


def make_broker(url: str, namespace: str) -> Broker:
    """A Dramatiq broker for ``redis://`` (keys under ``namespace``) or ``amqp://``."""
    scheme = urlparse(url).scheme
    if scheme in ("redis", "rediss", "unix"):
        from dramatiq.brokers.redis import RedisBroker

        # dramatiq's Redis broker has no annotations.
        return RedisBroker(url=url, namespace=namespace)  # type: ignore[no-untyped-call]
    if scheme in ("amqp", "amqps"):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url)
    raise ValueError(f"LASTMILE_TASK_QUEUE_URL must be redis://... or amqp://..., got {scheme!r}")


class TaskQueue:
    """The planning queue: ``send`` on the service's side; ``worker`` on a worker's, which
    gives the job ids to ``run``."""

    def __init__(
        self,
        url: str,
        queue_name: str,
        *,
        run: Callable[[str], None] | None = None,
        time_limit_s: float = 600.0,
    ) -> None:
        self.queue_name = queue_name
        self.broker = make_broker(url, queue_name)
        self._run = run
        self.actor: dramatiq.Actor[[str], None] = dramatiq.actor(
            broker=self.broker,
            actor_name=ACTOR_NAME,
            queue_name=queue_name,
            max_retries=MAX_RETRIES,
            min_backoff=BUSY_RETRY_MS,
            max_backoff=10 * 60_000,
            time_limit=int(time_limit_s * 1000),
        )(self._perform)

    def send(self, job_id: str) -> None:
        self.actor.send(job_id)

    def _perform(self, job_id: str) -> None:
        if self._run is None:
            raise RuntimeError("this task queue only sends jobs")
        try:
            self._run(job_id)
        except JobBusyError as exc:
            raise dramatiq.Retry(str(exc), delay=BUSY_RETRY_MS) from exc

    def worker(self, threads: int = 1) -> dramatiq.Worker:
        """A worker consuming this queue (not started)."""
        return dramatiq.Worker(self.broker, queues={self.queue_name}, worker_threads=threads)

    def close(self) -> None:
        self.broker.close()


@contextmanager
def queue_worker(
    settings: Settings, *, threads: int = 1, graph: RoadGraph | None = None
) -> Iterator[dramatiq.Worker]:
    """A started worker running the queue's planning jobs on ``settings``' database and road
    network (``graph`` if given); stopped and closed when the block ends."""
    if not settings.task_queue_url:
        raise ValueError("no task queue: set LASTMILE_TASK_QUEUE_URL (redis://... or amqp://...)")
    engine = make_engine(settings.url)
    if graph is None:
        graph = load_road_graph(settings.osm_path)[0]
    runner = PlanRunner(
        session_factory(engine),
        graph,
        Snapper(graph),
        default_time_limit_s=settings.plan_time_limit_s,
    )
    queue = TaskQueue(
        settings.task_queue_url,
        settings.task_queue_name,
        run=lambda job_id: runner.run(job_id, leased=True),
        time_limit_s=settings.max_plan_time_limit_s + LEASE_GRACE_S,
    )
    worker = queue.worker(threads)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        queue.close()
        runner.shutdown()
        engine.dispose()


def serve(settings: Settings, *, threads: int = 1, ready: Callable[[], None] | None = None) -> None:
    """Run planning jobs until SIGINT or SIGTERM (``lastmile worker``)."""
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with queue_worker(settings, threads=threads):
            if ready is not None:
                ready()
            stop.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
