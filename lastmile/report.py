"""PNG plots of a plan and of how its day went, read from the store (``lastmile report``).

The numbers behind each plot are plain functions of a session (tested exactly); the plotting
functions only draw them. Figures are built on matplotlib's Agg canvas directly, never through
pyplot, so importing this module changes no global backend and leaks no open figures.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from lastmile.plot_files import figure, no_data, save
from lastmile.report_accuracy import write_accuracy_plots
from routing.road_graph import RoadGraph
from store.schema import (
    EtaRow,
    EventRow,
    OrderRow,
    OutboxRow,
    PlanRouteRow,
    PlanRow,
    PlanStopRow,
    VehicleRow,
)

#: Horizon bins of the ETA error plot, in minutes before the actual arrival (upper bound open).
HORIZON_BINS_MIN: tuple[tuple[int, int | None], ...] = (
    (0, 15),
    (15, 30),
    (30, 60),
    (60, 120),
    (120, None),
)
#: The ingester's event for a vehicle reaching a stop (telematics/ingest/).
ARRIVED = "arrived"
SENT = "sent"


class ReportError(Exception):
    """The report cannot be made (no such plan, nothing planned yet)."""


def horizon_bin_label(lo_min: int, hi_min: int | None) -> str:
    return f"{lo_min}-{hi_min}" if hi_min is not None else f"{lo_min}+"


@dataclass(frozen=True, slots=True)
class StopDelay:
    """One planned stop: when the plan said the van would arrive and when it did."""

    vehicle_id: str
    seq: int
    order_id: str
    planned: datetime
    actual: datetime | None

    @property
    def delay_s(self) -> float | None:
        """Actual minus planned arrival (positive: late), or None before the van arrived."""
        if self.actual is None:
            return None
        return (self.actual - self.planned).total_seconds()


class HorizonError(NamedTuple):
    """Mean absolute ETA error of the ETAs made ``label`` minutes before the actual arrival,
    and of the plan's own arrival time over the same ETAs (the static baseline)."""

    label: str
    mae_s: float | None
    n: int
    static_mae_s: float | None


@dataclass(frozen=True, slots=True)
class Report:
    plan_id: str
    paths: tuple[Path, ...]
    summary: str


def select_plan(session: Session, plan_id: str | None = None) -> PlanRow:
    """The plan asked for; by default the latest dispatched one, else the latest solved one.

    The service marks a dispatched plan by its ``dispatched_at`` (its status stays
    "succeeded"), so that is what is looked at, not the status.
    """
    if plan_id is not None:
        row = session.get(PlanRow, plan_id)
        if row is None:
            raise ReportError(f"no plan {plan_id!r} in the store")
        return row
    row = session.scalars(
        select(PlanRow)
        .where(PlanRow.dispatched_at.is_not(None))
        .order_by(PlanRow.dispatched_at.desc(), PlanRow.id)
        .limit(1)
    ).first()
    if row is None:
        row = session.scalars(
            select(PlanRow)
            .where(PlanRow.status == "succeeded")
            .order_by(PlanRow.created_at.desc(), PlanRow.id)
            .limit(1)
        ).first()
    if row is None:
        raise ReportError("no dispatched or solved plan in the store yet")
    return row


def _plan_order_rows(plan_id: str) -> Select[str]:
    return (
        select(PlanStopRow.order_id)
        .join(PlanRouteRow, PlanRouteRow.id == PlanStopRow.route_id)
        .where(PlanRouteRow.plan_id == plan_id)
    )


def actual_arrivals(session: Session, plan_id: str) -> dict[str, datetime]:
    """The first ``arrived`` event of each of the plan's orders, by order row id.

    The first, because a van that drives off and comes back (a failed attempt retried) has
    still arrived when it first got there.
    """
    arrived: dict[str, datetime] = {}
    for order_id, at in session.execute(
        select(EventRow.order_id, EventRow.at).where(
            EventRow.kind == ARRIVED, EventRow.order_id.in_(_plan_order_rows(plan_id))
        )
    ):
        if order_id is not None and (order_id not in arrived or at < arrived[order_id]):
            arrived[order_id] = at
    return arrived


def arrival_delays(session: Session, plan_id: str) -> list[StopDelay]:
    """Every stop of the plan, by vehicle and sequence, with its actual arrival if any."""
    arrived = actual_arrivals(session, plan_id)
    rows = session.execute(
        select(
            VehicleRow.external_id,
            PlanStopRow.seq,
            OrderRow.id,
            OrderRow.external_id,
            PlanStopRow.arrival,
        )
        .join(PlanRouteRow, PlanRouteRow.id == PlanStopRow.route_id)
        .join(VehicleRow, VehicleRow.id == PlanRouteRow.vehicle_id)
        .join(OrderRow, OrderRow.id == PlanStopRow.order_id)
        .where(PlanRouteRow.plan_id == plan_id)
        .order_by(VehicleRow.external_id, PlanStopRow.seq)
    )
    return [
        StopDelay(vehicle, seq, external, planned, arrived.get(row_id))
        for vehicle, seq, row_id, external, planned in rows
    ]


def eta_error_by_horizon(session: Session, plan_id: str) -> list[HorizonError]:
    """MAE of the live ETAs stored for the plan's orders, binned by how long before the actual
    arrival each was computed (HORIZON_BINS_MIN); every bin is listed, empty ones with n 0.

    ETAs computed after the arrival, and orders not arrived yet, have no error to count.
    """
    arrived = actual_arrivals(session, plan_id)
    planned: dict[str, datetime] = dict(
        session.execute(
            select(PlanStopRow.order_id, PlanStopRow.arrival)
            .join(PlanRouteRow, PlanRouteRow.id == PlanStopRow.route_id)
            .where(PlanRouteRow.plan_id == plan_id)
        ).all()
    )
    live: dict[str, list[float]] = defaultdict(list)
    static: dict[str, list[float]] = defaultdict(list)
    labels = [horizon_bin_label(lo, hi) for lo, hi in HORIZON_BINS_MIN]
    etas = session.execute(
        select(EtaRow.order_id, EtaRow.computed_at, EtaRow.eta).where(
            EtaRow.order_id.in_(_plan_order_rows(plan_id))
        )
    )
    for order_id, computed_at, eta in etas:
        actual = arrived.get(order_id)
        if actual is None or computed_at > actual:
            continue
        horizon_min = (actual - computed_at).total_seconds() / 60.0
        for (lo, hi), label in zip(HORIZON_BINS_MIN, labels, strict=True):
            if horizon_min >= lo and (hi is None or horizon_min < hi):
                live[label].append(abs((eta - actual).total_seconds()))
                static[label].append(abs((planned[order_id] - actual).total_seconds()))
                break
    return [
        HorizonError(label, _mean(live[label]), len(live[label]), _mean(static[label]))
        for label in labels
    ]


def messages_per_order(session: Session, plan_id: str) -> dict[str, int]:
    """Customer messages sent for each of the plan's orders (external id), zero included, in
    the plan's order (vehicle, sequence)."""
    sent = Counter(
        session.scalars(
            select(OutboxRow.order_id).where(
                OutboxRow.status == SENT, OutboxRow.order_id.in_(_plan_order_rows(plan_id))
            )
        )
    )
    rows = session.execute(
        select(OrderRow.id, OrderRow.external_id)
        .join(PlanStopRow, PlanStopRow.order_id == OrderRow.id)
        .join(PlanRouteRow, PlanRouteRow.id == PlanStopRow.route_id)
        .join(VehicleRow, VehicleRow.id == PlanRouteRow.vehicle_id)
        .where(PlanRouteRow.plan_id == plan_id)
        .order_by(VehicleRow.external_id, PlanStopRow.seq)
    )
    return {external: sent.get(row_id, 0) for row_id, external in rows}


def route_lines(plan: PlanRow) -> dict[str, list[tuple[float, float]]]:
    """Each vehicle's road line from the plan's GeoJSON, as (lon, lat) points."""
    lines: dict[str, list[tuple[float, float]]] = {}
    for feature in (plan.geojson or {}).get("features", []):
        geometry = feature.get("geometry") or {}
        if geometry.get("type") != "LineString" or not geometry.get("coordinates"):
            continue
        vehicle = str((feature.get("properties") or {}).get("vehicle_id", len(lines) + 1))
        lines[vehicle] = [(float(p[0]), float(p[1])) for p in geometry["coordinates"]]
    return lines


def stop_points(session: Session, plan_id: str) -> dict[str, list[tuple[float, float]]]:
    """Each vehicle's stops as (lon, lat), in sequence."""
    points: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for vehicle, lon, lat in session.execute(
        select(VehicleRow.external_id, OrderRow.lon, OrderRow.lat)
        .join(PlanRouteRow, PlanRouteRow.vehicle_id == VehicleRow.id)
        .join(PlanStopRow, PlanStopRow.route_id == PlanRouteRow.id)
        .join(OrderRow, OrderRow.id == PlanStopRow.order_id)
        .where(PlanRouteRow.plan_id == plan_id)
        .order_by(VehicleRow.external_id, PlanStopRow.seq)
    ):
        points[vehicle].append((lon, lat))
    return dict(points)


def road_segments(
    graph: RoadGraph, bbox: tuple[float, float, float, float]
) -> list[np.ndarray[Any, np.dtype[np.float64]]]:
    """The road edges with a point inside ``bbox`` (min lon, min lat, max lon, max lat), each
    two-way road once, as (k, 2) lon/lat arrays."""
    lon0, lat0, lon1, lat1 = bbox
    inside = (
        (graph.geom_lon >= lon0)
        & (graph.geom_lon <= lon1)
        & (graph.geom_lat >= lat0)
        & (graph.geom_lat <= lat1)
    )
    if graph.edge_count == 0 or not inside.any():
        return []
    # Every edge has at least two points, so no reduceat segment is empty.
    hit = np.logical_or.reduceat(inside, graph.geom_offset[:-1])
    edges = np.arange(graph.edge_count)
    keep = hit & ((graph.edge_twin < 0) | (edges < graph.edge_twin))
    return [graph.edge_coords(int(e)) for e in np.flatnonzero(keep)]


# --- plots -----------------------------------------------------------------------------------


def _colours(n: int) -> list[tuple[float, float, float, float]]:
    tab = colormaps["tab10"]
    return [tab(k % 10) for k in range(n)]


def plot_routes(
    lines: dict[str, list[tuple[float, float]]],
    stops: dict[str, list[tuple[float, float]]],
    path: Path,
    graph: RoadGraph | None = None,
    *,
    title: str = "Routes",
) -> Path:
    """Each vehicle's route in its own colour with its stops, over the road network's edges
    (thin grey, only those near the routes)."""
    if not lines:
        return no_data(title, path, "the plan has no routes on the road network")
    lon = np.array([p[0] for line in lines.values() for p in line])
    lat = np.array([p[1] for line in lines.values() for p in line])
    # A margin so the roads leading out of the routes show; at least ~200 m on a tiny plan.
    pad_lon = max(0.08 * float(np.ptp(lon)), 0.003)
    pad_lat = max(0.08 * float(np.ptp(lat)), 0.002)
    bbox = (
        float(lon.min()) - pad_lon,
        float(lat.min()) - pad_lat,
        float(lon.max()) + pad_lon,
        float(lat.max()) + pad_lat,
    )
    fig = figure(8.0, 8.0)
    ax = fig.add_subplot()
    if graph is not None:
        segments = road_segments(graph, bbox)
        if segments:
            ax.add_collection(LineCollection(segments, colors="0.75", linewidths=0.4, zorder=1))
    for (vehicle, line), colour in zip(lines.items(), _colours(len(lines)), strict=True):
        xs, ys = zip(*line, strict=True)
        ax.plot(xs, ys, color=colour, lw=1.8, zorder=2, label=vehicle)
        ax.plot(xs[0], ys[0], marker="s", color="black", ms=7, zorder=4)
        if stops.get(vehicle):
            sx, sy = zip(*stops[vehicle], strict=True)
            ax.scatter(sx, sy, s=14, color=colour, edgecolors="black", linewidths=0.4, zorder=3)
    ax.set_xlim(bbox[0], bbox[2])
    ax.set_ylim(bbox[1], bbox[3])
    # Degrees of longitude shrink with latitude; this keeps the map's shape true.
    ax.set_aspect(1.0 / math.cos(math.radians(float(lat.mean()))))
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8, title="vehicle")
    fig.tight_layout()
    return save(fig, path)


def plot_arrival_delays(delays: Sequence[StopDelay], path: Path) -> Path:
    """Actual minus planned arrival per stop (minutes), grouped and coloured by vehicle."""
    title = "Actual vs planned arrival per stop"
    arrived = [d for d in delays if d.delay_s is not None]
    if not arrived:
        return no_data(title, path, f"{len(delays)} stops planned, none arrived")
    vehicles = list(dict.fromkeys(d.vehicle_id for d in arrived))
    colour_of = dict(zip(vehicles, _colours(len(vehicles)), strict=True))
    fig = figure(max(6.0, min(16.0, 0.25 * len(arrived) + 3.0)), 4.5)
    ax = fig.add_subplot()
    minutes = [(d.delay_s or 0.0) / 60.0 for d in arrived]
    colours = [colour_of[d.vehicle_id] for d in arrived]
    ax.bar(range(len(arrived)), minutes, color=colours)
    # A dot on each bar: an on-time stop has no bar to see.
    ax.scatter(range(len(arrived)), minutes, color=colours, s=12, zorder=3)
    ax.axhline(0.0, color="black", lw=0.8)
    if len(arrived) <= 40:
        ax.set_xticks(range(len(arrived)), [d.order_id for d in arrived], rotation=90, fontsize=7)
    else:
        ax.set_xticks([])
    ax.legend(
        handles=[Patch(color=colour_of[v], label=v) for v in vehicles], fontsize=8, title="vehicle"
    )
    ax.set_ylabel("actual - planned arrival (min)")
    ax.set_title(f"{title} ({len(arrived)} of {len(delays)} stops arrived)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save(fig, path)


def plot_eta_error(errors: Sequence[HorizonError], path: Path) -> Path:
    """MAE of the live ETA (and of the plan's arrival time) per horizon bin, in minutes."""
    title = "ETA error by horizon"
    if not any(e.n for e in errors):
        return no_data(title, path, "no ETA made before an actual arrival")
    fig = figure(7.0, 4.5)
    ax = fig.add_subplot()
    x = np.arange(len(errors))
    live_min = [(e.mae_s or 0.0) / 60.0 for e in errors]
    static_min = [(e.static_mae_s or 0.0) / 60.0 for e in errors]
    ax.bar(x - 0.2, live_min, width=0.4, label="live ETA")
    ax.bar(x + 0.2, static_min, width=0.4, color="0.7", label="plan (static)")
    for k, e in enumerate(errors):
        ax.annotate(
            f"n={e.n}",
            (k, max(live_min[k], static_min[k])),
            ha="center",
            va="bottom",
            xytext=(0, 2),
            textcoords="offset points",
            fontsize=8,
        )
    ax.set_xticks(x, [e.label for e in errors])
    ax.set_xlabel("minutes before the actual arrival")
    ax.set_ylabel("mean absolute error (min)")
    ax.set_title(title)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save(fig, path)


def plot_messages(counts: dict[str, int], path: Path) -> Path:
    """How many orders got 0, 1, 2 ... customer messages."""
    title = "Messages sent per order"
    if not counts:
        return no_data(title, path, "the plan has no orders")
    histogram = Counter(counts.values())
    top = max(histogram)
    fig = figure(6.0, 4.0)
    ax = fig.add_subplot()
    ax.bar(range(top + 1), [histogram.get(k, 0) for k in range(top + 1)], color="tab:blue")
    ax.set_xticks(range(top + 1))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("messages sent")
    ax.set_ylabel("orders")
    ax.set_title(f"{title} ({sum(counts.values())} to {len(counts)} orders)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save(fig, path)


# --- the whole report ------------------------------------------------------------------------


def write_report(
    session: Session, plan: PlanRow, out_dir: Path, graph: RoadGraph | None = None
) -> Report:
    """Every plot of ``plan`` in ``out_dir``, and a one-line summary."""
    delays = arrival_delays(session, plan.id)
    errors = eta_error_by_horizon(session, plan.id)
    messages = messages_per_order(session, plan.id)
    lines = route_lines(plan)
    title = f"Routes of plan {plan.id[:8]}" + (f" on {graph.name}" if graph is not None else "")
    paths = (
        plot_routes(
            lines, stop_points(session, plan.id), out_dir / "routes.png", graph, title=title
        ),
        plot_arrival_delays(delays, out_dir / "arrival_delays.png"),
        plot_eta_error(errors, out_dir / "eta_error_by_horizon.png"),
        plot_messages(messages, out_dir / "messages_per_order.png"),
        *write_accuracy_plots(session, plan, out_dir),
    )
    return Report(plan.id, paths, summarise(plan, lines, delays, errors, messages))


def summarise(
    plan: PlanRow,
    lines: dict[str, list[tuple[float, float]]],
    delays: Sequence[StopDelay],
    errors: Sequence[HorizonError],
    messages: dict[str, int],
) -> str:
    state = (
        f"dispatched {plan.dispatched_at:%Y-%m-%d %H:%M} UTC"
        if plan.dispatched_at is not None
        else plan.status
    )
    late = [d.delay_s for d in delays if d.delay_s is not None]
    median = f", median delay {statistics.median(late) / 60:+.1f} min" if late else ""
    n_etas = sum(e.n for e in errors)
    total_s = sum(e.mae_s * e.n for e in errors if e.mae_s is not None)
    overall = f", ETA MAE {total_s / n_etas / 60:.1f} min" if n_etas else ""
    return (
        f"plan {plan.id} ({state}): {len(lines)} routes, {len(delays)} stops, "
        f"{len(late)} arrived{median}; {n_etas} ETAs scored{overall}; "
        f"{sum(messages.values())} messages sent to {sum(1 for v in messages.values() if v)} "
        f"of {len(messages)} orders"
    )


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
