"""The cities the scenarios are simulated in: which extract, where the depot is, where stops
may be, the time zone, how busy background traffic gets, and the customer pool's size."""

from __future__ import annotations

from dataclasses import dataclass

from domain.geo import LatLon


@dataclass(frozen=True, slots=True)
class City:
    name: str
    #: The extract under ``../shared/data/osm/`` (what plan.json's ``osm`` names).
    osm_file: str
    timezone: str
    #: The depot is the stop-able edge nearest this point.
    depot_near: LatLon
    #: SUMO's network is cut to this box (min lon, min lat, max lon, max lat); None: the whole
    #: extract. Our planner always plans on the whole extract.
    net_boundary: tuple[float, float, float, float] | None = None
    #: Stops only within this radius of ``district_centre``; None: anywhere on the network.
    district_centre: LatLon | None = None
    district_radius_m: float = 0.0
    #: Background vehicles per hour at the traffic profile's peak (traffic.py).
    peak_per_hour: int = 4000
    #: The customer pool (customers.py): its own seed, how many addresses it holds and how
    #: many of them are regulars (the first ones drawn).
    pool_seed: int = 0
    pool_size: int = 0
    regulars: int = 26


#: Monaco and its French neighbours: the whole extract, the depot in Fontvieille's
#: light-industrial quarter. 4,000/h is "heavy", the busiest rate that stayed clear of gridlock.
MONACO = City(
    name="monaco",
    osm_file="monaco.osm.pbf",
    timezone="Europe/Monaco",
    depot_near=LatLon(43.7290, 7.4158),
    peak_per_hour=4000,
    pool_seed=5000,
    pool_size=90,
)

#: Columbus, Ohio: SUMO simulates an 8 x 8 km box around the Short North / Italian Village /
#: Victorian Village grid north of downtown; stops lie within 2 km of its middle (a district
#: 4 km across), the depot in Italian Village. 11,500/h at the peak is Monaco's peak per
#: kilometre of car lane (8.6 vehicles/h/lane-km: 1,333 lane-km here, 468 in Monaco).
COLUMBUS = City(
    name="columbus",
    osm_file="columbus.osm.pbf",
    timezone="America/New_York",
    depot_near=LatLon(39.9840, -82.9990),
    net_boundary=(-83.052, 39.947, -82.956, 40.019),
    district_centre=LatLon(39.9830, -83.0040),
    district_radius_m=2000.0,
    peak_per_hour=11500,
    pool_seed=6000,
    pool_size=80,
)

CITIES: dict[str, City] = {c.name: c for c in (MONACO, COLUMBUS)}
