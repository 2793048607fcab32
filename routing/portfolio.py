"""Run the engines that can express a model, check each plan, keep the best.

One thread: the engines take turns within the caller's time limit. PyVRP, where it can express
the model, gets most of the time (``SolverParams.pyvrp_share``); OR-Tools always runs, first,
so there is a plan even for models PyVRP cannot take. Every candidate is checked by the
independent validator; a plan with violations is never returned while a clean one exists.
"""

from __future__ import annotations

import time
from dataclasses import replace

from routing import hgs, optimiser
from routing.costs import ProgressCallback, SolverParams, objective
from routing.model import SolverModel, SolverResult
from routing.validator import Violation, check


class PlanCheckError(RuntimeError):
    """Every engine's plan broke a hard constraint: a solver bug, never silently returned."""

    def __init__(self, violations: list[Violation]) -> None:
        self.violations = violations
        super().__init__("; ".join(str(v) for v in violations[:10]))


def solve(
    model: SolverModel,
    params: SolverParams | None = None,
    *,
    on_improve: ProgressCallback | None = None,
) -> SolverResult:
    """The best checked plan the available engines find within ``params.time_limit_s``."""
    params = params or SolverParams()
    started = time.perf_counter()
    use_pyvrp = "pyvrp" in params.engines and hgs.expressible(model, params) is None
    ortools_s = params.time_limit_s * (1 - params.pyvrp_share) if use_pyvrp else params.time_limit_s
    candidates: list[SolverResult] = []
    best_cost: list[int] = []

    def improved(elapsed: float, cost: int) -> None:
        if on_improve is not None and (not best_cost or cost < best_cost[-1]):
            best_cost.append(cost)
            on_improve(elapsed, cost)

    if "or-tools" in params.engines or not use_pyvrp:
        candidates.append(
            optimiser.solve(
                model,
                replace(
                    params,
                    time_limit_s=ortools_s,
                    safety_margin_s=min(params.safety_margin_s, ortools_s / 4),
                ),
                on_improve=improved,
            )
        )
    if use_pyvrp:
        remaining = params.time_limit_s - (time.perf_counter() - started) - params.safety_margin_s
        result = hgs.solve(model, params, time_limit_s=remaining)
        candidates.append(result)
        improved(time.perf_counter() - started, objective(model, params, result))

    checked = [(check(model, c), c) for c in candidates if c.routes]
    clean = [c for violations, c in checked if not violations]
    if not clean:
        if checked:
            raise PlanCheckError(checked[0][0])
        return candidates[0]
    return min(clean, key=lambda c: objective(model, params, c))
