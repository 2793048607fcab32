"""Degrading clean simulator GPS into what real trackers send: position error, sparser fixes,
dropped fixes and gaps (tunnels, dead zones)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from domain.geo import EARTH_RADIUS_M
from evaluation.scenario import Gps


@dataclass(frozen=True, slots=True)
class NoiseProfile:
    name: str
    #: Standard deviation of the position error per axis; the mean error is about 1.25x this.
    sigma_m: float
    #: Seconds between fixes the device sends.
    interval_s: float
    #: Share of fixes lost at random.
    drop_share: float
    #: Gaps with no fix at all (seconds, min and max), and how often one starts.
    gap_s: tuple[float, float] = (0.0, 0.0)
    gaps_per_hour: float = 0.0


PROFILES = {
    "none": NoiseProfile("none", 0.0, 1.0, 0.0),
    # A phone or tracker in a van in a city: ~10 m error, a fix every 5 s, 2% lost.
    "typical": NoiseProfile("typical", 8.0, 5.0, 0.02),
    # Urban canyons and tunnels: ~25 m error, a fix every 15 s, 60-120 s gaps.
    "harsh": NoiseProfile("harsh", 20.0, 15.0, 0.05, (60.0, 120.0), 4.0),
}


def degrade(gps: Gps, profile: NoiseProfile, rng: np.random.Generator) -> Gps:
    t = gps.timestamp
    if len(t) == 0:
        return gps
    keep = np.zeros(len(t), dtype=bool)
    next_t = t[0]
    for i, ti in enumerate(t):  # every interval_s, on the device's own clock
        if ti >= next_t:
            keep[i] = True
            next_t = ti + profile.interval_s
    keep &= rng.random(len(t)) >= profile.drop_share
    if profile.gaps_per_hour > 0:
        hours = (t[-1] - t[0]) / 3600.0
        for _ in range(rng.poisson(profile.gaps_per_hour * hours)):
            start = rng.uniform(t[0], t[-1])
            keep &= ~((t >= start) & (t < start + rng.uniform(*profile.gap_s)))
    keep[0] = True  # the device is seen once at the start
    lat, lon = gps.lat[keep], gps.lon[keep]
    if profile.sigma_m > 0:
        k = 180.0 / math.pi / EARTH_RADIUS_M
        lat = lat + rng.normal(0.0, profile.sigma_m, len(lat)) * k
        lon = lon + rng.normal(0.0, profile.sigma_m, len(lon)) * k / np.cos(np.radians(lat))
    return Gps(t[keep], lat, lon, gps.speed_mps[keep], gps.heading_deg[keep])
