"""The live window's calibration fitted from the store's own history (docs/adr/0020): how far
the fleet's arrivals fell from the live ETAs it made, by how far ahead each ETA was, handed to
:func:`eta.calibration.fit_window_calibration`.

What is read, for the past ``days`` completed days (each organisation's own calendar, as for
the fleet prior, telematics/fleet_prior.py; today is left out because only its orders reached
so far could be counted, and at long horizons those are the early ones):

- the ETA history (``eta_history``): the ingester keeps a stop's live ETA whenever it moved a
  minute or more and at least every five minutes while its van reports
  (telematics/ingest/recompute.py);
- the arrivals: each order's ``arrived`` events (the geofence's, as store/accuracy.py and
  ``lastmile report`` read them).

Each kept ETA of an order that later arrived is a sample: (predicted horizon = ETA - when it
was made, residual = arrival - ETA), against the order's first arrival after it was made. An
ETA whose next arrival is more than :data:`MATCH_SLACK` from it is another day's attempt (a
failed delivery tried again) and is left out, as are ETAs of orders never reached.

**Weight.** The history's rows are irregular: a van whose ETA jitters by a minute either way
leaves a row on every fix, a steady one a row every five minutes. Counted row by row, a few
jittery stops would dominate the quantiles. So an order gives at most one sample per minute of
the time its ETAs were made (the last ETA kept in that minute: the one that stood). Steady
stretches still count once per five minutes at most, not once a minute: filling the gaps would
invent ETAs at moments none was made (a van that stopped reporting keeps its last row).

**Scope.** Fleet-wide, as the prior is: the service has one set of ETA parameters for every
tenant's vans (``organisation_id`` narrows the read to one organisation's orders).
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from eta.calibration import MIN_PER_BUCKET, WindowCalibration, fit_window_calibration
from eta.coverage import fit_widening
from store.accuracy import ARRIVED, zone_of
from store.schema import EtaRow, EventRow, OrderRow, Organisation
from telematics.fleet_prior import HISTORY_DAYS, MATCH_SLACK

log = logging.getLogger(__name__)

#: At most one sample per order per this much of the time its ETAs were made (see above).
SAMPLE_EVERY_S = 60
#: ETA history rows fetched from the database per round trip (weeks of a fleet's ETAs are
#: millions of rows: streamed, never all in memory as rows).
FETCH_ROWS = 10_000


@dataclass
class WindowHistory:
    """The samples read, with the period they come from: [since, until)."""

    since: datetime
    until: datetime
    #: (predicted horizon s, residual s) per sample.
    samples: list[tuple[float, float]] = field(default_factory=list)
    #: Orders that gave at least one sample.
    orders: int = 0


@dataclass(frozen=True, slots=True)
class FittedWindows:
    #: None: no horizon bucket has enough samples (the cold start), the hand-set spread.
    calibration: WindowCalibration | None
    samples: int
    orders: int
    since: datetime
    until: datetime
    needed: int = MIN_PER_BUCKET

    def describe(self) -> str:
        """One line for the log."""
        cal = self.calibration
        fitted = [] if cal is None else [i for i, q in enumerate(cal.quantiles_s) if q is not None]
        head = (
            f"window calibration from {self.samples} samples of {self.orders} orders since "
            f"{self.since:%Y-%m-%d}"
        )
        if cal is None or not fitted:
            return (
                f"{head}: no horizon bucket has the {self.needed} samples needed, "
                "hand-set spread everywhere (cold start)"
            )
        buckets = ", ".join(f"{cal.edges_s[i] / 60:.0f} min ({cal.counts[i]})" for i in fitted)
        return (
            f"{head}: {len(fitted)} of {len(cal.edges_s)} horizon buckets fitted, from "
            f"{buckets}; the others keep the hand-set spread"
        )


def fit_window_history(
    sessions: sessionmaker[Session],
    now: datetime,
    *,
    days: int = HISTORY_DAYS,
    min_per_bucket: int = MIN_PER_BUCKET,
) -> FittedWindows:
    """The calibration from the store's past ``days`` days before ``now``'s day; logged at
    INFO. Buckets with fewer than ``min_per_bucket`` samples are unfitted; with none fitted the
    calibration is None."""
    with sessions() as session:
        history = read_window_history(session, now, days)
    fit = fit_window_calibration(history.samples, min_per_bucket=min_per_bucket)
    # Widened per bucket so it covers 80 % by the arrival's real horizon (eta/coverage.py).
    fit = fit_widening(fit, history.samples)
    cal = None if all(row is None for row in fit.quantiles_s) else fit
    result = FittedWindows(
        cal, len(history.samples), history.orders, history.since, history.until, min_per_bucket
    )
    log.info("%s", result.describe())
    return result


def read_window_history(
    session: Session, now: datetime, days: int, *, organisation_id: str | None = None
) -> WindowHistory:
    """The (predicted horizon, residual) samples of the past ``days`` completed days before
    ``now`` (see the module docstring); given an ``organisation_id``, its orders alone."""
    orgs = select(Organisation.id, Organisation.timezone)
    if organisation_id is not None:
        orgs = orgs.where(Organisation.id == organisation_id)
    cutoffs = {org_id: _day_start(now, zone) for org_id, zone in session.execute(orgs)}
    until = max(cutoffs.values(), default=now)
    history = WindowHistory(min(cutoffs.values(), default=now) - timedelta(days=days), until)
    if not cutoffs:
        return history
    arrivals = _arrivals(session, history.since, until, organisation_id)
    query = (
        select(EtaRow.order_id, OrderRow.organisation_id, EtaRow.computed_at, EtaRow.eta)
        .join(OrderRow, OrderRow.id == EtaRow.order_id)
        .where(EtaRow.computed_at >= history.since, EtaRow.computed_at < until)
        .order_by(EtaRow.order_id, EtaRow.computed_at, EtaRow.id)
        .execution_options(yield_per=FETCH_ROWS)
    )
    if organisation_id is not None:
        query = query.where(OrderRow.organisation_id == organisation_id)
    #: The newest sample's (order, minute): a later one in the same minute replaces it.
    last: tuple[str, int] | None = None
    counted: str | None = None
    for order_row, org_id, computed_at, eta in session.execute(query):
        cutoff = cutoffs.get(org_id)
        times = arrivals.get(order_row)
        if cutoff is None or times is None or computed_at >= cutoff:
            continue
        k = bisect_right(times, computed_at)
        if k == len(times) or times[k] >= cutoff:
            continue  # not reached after this ETA (in the days read)
        residual_s = (times[k] - eta).total_seconds()
        if abs(residual_s) > MATCH_SLACK.total_seconds():
            continue  # reached on another attempt: not this ETA's outcome
        sample = ((eta - computed_at).total_seconds(), residual_s)
        key = (order_row, int(computed_at.timestamp() // SAMPLE_EVERY_S))
        if key == last:
            history.samples[-1] = sample
            continue
        history.samples.append(sample)
        last = key
        if order_row != counted:
            history.orders += 1
            counted = order_row
    return history


def _arrivals(
    session: Session, since: datetime, until: datetime, organisation_id: str | None
) -> dict[str, list[datetime]]:
    """Order row id -> its arrivals in [since, until), in time order."""
    query = select(EventRow.order_id, EventRow.at).where(
        EventRow.kind == ARRIVED,
        EventRow.order_id.is_not(None),
        EventRow.at >= since,
        EventRow.at < until,
    )
    if organisation_id is not None:
        query = query.where(EventRow.organisation_id == organisation_id)
    arrivals: dict[str, list[datetime]] = defaultdict(list)
    for order_row, at in session.execute(query):
        if order_row is not None:
            arrivals[order_row].append(at)
    for times in arrivals.values():
        times.sort()
    return arrivals


def _day_start(now: datetime, zone: str | None) -> datetime:
    """Midnight at the start of ``now``'s day in ``zone`` (UTC if unknown)."""
    tz = zone_of(zone)
    return datetime.combine(now.astimezone(tz).date(), time(0), tzinfo=tz)
