"""``lastmile report``'s plots of the promise (docs/accuracy.md) for one plan's stops: live
window coverage by horizon, how long before the van the late customers were told, and where
each arrival fell against the first window told. The records come from
:func:`store.accuracy.plan_records`, the figures from :mod:`eta.promise`, as for the API.

Figures are drawn on matplotlib's Agg canvas directly, never through pyplot (as in
:mod:`lastmile.report`, whose helpers are not imported: it imports this module).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator
from sqlalchemy.orm import Session

from eta.promise import (
    HORIZON_LABELS,
    NOTICE_LEAD_S,
    coverage_figures,
    horizon_bucket,
    is_material_delay,
    notice_lead_s,
)
from lastmile.plot_files import figure, no_data, save
from store.accuracy import StopRecord, plan_records
from store.schema import PlanRow

#: A P10-P90 window should hold the arrival this often.
NOMINAL_COVERAGE = 0.8
#: Where an arrival fell against the first window told, in the order drawn (the last is a
#: material delay: eta.promise.MATERIAL_DELAY_S).
PLACES = ("before the window", "inside", "up to 10 min late", "more than 10 min late")


def first_window_places(records: Sequence[StopRecord]) -> dict[str, int]:
    """How many scored stops arrived before, inside or after their first window (PLACES)."""
    counts = dict.fromkeys(PLACES, 0)
    for record in records:
        stop = record.promise
        if stop.actual_s is None or stop.first_earliest_s is None or stop.first_latest_s is None:
            continue
        if stop.actual_s < stop.first_earliest_s:
            counts[PLACES[0]] += 1
        elif stop.actual_s <= stop.first_latest_s:
            counts[PLACES[1]] += 1
        elif not is_material_delay(stop):
            counts[PLACES[2]] += 1
        else:
            counts[PLACES[3]] += 1
    return counts


def lead_times_min(records: Sequence[StopRecord]) -> tuple[list[float], int]:
    """(Minutes from the first late notice to the arrival of each material delay told before
    the van came, how many material delays were not told before it at all)."""
    leads: list[float] = []
    untold = 0
    for record in records:
        if not is_material_delay(record.promise):
            continue
        lead = notice_lead_s(record.promise)
        if lead is None:
            untold += 1
        else:
            leads.append(lead / 60.0)
    return leads, untold


def plot_coverage(records: Sequence[StopRecord], path: Path) -> Path:
    """Share of the sampled live windows that held the arrival, per horizon bucket."""
    title = "Live window coverage by horizon"
    figures = coverage_figures([s for r in records for s in r.samples])
    shares = figures["coverage_by_horizon"]
    assert isinstance(shares, dict)
    if not figures["window_samples"]:
        return no_data(title, path, "no live window before an actual arrival")
    counts = Counter(horizon_bucket(s.horizon_s) for r in records for s in r.samples)
    fig = figure(7.0, 4.5)
    ax = fig.add_subplot()
    x = np.arange(len(HORIZON_LABELS))
    heights = [100.0 * (shares[label] or 0.0) for label in HORIZON_LABELS]
    ax.bar(x, heights, color="tab:blue")
    for k, label in enumerate(HORIZON_LABELS):
        ax.annotate(
            f"n={counts[label]}",
            (k, heights[k]),
            ha="center",
            va="bottom",
            xytext=(0, 2),
            textcoords="offset points",
            fontsize=8,
        )
    ax.axhline(100 * NOMINAL_COVERAGE, color="black", lw=0.8, ls="--", label="P10-P90 nominal")
    ax.set_xticks(x, list(HORIZON_LABELS))
    ax.set_ylim(0, 110)
    ax.set_xlabel("minutes before the actual arrival")
    ax.set_ylabel("windows holding the arrival (%)")
    overall = figures["coverage"]
    share = f"{100 * overall:.0f}%" if isinstance(overall, float) else "-"
    ax.set_title(f"{title} ({share} of {figures['window_samples']} samples)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save(fig, path)


def plot_lead_times(records: Sequence[StopRecord], path: Path) -> Path:
    """Histogram of how long before the van the customers of material delays were told."""
    title = "Late notice lead time"
    leads, untold = lead_times_min(records)
    if not leads:
        detail = f"{untold} material delays, none told before the van" if untold else ""
        return no_data(title, path, detail or "no material delay")
    fig = figure(7.0, 4.5)
    ax = fig.add_subplot()
    # Five-minute bins from 0 past both the longest lead and the 15-minute mark.
    edges = [5.0 * k for k in range(int(max(*leads, NOTICE_LEAD_S / 60.0) // 5) + 2)]
    ax.hist(leads, bins=edges, color="tab:orange", edgecolor="white")
    ax.axvline(NOTICE_LEAD_S / 60.0, color="black", lw=0.8, ls="--", label="15 min")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("minutes from the first late notice to the arrival")
    ax.set_ylabel("material delays")
    ax.set_title(f"{title} ({len(leads)} told, {untold} not told before the van)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save(fig, path)


def plot_first_window(records: Sequence[StopRecord], path: Path) -> Path:
    """Where each scored stop's arrival fell against the first window told."""
    title = "Arrivals against the first window told"
    counts = first_window_places(records)
    scored = sum(counts.values())
    if not scored:
        return no_data(title, path, "no stop both told a window and reached")
    fig = figure(7.0, 4.5)
    ax = fig.add_subplot()
    colours = ["tab:purple", "tab:green", "tab:olive", "tab:red"]
    ax.bar(range(len(PLACES)), [counts[p] for p in PLACES], color=colours)
    ax.set_xticks(range(len(PLACES)), list(PLACES), fontsize=8)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("stops")
    hit = 100.0 * counts[PLACES[1]] / scored
    ax.set_title(f"{title} ({hit:.0f}% of {scored} inside)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save(fig, path)


def write_accuracy_plots(session: Session, plan: PlanRow, out_dir: Path) -> tuple[Path, ...]:
    """The three plots of ``plan``'s stops in ``out_dir``."""
    records = plan_records(session, plan.id)
    return (
        plot_first_window(records, out_dir / "first_window_hits.png"),
        plot_lead_times(records, out_dir / "late_notice_lead_times.png"),
        plot_coverage(records, out_dir / "coverage_by_horizon.png"),
    )
