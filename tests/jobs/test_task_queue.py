"""Planning jobs through a real task queue: the service sends, a Dramatiq worker runs them;
and the lease that keeps a job on one worker at a time.

Redis at 127.0.0.1:6379 (skipped saying so when it is not there; a failure in CI). Every
test uses its own queue name, which is also its Redis key namespace, so parallel runs on
the same Redis never take each other's jobs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import dramatiq
import pytest

from api.settings import Settings
from jobs.plan_runner import LEASE_GRACE_S, JobBusyError, PlanRunner
from jobs.task_queue import TaskQueue, queue_worker
from routing.road_graph import RoadGraph
from routing.snapping import Snapper
from store.db import make_engine, session_factory, transaction, upgrade
from store.repo import create_organisation
from store.schema import PlanJobRow, PlanRow
from tests.api.service import Service, running
from tests.conftest import REPO, require_servers

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
SHIFT = {"start": "2026-11-26T08:00:00+02:00", "end": "2026-11-26T18:00:00+02:00"}
PLACES = [(60.1665, 24.9433), (60.1700, 24.9500), (60.1620, 24.9400)]


@pytest.fixture
def queue() -> Iterator[dict[str, str]]:
    """Settings of a private queue on the local Redis; its keys are deleted afterwards."""
    try:
        socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1).close()
    except OSError as exc:
        message = f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT}: {exc}"
        if require_servers():
            pytest.fail(message)
        pytest.skip(message)
    import redis

    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
    name = f"lastmile-test-{uuid.uuid4().hex[:12]}"
    yield {"task_queue_url": url, "task_queue_name": name}
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(f"{name}:*"):
            client.delete(key)
    finally:
        client.close()


def _fleet(s: Service) -> None:
    h = s.headers()
    depot = {"id": "d1", "location": {"lat": 60.1699, "lon": 24.9384}}
    assert s.client.post("/v1/depots", json=depot, headers=h).status_code == 201
    vehicle = {"id": "v1", "depot_id": "d1", "shift": SHIFT, "capacity": [10]}
    r = s.client.post("/v1/vehicles", json=vehicle, headers=h)
    assert r.status_code == 201, r.text
    for i, (lat, lon) in enumerate(PLACES):
        order = {"id": f"o{i}", "location": {"lat": lat, "lon": lon}, "demand": [1]}
        r = s.client.post("/v1/orders", json=order, headers=h)
        assert r.status_code == 201, r.text


def _start_plan(s: Service) -> str:
    r = s.client.post("/v1/plans", json={"time_limit_s": 1}, headers=s.headers())
    assert r.status_code == 202, r.text
    plan_id: str = r.json()["plan_id"]
    return plan_id


def _assert_planned(s: Service, plan_id: str) -> None:
    body = s.wait(plan_id, timeout_s=90)
    assert body["status"] == "succeeded", body
    routes = [r for r in body["plan"]["routes"] if r["stops"]]
    assert routes, body["plan"]
    assert sorted(stop["order_id"] for r in routes for stop in r["stops"]) == ["o0", "o1", "o2"]


@pytest.mark.integration
def test_a_plan_job_waits_in_the_queue_and_a_worker_runs_it(
    database_url: str,
    tmp_path: Path,
    queue: dict[str, str],
    helsinki: RoadGraph,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a task queue the service does not plan: the job stays queued until a worker
    (a dramatiq.Worker on its own thread here, as `lastmile worker` runs it) takes it."""
    monkeypatch.setenv("LASTMILE_SENDER_ENABLED", "false")
    with running(database_url, tmp_path, **queue) as s:
        assert s.client.app.state.runner.send is not None  # type: ignore[attr-defined]
        _fleet(s)
        plan_id = _start_plan(s)
        time.sleep(1.5)  # in-process it would be solved (1 s limit) by now
        body = s.client.get(f"/v1/plans/{plan_id}", headers=s.headers()).json()
        assert body["status"] == "queued"
        settings = Settings(
            data_dir=tmp_path,
            database_url=database_url,
            plan_time_limit_s=1.0,
            task_queue_url=queue["task_queue_url"],
            task_queue_name=queue["task_queue_name"],
        )
        with queue_worker(settings, graph=helsinki):
            _assert_planned(s, plan_id)
            # A second job while the worker is up runs straight away.
            _assert_planned(s, _start_plan(s))


class _Lines:
    """Reads a process's output on a thread (so it never blocks on a full pipe)."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self.stream = stream
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.stream:
            self.lines.append(line)

    def wait_for(self, text: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return True
            time.sleep(0.1)
        return False

    def close(self) -> None:
        self.thread.join(timeout=10)
        self.stream.close()


@pytest.mark.integration
def test_lastmile_worker_process_runs_the_services_jobs(
    database_url: str, tmp_path: Path, queue: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `lastmile worker` command, as deployed: its own process, same settings."""
    monkeypatch.setenv("LASTMILE_SENDER_ENABLED", "false")
    with running(database_url, tmp_path, **queue) as s:
        _fleet(s)
        env: dict[str, Any] = {
            **os.environ,
            "LASTMILE_DATA_DIR": str(tmp_path),
            "LASTMILE_DATABASE_URL": database_url,
            "LASTMILE_TASK_QUEUE_URL": queue["task_queue_url"],
            "LASTMILE_TASK_QUEUE_NAME": queue["task_queue_name"],
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "lastmile.cli", "worker"],
            cwd=REPO,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        output = _Lines(process.stderr)
        try:
            assert output.wait_for("worker ready", 120), "".join(output.lines)
            _assert_planned(s, _start_plan(s))
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise
            finally:
                output.close()
        assert code == 0, "".join(output.lines)


def test_a_queue_worker_leaves_a_job_another_worker_is_running(
    database_url: str, helsinki: RoadGraph, helsinki_snapper: Snapper
) -> None:
    """A second delivery of a job started within its lease is put back (JobBusyError), a
    finished job is left alone, and a job whose lease ran out is taken over."""
    upgrade(database_url)
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    runner = PlanRunner(sessions, helsinki, helsinki_snapper, default_time_limit_s=1.0)
    try:
        org, _ = create_organisation(sessions, "Carrier", "UTC")
        started = datetime.now(UTC) - timedelta(seconds=10)
        with transaction(sessions) as session:
            plan = PlanRow(organisation_id=org, request={"time_limit_s": 1}, status="running")
            session.add(plan)
            session.flush()
            job = PlanJobRow(
                organisation_id=org, plan_id=plan.id, status="running", started_at=started
            )
            session.add(job)
            session.flush()
            job_id = job.id
        with pytest.raises(JobBusyError):
            runner.run(job_id, leased=True)

        def job_row() -> PlanJobRow:
            with sessions() as session:
                row = session.get(PlanJobRow, job_id)
                assert row is not None
                return row

        assert job_row().attempts == 0
        with transaction(sessions) as session:
            row = session.get(PlanJobRow, job_id)
            assert row is not None
            row.started_at = datetime.now(UTC) - timedelta(seconds=1 + LEASE_GRACE_S + 5)
        runner.run(job_id, leased=True)  # the lease ran out: this worker runs it
        done = job_row()
        assert done.attempts == 1
        assert done.status in ("succeeded", "failed")
        runner.run(job_id, leased=True)  # finished: nothing to do
        assert job_row().attempts == 1
    finally:
        runner.shutdown()
        engine.dispose()


def test_a_busy_job_is_retried_later_not_failed() -> None:
    def busy(job_id: str) -> None:
        raise JobBusyError(job_id)

    queue = TaskQueue("redis://127.0.0.1:1/0", "unused", run=busy)  # never connects
    try:
        with pytest.raises(dramatiq.Retry):
            queue._perform("j1")
    finally:
        queue.close()
