"""Customers who come back: a city's fixed pool of delivery addresses and the week's days drawn
from it (the ``*-week-*`` scenarios).

The pool is drawn once per city from its own seed with the ordinary stop-sampling rules
(world.sample_sites): each customer keeps its address, its planned service time (the
dispatcher's figure for that address) and a true *service character*, a multiplier of the
dwell drawn once, lognormal with sigma 0.4 (some always quick, some always slow), on top of
the day's bias and the per-stop spread. The pool's first ``regulars`` customers are the
*regulars* (shops, offices: parcels most days), the others *occasional* (one parcel in the
week while the pool lasts, then returning). Each day of a week takes 60-70 % of its stops
from the regulars (a random subset) and the rest from the next occasional customers not yet
served, so every later day's stops are mostly customers seen earlier in the week, and any two
days share many. When no unserved occasional customer is left, the rest of the day are
occasional customers served earlier that week, those served longest ago first (in pool order
among those last served on the same day), so a week can be longer than the pool's occasional
customers allow; the days before that are the same as without it. The schedule depends only
on the pool seed and the week's days (names, order, stop counts), never on a day's own seed,
so a retried day keeps its customers and each day can be made by its own process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.scenarios.cities import City
from bench.scenarios.sumo_net import StopSite
from bench.scenarios.world import World, sample_sites

PLANNED_SERVICE_S = (120, 150, 180, 210, 240, 270, 300)
SERVICE_CHARACTER_SIGMA = 0.4
#: Share of a day's stops that are the pool's regulars.
REPEAT_SHARE = (0.6, 0.7)


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    site: StopSite
    planned_service_s: int
    #: True dwell multiplier of this address (median 1): the same every day.
    service_factor: float


def draw_pool(world: World, city: City) -> list[Customer]:
    """The city's ``pool_size`` customers, the same on every run on the same network."""
    rng = np.random.default_rng([city.pool_seed, 11])
    sites = sample_sites(world, rng, city.pool_size)
    planned = [int(rng.choice(PLANNED_SERVICE_S)) for _ in sites]
    factors = [math.exp(float(rng.normal(0.0, SERVICE_CHARACTER_SIGMA))) for _ in sites]
    return [
        Customer(f"c{k + 1:03d}", site, service_s, round(factor, 3))
        for k, (site, service_s, factor) in enumerate(zip(sites, planned, factors, strict=True))
    ]


def week_schedule(
    pool: Sequence[Customer],
    regulars: int,
    day_names: Sequence[str],
    day_stops: Sequence[int],
    seed: int,
) -> dict[str, list[Customer]]:
    """Each day's customers (in the order they are given to the planner), days in order."""
    rng = np.random.default_rng([seed, 12])
    core, occasional = list(pool[:regulars]), list(pool[regulars:])
    # Occasional customers served so far (position in ``occasional``) -> (last day, position).
    served: dict[int, tuple[int, int]] = {}
    out: dict[str, list[Customer]] = {}
    for day, (name, count) in enumerate(zip(day_names, day_stops, strict=True)):
        repeats = min(len(core), round(count * float(rng.uniform(*REPEAT_SHARE))))
        picked = [core[int(k)] for k in rng.choice(len(core), size=repeats, replace=False)]
        fresh = [k for k in range(len(occasional)) if k not in served][: count - repeats]
        # The pool's occasional customers are used up: those served longest ago come back.
        back = sorted(served, key=served.__getitem__)[: count - repeats - len(fresh)]
        if len(fresh) + len(back) < count - repeats:
            raise ValueError(f"customer pool of {len(pool)} too small for {name}")
        picked += [occasional[k] for k in fresh + back]
        served |= {k: (day, k) for k in fresh + back}
        out[name] = [picked[int(k)] for k in rng.permutation(len(picked))]
    return out
