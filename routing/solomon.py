"""Solomon-format VRPTW instances (also the Gehring & Homberger sets) as solver models.

Distances and travel times are Euclidean, unrounded in the published results. The integer
model scales them by ``scale`` (default 100): travel times rounded *up*, so a schedule feasible
in integers is feasible in exact arithmetic too; distances rounded to nearest for the cost.
Exact distances of a solution come from :func:`exact_distance`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from routing.model import OrderNode, SolverModel, VehicleSpec


@dataclass(frozen=True, slots=True)
class SolomonInstance:
    name: str
    vehicles: int
    capacity: int
    x: tuple[float, ...]
    y: tuple[float, ...]
    demand: tuple[int, ...]
    ready: tuple[int, ...]
    due: tuple[int, ...]
    service: tuple[int, ...]

    @property
    def customers(self) -> int:
        return len(self.x) - 1


class SolomonFormatError(ValueError):
    """The file is not a Solomon-format instance; the message names the file and line."""


def read_solomon(path: Path) -> SolomonInstance:
    """Parse one instance (row 0 is the depot; its due date is the route horizon)."""
    try:
        lines = [line.strip() for line in path.read_text().splitlines()]
    except OSError as exc:
        raise SolomonFormatError(f"cannot read {path}: {exc}") from exc
    lines = [line for line in lines if line]
    try:
        name = lines[0]
        v_at = next(i for i, line in enumerate(lines) if line.upper().startswith("VEHICLE"))
        vehicles, capacity = (int(t) for t in lines[v_at + 2].split()[:2])
        c_at = next(i for i, line in enumerate(lines) if line.upper().startswith("CUSTOMER"))
    except (IndexError, StopIteration, ValueError) as exc:
        raise SolomonFormatError(f"{path}: missing VEHICLE or CUSTOMER section") from exc
    rows: list[list[float]] = []
    for number, line in enumerate(lines[c_at + 1 :], start=c_at + 2):
        parts = line.split()
        if not parts or not parts[0].lstrip("-").isdigit():
            continue  # the column header
        if len(parts) < 7:
            raise SolomonFormatError(f"{path}:{number}: expected 7 columns, got {len(parts)}")
        try:
            rows.append([float(p) for p in parts[:7]])
        except ValueError as exc:
            raise SolomonFormatError(f"{path}:{number}: {exc}") from exc
    if len(rows) < 2:
        raise SolomonFormatError(f"{path}: no customers")
    return SolomonInstance(
        name=name,
        vehicles=vehicles,
        capacity=capacity,
        x=tuple(r[1] for r in rows),
        y=tuple(r[2] for r in rows),
        demand=tuple(int(r[3]) for r in rows),
        ready=tuple(int(r[4]) for r in rows),
        due=tuple(int(r[5]) for r in rows),
        service=tuple(int(r[6]) for r in rows),
    )


def euclidean(instance: SolomonInstance) -> npt.NDArray[np.float64]:
    xy = np.column_stack((instance.x, instance.y))
    out: npt.NDArray[np.float64] = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2))
    return out


def solomon_model(instance: SolomonInstance, *, scale: int = 100) -> SolverModel:
    """Node 0 is the depot (start and end of every vehicle); node i is customer i."""
    exact = euclidean(instance) * scale
    duration = np.ceil(exact - 1e-9).astype(np.int64)
    distance = np.rint(exact).astype(np.int64)
    orders = tuple(
        OrderNode(
            node=i,
            windows=((instance.ready[i] * scale, instance.due[i] * scale),),
            service_s=instance.service[i] * scale,
            demand=(instance.demand[i],),
        )
        for i in range(1, len(instance.x))
    )
    vehicle = VehicleSpec(
        start_node=0,
        end_node=0,
        shift_start_s=instance.ready[0] * scale,
        shift_end_s=instance.due[0] * scale,
        capacity=(instance.capacity,),
    )
    return SolverModel(duration, distance, orders, (vehicle,) * instance.vehicles)


def exact_distance(instance: SolomonInstance, routes: list[list[int]]) -> float:
    """Total unrounded Euclidean length of routes given as customer lists (depot implied)."""
    total = 0.0
    for route in routes:
        path = [0, *route, 0]
        for a, b in itertools.pairwise(path):
            total += math.hypot(instance.x[a] - instance.x[b], instance.y[a] - instance.y[b])
    return total
