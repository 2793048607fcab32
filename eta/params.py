"""Every tunable of the ETA core, with its effect. Defaults were calibrated on the SUMO
scenarios in ``bench/scenarios/`` (``python -m bench.eta_accuracy``; figures in BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from eta.calibration import WindowCalibration


@dataclass(frozen=True, slots=True)
class FleetPrior:
    """What the fleet's own history says about its plans (see :mod:`eta.history`): each
    leg takes ``leg_overhead_s + travel_factor x planned`` (pulling out and parking cost
    time however short the drive; the road speeds may be off either way), each stop
    ``service_factor x planned``. Neutral until history is fitted."""

    leg_overhead_s: float = 0.0
    travel_factor: float = 1.0
    service_factor: float = 1.0
    #: Time of day: 24 multipliers of the drive time by the hour it starts, in ``timezone``
    #: (rush hours above 1, evenings below); empty: no profile.
    hour_factors: tuple[float, ...] = ()
    timezone: str = "UTC"

    def hour_factor(self, at_s: float) -> float:
        if not self.hour_factors:
            return 1.0
        return self.hour_factors[datetime.fromtimestamp(at_s, ZoneInfo(self.timezone)).hour]


@dataclass(frozen=True, slots=True)
class EtaParams:
    #: Starting point before the day's own evidence; the learned pace scales on top of it.
    prior: FleetPrior = field(default_factory=FleetPrior)

    # --- Pace: how fast this vehicle drives compared with the planned travel times --------
    #: Planned driving seconds the prior pace of 1.0 counts for. Higher: slower to believe
    #: the day's evidence; lower: one slow leg swings every ETA.
    prior_travel_weight_s: float = 2400.0
    #: Each completed leg's evidence is multiplied by this per newer leg, so the pace follows
    #: congestion as it changes through the day (1.0: all legs count alike).
    leg_memory: float = 0.8
    #: Legs planned shorter than this are ignored for pace: on them GPS and the geofence
    #: dominate the measured time.
    min_leg_evidence_s: float = 60.0
    #: A single leg's ratio (actual / planned) is clamped to this range before averaging, so a
    #: lunch stop in the middle of a leg cannot make the rest of the day look three times slower.
    leg_ratio_bounds: tuple[float, float] = (0.5, 3.0)
    #: How much the leg in progress counts, relative to a completed one: its pace so far is
    #: the freshest evidence (a jam now) but also the noisiest.
    current_leg_weight: float = 1.0

    # --- Service: how long this vehicle's stops take compared with the plan ----------------
    #: Completed stops the prior service factor of 1.0 counts for.
    prior_service_weight: float = 8.0
    service_ratio_bounds: tuple[float, float] = (0.3, 4.0)
    #: A stop that has already overrun its expected service is still given this much more.
    min_remaining_service_s: float = 30.0

    #: Vehicles wait at a stop for its window to open (as the planner assumes).
    wait_for_window: bool = True

    # --- Window: P10-P90 around the ETA, from the uncertainty of what lies ahead ------------
    #: Constant part of the spread before / after the ETA (geofence and GPS timing).
    spread_base_s: float = 100.0
    #: Spread per second of driving still ahead, before / after the ETA. Late is likelier than
    #: early (queues, parking), so the window leans late.
    spread_travel_early: float = 0.10
    spread_travel_late: float = 0.24
    #: Spread per second of service still ahead, before / after the ETA (stops vary more than
    #: drives: a customer who does not answer, a parcel that is hard to find).
    spread_service_early: float = 0.20
    spread_service_late: float = 0.40
    #: The fleet's past residuals by predicted horizon (:mod:`eta.calibration`): where fitted,
    #: the window is their P10-P90 instead of the hand-set spread above. None: a cold start,
    #: the hand-set spread everywhere.
    calibration: WindowCalibration | None = None
    #: The first window told to a customer is at most this wide (parcel carriers promise an
    #: hour in the morning); None: as wide as the forecast says. Later windows (delay notices)
    #: are not capped: they report what the forecast now is.
    first_window_cap_s: float | None = 3600.0
