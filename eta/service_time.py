"""Service time at the door, learned per customer (or address) from observed dwell.

A dispatcher's service time is a guess made once for every stop; the same customer on the
fourth floor without a lift takes three times as long on every visit. The fit keeps two
levels (docs/adr/0021-learned-service-times.md):

- the fleet's factor: total observed over total planned service (each observation's ratio
  clipped to ``RATIO_BOUNDS`` first, as :mod:`eta.history` does), what an unknown address
  gets;
- per key (customer or address), its mean log deviation from the fleet's factor, shrunk
  towards none by its number of visits (empirical Bayes): ``exp(n * mean / (n + w))``. One
  odd visit moves a customer a third of the way; a customer slow on every visit is believed
  after a few.

Pure: observations in, a frozen :class:`ServiceTimes` out; the callers read the history
(``telematics/service_history.py`` from the store, ``evaluation/learning.py`` from scenario
days).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from domain.errors import Problem, ValidationError

#: Each observed / planned ratio is clipped to this first: a stop the driver forgot to close
#: (hours) or closed from the van (seconds) says nothing about the customer.
RATIO_BOUNDS = (0.3, 4.0)
#: Visits the fleet's factor counts for, against a key's own. Empirical Bayes puts it at
#: sigma^2 / tau^2: the spread of one visit's log ratio around the customer's own level over
#: the spread of customers' levels around the fleet's. The week scenarios (bench/scenarios/
#: customers.py) have tau 0.4 and sigma ~0.4 (0.3 lognormal plus overruns): about 1. Real
#: doors have heavier tails (nobody home, a parcel hard to find), and a customer wrongly
#: learned slow costs the plan slack every visit, so 2: one visit moves a key a third of the
#: way to what it showed, three visits 60%, ten visits 83%.
PRIOR_WEIGHT = 2.0


def _finite(value: object, name: str, *, low: float | None = None) -> list[Problem]:
    """What is wrong with ``value`` as a finite number >= ``low`` (nothing: [])."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return [Problem(name, f"expected a finite number, got {value!r}")]
    if low is not None and value < low:
        return [Problem(name, f"must be >= {low:g}, got {value!r}")]
    return []


def _positive(value: object, name: str, problems: list[Problem]) -> float:
    """``value`` as a finite number above 0, or 1.0 with the problem noted."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        problems.append(Problem(name, f"expected a finite number above 0, got {value!r}"))
        return 1.0
    return float(value)


def _count(value: object, name: str, problems: list[Problem], *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        problems.append(Problem(name, f"expected a whole number >= {low}, got {value!r}"))
        return low
    return value


def address_key(customer_ref: str, lat: float, lon: float) -> str:
    """Who a stop is for, across days: the customer's reference when given, else the address
    rounded to 1e-4 degrees (about 11 m: one building, geocoded the same way), so a returning
    customer is recognised whatever the order's id."""
    problems = [
        *_finite(lat, "lat"),
        *_finite(lon, "lon"),
        *([] if isinstance(customer_ref, str) else [Problem("customer_ref", "expected text")]),
    ]
    if not problems and not -90.0 <= lat <= 90.0:
        problems.append(Problem("lat", f"must be within [-90, 90], got {lat!r}"))
    if not problems and not -180.0 <= lon <= 180.0:
        problems.append(Problem("lon", f"must be within [-180, 180], got {lon!r}"))
    if problems:
        raise ValidationError(problems)
    ref = customer_ref.strip()
    if ref:
        return f"customer:{ref}"
    # + 0.0: -0.0 and 0.0 are one key (as telematics.stopping_points.address_key).
    return f"ll:{round(lat, 4) + 0.0:.4f},{round(lon, 4) + 0.0:.4f}"


@dataclass(frozen=True, slots=True)
class ServiceObservation:
    """One completed stop: the service its plan's dispatcher gave it (``planned_s``, the
    prior) and the dwell observed at the door (``actual_s``: departure - arrival)."""

    key: str
    planned_s: float
    actual_s: float

    def __post_init__(self) -> None:
        problems = [
            *([] if isinstance(self.key, str) and self.key else [Problem("key", "empty")]),
            *_finite(self.planned_s, "planned_s", low=0.0),
            *_finite(self.actual_s, "actual_s", low=0.0),
        ]
        if problems:
            raise ValidationError(problems)


@dataclass(frozen=True, slots=True)
class ServiceTimes:
    """Learned service times: ``expected_s(key, planned_s)`` is the dispatcher's figure times
    the fleet's factor times the key's own (1 for a key never seen). Read-only mappings."""

    fleet_factor: float = 1.0
    #: Key -> its shrunk factor relative to the fleet's.
    factors: Mapping[str, float] = field(default_factory=dict)
    #: Key -> visits behind its factor.
    visits: Mapping[str, int] = field(default_factory=dict)
    #: Stops (with a planned service above zero) the fit read.
    observations: int = 0
    prior_weight: float = PRIOR_WEIGHT

    def knows(self, key: str) -> bool:
        """Whether ``key`` was seen (an unknown key gets the fleet's factor alone)."""
        return key in self.factors

    def address_factor(self, key: str) -> float:
        """The key's own factor on top of the fleet's (1.0 when never seen)."""
        return self.factors.get(key, 1.0)

    def expected_s(self, key: str, planned_s: float) -> float:
        """The service to plan for a stop the dispatcher gave ``planned_s``."""
        problems = _finite(planned_s, "planned_s", low=0.0)
        if problems:
            raise ValidationError(problems)
        return planned_s * self.fleet_factor * self.address_factor(key)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; :meth:`from_dict` reads it back."""
        return {
            "fleet_factor": self.fleet_factor,
            "prior_weight": self.prior_weight,
            "observations": self.observations,
            "keys": {
                key: {"factor": factor, "visits": self.visits.get(key, 0)}
                for key, factor in sorted(self.factors.items())
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServiceTimes:
        """The inverse of :meth:`to_dict`; raises ValidationError naming each bad field."""
        if not isinstance(data, Mapping):
            raise ValidationError([Problem("service_times", "expected an object")])
        problems: list[Problem] = []
        fleet = _positive(data.get("fleet_factor"), "fleet_factor", problems)
        weight = data.get("prior_weight", PRIOR_WEIGHT)
        problems += _finite(weight, "prior_weight", low=0.0)
        count = _count(data.get("observations", 0), "observations", problems, low=0)
        keys = data.get("keys", {})
        if not isinstance(keys, Mapping):
            problems.append(Problem("keys", "expected an object of key -> {factor, visits}"))
            keys = {}
        factors: dict[str, float] = {}
        visits: dict[str, int] = {}
        for key, entry in keys.items():
            where = f"keys[{key!r}]"
            if not isinstance(entry, Mapping):
                problems.append(Problem(where, "expected {factor, visits}"))
                continue
            factors[str(key)] = _positive(entry.get("factor"), f"{where}.factor", problems)
            visits[str(key)] = _count(entry.get("visits"), f"{where}.visits", problems, low=1)
        if problems:
            raise ValidationError(problems)
        return cls(fleet, factors, visits, count, float(weight))


def fit_service_times(
    observations: Iterable[ServiceObservation], *, prior_weight: float = PRIOR_WEIGHT
) -> ServiceTimes:
    """The fleet's factor and each key's shrunk factor (module docstring). Observations with
    no planned service are left out: there is nothing to scale. None at all: neutral."""
    problems = _finite(prior_weight, "prior_weight", low=0.0)
    if problems:
        raise ValidationError(problems)
    low, high = RATIO_BOUNDS
    kept = [o for o in observations if o.planned_s > 0]
    if not kept:
        return ServiceTimes(prior_weight=prior_weight)
    ratios = [min(max(o.actual_s / o.planned_s, low), high) for o in kept]
    planned_total = sum(o.planned_s for o in kept)
    # A weighted mean of clipped ratios lies within the clip, but its rounding may not.
    fleet = min(
        max(sum(r * o.planned_s for r, o in zip(ratios, kept, strict=True)) / planned_total, low),
        high,
    )
    log_fleet = math.log(fleet)
    deviations: dict[str, list[float]] = defaultdict(list)
    for ratio, o in zip(ratios, kept, strict=True):
        deviations[o.key].append(math.log(ratio) - log_fleet)
    factors = {
        key: math.exp(sum(devs) / (len(devs) + prior_weight)) for key, devs in deviations.items()
    }
    visits = {key: len(devs) for key, devs in deviations.items()}
    return ServiceTimes(fleet, factors, visits, len(kept), prior_weight)
