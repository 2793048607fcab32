"""Small integer models on a line or a grid, for solver and validator tests."""

from __future__ import annotations

import numpy as np

from routing.model import OrderNode, SolverModel, VehicleSpec


def line_model(
    positions: list[int],
    *,
    vehicles: int = 1,
    capacity: tuple[int, ...] = (100,),
    windows: dict[int, tuple[int, int]] | None = None,
    service_s: int = 10,
    demand: tuple[int, ...] = (1,),
    shift_end_s: int = 10_000,
) -> SolverModel:
    """Node 0 is the depot at 0; node i is an order at ``positions[i - 1]`` along a line
    (one metre takes one second)."""
    xs = np.array([0, *positions], dtype=np.int64)
    matrix = np.abs(xs[:, None] - xs[None, :])
    windows = windows or {}
    orders = tuple(
        OrderNode(
            node=i,
            windows=(windows[i],) if i in windows else (),
            service_s=service_s,
            demand=demand,
        )
        for i in range(1, len(xs))
    )
    spec = VehicleSpec(0, 0, 0, shift_end_s, capacity)
    return SolverModel(matrix.copy(), matrix.copy(), orders, (spec,) * vehicles)
