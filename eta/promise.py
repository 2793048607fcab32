"""The promise as the customer lives it: was the first window told true, and when it broke,
was the customer told early, and only when it was true? (docs/accuracy.md)

Pure: each stop's record (the first window told, the delay notices sent, the actual arrival)
and the live windows sampled along the day in; the figures out. The same functions score the
replay of a simulated day (``lastmile eval-eta``, ``bench.eta_accuracy``), the live service's
days (``GET /v1/reports/accuracy``) and the demo, so the three cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

#: Horizon buckets (minutes until the actual arrival; the last is open-ended).
HORIZON_BUCKETS_MIN: tuple[tuple[int, int | None], ...] = ((0, 10), (10, 30), (30, 60), (60, None))
#: A delay is *material* when the van arrives this long after the end of the first window told:
#: within it a customer shrugs; beyond it, they call.
MATERIAL_DELAY_S = 600.0
#: A delay notice is useful when it reaches the customer this long before the van: time to
#: rearrange a morning, ask a neighbour, leave a note.
NOTICE_LEAD_S = 900.0


@dataclass(frozen=True, slots=True)
class DelayNotice:
    """A "you will be later than we said" message: when it was sent and the end of the window
    it said was broken (the window the customer held until then), epoch seconds."""

    at_s: float
    broken_latest_s: float


@dataclass(frozen=True, slots=True)
class ToldWindow:
    """A window a message gave the customer: when it was sent and its ends (epoch seconds)."""

    at_s: float
    earliest_s: float
    latest_s: float


@dataclass(frozen=True, slots=True)
class StopPromise:
    """One stop's day as its customer saw it (epoch seconds)."""

    stop_id: str
    #: The first window told (None: none was told, the stop is not scored for it).
    first_earliest_s: float | None
    first_latest_s: float | None
    #: When the van really arrived (None: it never did; the stop is not scored).
    actual_s: float | None
    #: Delay notices (:func:`told_stop`), in the order sent.
    late_notices: tuple[DelayNotice, ...] = ()
    #: Messages about the ETA after the first window (late, early or moved), all kinds.
    messages: int = 0


@dataclass(frozen=True, slots=True)
class WindowSample:
    """A live P10-P90 window as shown at ``at_s``, beside the arrival it was about."""

    at_s: float
    earliest_s: float
    latest_s: float
    actual_s: float

    @property
    def horizon_s(self) -> float:
        return self.actual_s - self.at_s

    @property
    def inside(self) -> bool:
        return self.earliest_s <= self.actual_s <= self.latest_s


def told_stop(
    stop_id: str,
    first: ToldWindow | None,
    later: Sequence[ToldWindow],
    actual_s: float | None,
    messages: int | None = None,
) -> StopPromise:
    """A stop's record from the windows its customer was sent: the first, then those of the
    ETA messages after it (``later``, in the order sent; ``messages`` counts those, and any
    that held no window: ``len(later)`` by default).

    A *delay notice* is a message whose window ends later than the window the customer held
    until then (the last one sent): whatever its kind ("window broken" or "ETA changed"), it
    tells them they will wait longer than they were told. It said the held window was broken:
    it is true when the van came after that window's end.
    """
    notices: list[DelayNotice] = []
    # Without a first window there was no promise to break.
    held_latest_s = first.latest_s if first is not None else math.inf
    for told in sorted(later, key=lambda w: w.at_s):
        if told.latest_s > held_latest_s:
            notices.append(DelayNotice(told.at_s, held_latest_s))
        if first is not None:
            held_latest_s = told.latest_s
    return StopPromise(
        stop_id,
        first.earliest_s if first is not None else None,
        first.latest_s if first is not None else None,
        actual_s,
        tuple(notices),
        len(later) if messages is None else messages,
    )


def horizon_label(lo: int, hi: int | None) -> str:
    return f"{lo}-{hi}" if hi is not None else f"{lo}+"


HORIZON_LABELS: tuple[str, ...] = tuple(horizon_label(lo, hi) for lo, hi in HORIZON_BUCKETS_MIN)


def horizon_bucket(horizon_s: float) -> str | None:
    """The bucket of a horizon (seconds until the arrival); None before 0."""
    minutes = horizon_s / 60.0
    for lo, hi in HORIZON_BUCKETS_MIN:
        if minutes >= lo and (hi is None or minutes < hi):
            return horizon_label(lo, hi)
    return None


def _share(hits: int, total: int) -> float | None:
    return round(hits / total, 3) if total else None


def _median_min(values_s: Sequence[float]) -> float | None:
    return round(median(values_s) / 60.0, 1) if values_s else None


def is_material_delay(stop: StopPromise, material_delay_s: float = MATERIAL_DELAY_S) -> bool:
    return (
        stop.actual_s is not None
        and stop.first_latest_s is not None
        and stop.actual_s > stop.first_latest_s + material_delay_s
    )


def notice_lead_s(stop: StopPromise) -> float | None:
    """How long before the van the customer got the first delay notice (None: no delay notice
    before it arrived)."""
    if stop.actual_s is None:
        return None
    before = [n.at_s for n in stop.late_notices if n.at_s < stop.actual_s]
    return stop.actual_s - min(before) if before else None


def coverage_figures(samples: Sequence[WindowSample]) -> dict[str, object]:
    """``coverage`` (share of sampled arrivals inside the live window) overall and by horizon
    bucket, with the windows' median width (minutes) beside it: a wide enough window covers
    anything."""
    by: dict[str, list[WindowSample]] = {label: [] for label in HORIZON_LABELS}
    for sample in samples:
        bucket = horizon_bucket(sample.horizon_s)
        if bucket is not None:
            by[bucket].append(sample)
    scored = [s for group in by.values() for s in group]
    return {
        "coverage": _share(sum(s.inside for s in scored), len(scored)),
        "coverage_by_horizon": {
            label: _share(sum(s.inside for s in group), len(group)) for label, group in by.items()
        },
        "window_width_min_by_horizon": {
            label: _median_min([s.latest_s - s.earliest_s for s in group])
            for label, group in by.items()
        },
        "window_samples": len(scored),
    }


def promise_figures(
    stops: Sequence[StopPromise],
    samples: Sequence[WindowSample] = (),
    *,
    material_delay_s: float = MATERIAL_DELAY_S,
    notice_lead_s_min: float = NOTICE_LEAD_S,
) -> dict[str, object]:
    """The promise's figures (keys as in docs/accuracy.md). Stops that never arrived, or were
    never told a window, are left out of the shares and counted in ``stops_unscored``.

    - ``first_window_hit``: arrivals inside the first window told; ``first_window_width_min``:
      median width of those windows.
    - ``material_delays``: arrivals more than ``material_delay_s`` after the first window's end;
      ``material_delays_told_15min_ahead``: those whose customer got a delay notice
      (:func:`told_stop`) at least ``notice_lead_s_min`` before the van;
      ``material_delay_recall``: their share; ``lead_time_median_min``: median lead of the
      first delay notice over the material delays told before arrival (however short).
    - ``late_notice_precision``: delay notices after which the van really arrived after the
      end of the window the notice said was broken (notices about stops that never arrived
      are left out).
    - ``messages_per_stop``: mean messages after the first window per scored stop.
    - ``coverage``, ``coverage_by_horizon``: see :func:`coverage_figures`.
    """
    scored = [s for s in stops if s.actual_s is not None and s.first_latest_s is not None]
    hits = sum(
        1
        for s in scored
        if s.first_earliest_s is not None
        and s.actual_s is not None
        and s.first_latest_s is not None
        and s.first_earliest_s <= s.actual_s <= s.first_latest_s
    )
    widths = [
        s.first_latest_s - s.first_earliest_s
        for s in scored
        if s.first_latest_s is not None and s.first_earliest_s is not None
    ]
    material = [s for s in scored if is_material_delay(s, material_delay_s)]
    leads = [lead for s in material if (lead := notice_lead_s(s)) is not None]
    told_ahead = sum(1 for lead in leads if lead >= notice_lead_s_min)
    notices = [
        (n, s.actual_s)
        for s in stops
        if s.actual_s is not None
        for n in s.late_notices
        if n.at_s < s.actual_s
    ]
    true_notices = sum(
        1 for n, actual in notices if actual is not None and actual > n.broken_latest_s
    )
    return {
        "first_window_hit": _share(hits, len(scored)),
        "first_window_width_min": _median_min(widths),
        "material_delays": len(material),
        "material_delays_told_15min_ahead": told_ahead,
        "material_delay_recall": _share(told_ahead, len(material)),
        "lead_time_median_min": _median_min(leads),
        "late_notices": len(notices),
        "late_notice_precision": _share(true_notices, len(notices)),
        "messages_per_stop": round(sum(s.messages for s in scored) / len(scored), 3)
        if scored
        else None,
        "stops_scored": len(scored),
        "stops_unscored": len(stops) - len(scored),
        **coverage_figures(samples),
    }
