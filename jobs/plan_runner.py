"""Planning jobs: queued in the database, run one at a time on a worker thread.

A job's progress (every improving cost) is written as it runs, so the API can show it and
stream it. Jobs that were queued or running when the service stopped run again at start-up:
a restart loses no plan request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from domain.errors import Problem, ValidationError
from domain.geo import LatLon
from domain.plan import Plan
from domain.problem import PlanningProblem, TimeWindow
from eta.params import FleetPrior
from routing.costs import ProgressCallback, SolverParams
from routing.plan_by_hour import plan_routes_by_hour
from routing.planner import plan_geojson, planned_order_ids
from routing.replan import VehicleState, insert_order, replan_rest
from routing.road_graph import RoadGraph
from routing.snapping import Snapper
from routing.time_of_day import HourProfile
from routing.vroom_format import solve_vroom
from store.db import transaction
from store.repo import load_problem, order_from_row, plan_from_dict, plan_to_dict, save_routes
from store.schema import OrderRow, PlanJobRow, PlanRow
from telematics.fleet_prior import PlanningPrior
from telematics.service_history import service_plan

log = logging.getLogger(__name__)
#: Progress is written at most this often (seconds), so a fast solver cannot flood the database.
PROGRESS_EVERY_S = 0.5
#: On a task queue, a job another worker started is its own for its time limit plus this long.
LEASE_GRACE_S = 120.0


class JobBusyError(RuntimeError):
    """Another worker is running the job (within its lease): try again later."""


class PlanRunner:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        graph: RoadGraph,
        snapper: Snapper,
        *,
        default_time_limit_s: float,
        on_solved: Callable[[str, str, float], None] | None = None,
        send: Callable[[str], None] | None = None,
        prior: Callable[[datetime], FleetPrior] | None = None,
    ) -> None:
        self.sessions = sessions
        self.graph = graph
        self.snapper = snapper
        self.default_time_limit_s = default_time_limit_s
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="planner")
        #: Told (kind, status, seconds) after every job, for the service's metrics.
        self.on_solved = on_solved
        #: Set: jobs go to a task queue (jobs/task_queue.py) instead of the worker thread.
        self.send = send
        #: The fleet prior for the day planned, for its hour factors (docs/adr/0022).
        self.prior: Callable[[datetime], FleetPrior] = prior or PlanningPrior(sessions)

    def resume(self) -> int:
        """Queue again every job a previous run left queued or running; returns how many.
        On a task queue only the queued ones (sent again in case the service stopped before
        sending them): running ones belong to a queue worker, which has the message."""
        statuses = ["queued"] if self.send is not None else ["queued", "running"]
        with transaction(self.sessions) as session:
            jobs = list(session.scalars(select(PlanJobRow).where(PlanJobRow.status.in_(statuses))))
            for job in jobs:
                job.status = "queued"
            ids = [j.id for j in jobs]
        for job_id in ids:
            self.submit(job_id)
        return len(ids)

    def submit(self, job_id: str) -> None:
        if self.send is not None:
            self.send(job_id)
        else:
            self.pool.submit(self._run_logged, job_id)

    def shutdown(self) -> None:
        """Drop queued jobs (they stay queued in the database and resume at the next start)
        and let the running one finish, so it releases its database connection cleanly."""
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _run_logged(self, job_id: str) -> None:
        try:
            self.run(job_id)
        except Exception:  # a failed job is recorded; the worker must live on
            log.exception("plan job %s failed", job_id)

    def run(self, job_id: str, *, leased: bool = False) -> None:
        """Run one job (the worker thread's and the task queue's body). ``leased`` (a queue
        worker): raise :class:`JobBusyError` for a job another worker started and may still be
        running, i.e. within its time limit plus ``LEASE_GRACE_S``."""
        with transaction(self.sessions) as session:
            job = session.get(PlanJobRow, job_id, with_for_update=leased)
            if job is None or job.status not in ("queued", "running"):
                return
            plan = session.get(PlanRow, job.plan_id)
            assert plan is not None
            if plan.status == "cancelled":
                job.status = "cancelled"
                return
            if leased and job.status == "running" and job.started_at is not None:
                lease_s = self._params(dict(plan.request)).time_limit_s + LEASE_GRACE_S
                if (datetime.now(UTC) - job.started_at).total_seconds() < lease_s:
                    raise JobBusyError(f"plan job {job_id} is running elsewhere")
            job.status = plan.status = "running"
            job.started_at = datetime.now(UTC)
            job.attempts += 1
            job.progress = []
            request = dict(plan.request)
            kind, org = plan.kind, plan.organisation_id
            parent_id = plan.parent_plan_id
        last_write = [0.0]
        points: list[list[float]] = []

        def on_improve(elapsed_s: float, cost: int) -> None:
            points.append([round(elapsed_s, 3), cost])
            now = time.monotonic()
            if now - last_write[0] >= PROGRESS_EVERY_S:
                last_write[0] = now
                with transaction(self.sessions) as s:
                    row = s.get(PlanJobRow, job_id)
                    if row is not None:
                        row.progress = list(points)

        started = time.perf_counter()
        status = "failed"
        try:
            result, geojson, plan_obj = self._solve(kind, org, request, parent_id, on_improve)
        except ValidationError as exc:
            self._finish(job_id, "failed", points, error="; ".join(str(p) for p in exc.problems))
            return
        except Exception as exc:
            self._finish(job_id, "failed", points, error=f"{type(exc).__name__}: {exc}")
            raise
        else:
            status = "succeeded"
            self._finish(job_id, status, points, result=result, geojson=geojson, plan=plan_obj)
        finally:
            if self.on_solved is not None:
                self.on_solved(kind, status, time.perf_counter() - started)

    def _params(self, request: dict[str, Any]) -> SolverParams:
        limit = request.get("time_limit_s") or self.default_time_limit_s
        return SolverParams(time_limit_s=float(limit), seed=int(request.get("seed", 0)))

    def _solve(
        self,
        kind: str,
        org: str,
        request: dict[str, Any],
        parent_id: str | None,
        on_improve: ProgressCallback,
    ) -> tuple[dict[str, Any], dict[str, Any] | None, Plan | None]:
        params = self._params(request)
        if kind == "vroom":
            out = solve_vroom(request["vroom"], params, graph=self.graph, snapper=self.snapper)
            return out, None, None
        # Each order's service as its customer's history says (docs/adr/0021).
        service = service_plan(self.sessions, org, datetime.now(UTC))
        timing: dict[str, Any] | None = None
        with self.sessions() as session:
            if kind == "plan":
                problem = load_problem(
                    session, org, request.get("order_ids"), request.get("vehicle_ids")
                )
                problem = service.problem(problem)
                timed = plan_routes_by_hour(
                    problem, self.graph, self.snapper, self._hours(problem), params,
                    on_improve=on_improve,
                )  # fmt: skip
                plan, timing = timed.plan, timed.summary()
            else:
                parent = session.get(PlanRow, parent_id) if parent_id else None
                if parent is None or parent.result is None:
                    raise ValidationError([Problem("plan", "the plan to change has no result")])
                before = plan_from_dict(parent.result)
                problem = load_problem(
                    session, org, planned_order_ids(before), parent.request.get("vehicle_ids")
                )
                problem = service.problem(problem)
                now = datetime.fromisoformat(request["now"])
                if kind == "replan":
                    plan = replan_rest(
                        problem, _states(request), now, self.graph, self.snapper, params,
                        told=_told(request),
                    )  # fmt: skip
                else:
                    new = service.order(order_from_row(_order(session, org, request["order_id"])))
                    plan = insert_order(
                        problem, before, new, now, self.graph, self.snapper, params,
                        told=_told(request),
                    )  # fmt: skip
                    problem = replace(problem, orders=(*problem.orders, new))
        geojson = plan_geojson(problem, plan, self.graph, self.snapper)
        result = service.annotate(plan_to_dict(plan))
        if timing is not None:
            result["time_of_day"] = timing
        return result, geojson, plan

    def _hours(self, problem: PlanningProblem) -> HourProfile:
        """The fleet's hour factors for the day planned (every hour 1 without history)."""
        prior = self.prior(min(v.shift.start for v in problem.vehicles))
        return HourProfile(prior.hour_factors, prior.timezone)

    def _finish(
        self,
        job_id: str,
        status: str,
        points: list[list[float]],
        *,
        result: dict[str, Any] | None = None,
        geojson: dict[str, Any] | None = None,
        plan: Plan | None = None,
        error: str | None = None,
    ) -> None:
        with transaction(self.sessions) as session:
            job = session.get(PlanJobRow, job_id)
            if job is None:
                return
            row = session.get(PlanRow, job.plan_id)
            assert row is not None
            job.status = status
            job.progress = list(points)
            job.finished_at = datetime.now(UTC)
            row.status = status if row.status != "cancelled" else "cancelled"
            row.result = result
            row.geojson = geojson
            row.error = error
            if plan is not None:
                save_routes(session, row, plan)


def _order(session: Session, org: str, order_id: str) -> OrderRow:
    row = session.scalar(
        select(OrderRow).where(OrderRow.organisation_id == org, OrderRow.external_id == order_id)
    )
    if row is None:
        raise ValidationError([Problem("order_id", f"unknown order {order_id!r}")])
    return row


def _states(request: dict[str, Any]) -> list[VehicleState]:
    return [
        VehicleState(
            s["vehicle_id"],
            LatLon(s["position"]["lat"], s["position"]["lon"]),
            frozenset(s.get("done", [])),
            s.get("next_order_id"),
            frozenset(s.get("on_board", [])),
        )
        for s in request.get("vehicles", [])
    ]


def _told(request: dict[str, Any]) -> dict[str, TimeWindow]:
    return {
        oid: TimeWindow(datetime.fromisoformat(w["start"]), datetime.fromisoformat(w["end"]))
        for oid, w in request.get("told_windows", {}).items()
    }
