"""The promise's accuracy over the organisation's last days (docs/accuracy.md), computed by
:mod:`store.accuracy` and :mod:`eta.promise`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import Dispatcher, Now, SessionDep
from api.schemas import ErrorBody
from store.accuracy import MAX_DAYS, accuracy_report

router = APIRouter(
    tags=["reports"],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}},
)

SHARE = "Share 0-1 (null: nothing to score)."
BY_HORIZON = (
    "By minutes before the actual arrival: keys 0-10, 10-30, 30-60 and 60+ (null: no sample)."
)


class PromiseFiguresOut(BaseModel):
    """The figures of docs/accuracy.md over a set of stops."""

    first_window_hit: float | None = Field(
        description="Stops whose actual arrival fell inside the first window told. " + SHARE
    )
    first_window_width_min: float | None = Field(
        description="Median width of those first windows, minutes."
    )
    material_delays: int = Field(
        description="Stops arriving more than 10 minutes after the end of the first window."
    )
    material_delays_told_15min_ahead: int = Field(
        description="Of those, the stops whose customer got a late notice at least 15 minutes "
        "before the van."
    )
    material_delay_recall: float | None = Field(
        description="material_delays_told_15min_ahead / material_delays. " + SHARE
    )
    lead_time_median_min: float | None = Field(
        description="Median time from the first late notice to the arrival over the material "
        "delays told before the van came, minutes."
    )
    late_notices: int = Field(description="Late notices sent before the van arrived.")
    late_notice_precision: float | None = Field(
        description="Late notices after which the van really arrived after the end of the "
        "window the notice said was broken. " + SHARE
    )
    messages_per_stop: float | None = Field(
        description="Mean ETA-changed and window-broken messages after the first window per "
        "scored stop."
    )
    stops_scored: int = Field(description="Stops told a window that the van reached.")
    stops_unscored: int = Field(
        description="Stops not reached (yet) or whose customer was sent no window."
    )
    coverage: float | None = Field(
        description="Live windows (P10-P90, sampled once a minute from the ETA history until "
        "the arrival) that held the actual arrival. " + SHARE
    )
    coverage_by_horizon: dict[str, float | None] = Field(description="Coverage. " + BY_HORIZON)
    window_width_min_by_horizon: dict[str, float | None] = Field(
        description="Median width of the sampled live windows, minutes. " + BY_HORIZON
    )
    window_samples: int = Field(description="Live window samples scored.")


class AccuracyDayOut(PromiseFiguresOut):
    day: str = Field(description="The day in the organisation's time zone (YYYY-MM-DD).")


class AccuracyRouteOut(PromiseFiguresOut):
    plan_id: str = Field(description="The dispatched plan the route belongs to.")
    vehicle_id: str = Field(description="Your id for the route's vehicle.")
    day: str = Field(description="The day of the route's stops (its first, if several).")


class AccuracyReportOut(BaseModel):
    days: int = Field(description="Days covered, today included.")
    timezone: str = Field(description="The organisation's time zone: where days begin.")
    overall: PromiseFiguresOut
    by_day: list[AccuracyDayOut] = Field(description="Every day, oldest first, today last.")
    by_route: list[AccuracyRouteOut] = Field(
        description="Each route that had stops in the period: the newest dispatch of a day "
        "holding a stop (a replan, an insertion) is its route."
    )


@router.get(
    "/v1/reports/accuracy",
    summary="How well the promise held: first windows, late notices, live window coverage; "
    "over the last days, per day and per route.",
    responses={422: {"model": ErrorBody}},
)
def accuracy(
    caller: Dispatcher,
    session: SessionDep,
    now: Now,
    days: Annotated[
        int, Query(ge=1, le=MAX_DAYS, description="Days back, today included (1-90).")
    ] = 7,
) -> AccuracyReportOut:
    """A stop is an order on a dispatched plan's route on the day of its planned arrival.
    The first window told is the first window the customer was *sent* (normally "plan
    confirmed", at dispatch): a customer sent none is not scored. Late notices are the
    window-broken messages sent whose window ends after the one the customer held; the actual
    arrival is the first "arrived" event; coverage reads the ETA history (kept when the ETA
    moves a minute, at least every five minutes) once a minute until the arrival."""
    return AccuracyReportOut.model_validate(
        accuracy_report(session, caller.organisation_id, now, days)
    )
