"""The kept scenarios: each one's name, seed, traffic, vans and day (see README.md here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time

#: A week day's background traffic follows the hour of the day (traffic.py).
PROFILE = "hourly profile"


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    name: str
    seed: int
    congestion: str
    vans: int
    day: date
    shift_start: time
    #: Inject disruptions (hold-up, road closure, long dwells, slowdown); see incidents.py.
    incidents: bool = False
    #: The city (cities.py): its extract, depot, time zone and customer pool.
    city: str = "monaco"
    #: A week day: this many stops drawn from the city's customer pool (customers.py).
    #: None: 10-13 stops per van sampled afresh, as on the first eleven days.
    stops: int | None = None

    @property
    def week(self) -> bool:
        return self.stops is not None


def _week(
    city: str, seed: int, days: tuple[tuple[date, time, int, int, bool], ...]
) -> tuple[ScenarioSpec, ...]:
    return tuple(
        ScenarioSpec(
            f"{city}-week-d{k + 1}",
            seed + k,
            PROFILE,
            vans,
            day,
            start,
            incidents,
            city=city,
            stops=stops,
        )
        for k, (day, start, vans, stops, incidents) in enumerate(days)
    )


#: The kept set: light to heavy traffic, 2-4 vans, weekdays in March 2026 around 08:00.
SCENARIOS: tuple[ScenarioSpec, ...] = (
    ScenarioSpec("monaco-light-1", 101, "light", 2, date(2026, 3, 10), time(8, 0)),
    ScenarioSpec("monaco-light-2", 102, "light", 3, date(2026, 3, 11), time(7, 45)),
    ScenarioSpec("monaco-moderate-1", 201, "moderate", 2, date(2026, 3, 12), time(8, 0)),
    ScenarioSpec("monaco-moderate-2", 202, "moderate", 3, date(2026, 3, 13), time(8, 15)),
    ScenarioSpec("monaco-moderate-3", 203, "moderate", 4, date(2026, 3, 16), time(8, 0)),
    ScenarioSpec("monaco-heavy-1", 301, "heavy", 2, date(2026, 3, 17), time(8, 0)),
    ScenarioSpec("monaco-heavy-2", 302, "heavy", 3, date(2026, 3, 18), time(7, 30)),
    ScenarioSpec("monaco-incident-1", 401, "moderate", 2, date(2026, 3, 19), time(8, 0), True),
    ScenarioSpec("monaco-incident-2", 402, "moderate", 3, date(2026, 3, 20), time(8, 0), True),
    ScenarioSpec("monaco-incident-3", 403, "moderate", 2, date(2026, 3, 23), time(7, 45), True),
    ScenarioSpec("monaco-incident-4", 404, "moderate", 3, date(2026, 3, 24), time(8, 15), True),
)

#: Consecutive weekdays on one customer pool per city, shifts from 07:00 to 13:00 (the train
#: days' hours cover the test days'), traffic by the hour; (day, shift start, vans, stops,
#: incidents). Stop counts let the planner's capacity (fair share + 1) give every van 10-15.
WEEKS: tuple[ScenarioSpec, ...] = _week(
    "monaco",
    501,
    (
        (date(2026, 3, 30), time(7, 0), 3, 38, False),
        (date(2026, 3, 31), time(9, 30), 2, 28, False),
        (date(2026, 4, 1), time(13, 0), 3, 36, False),
        (date(2026, 4, 2), time(11, 0), 2, 28, True),
        (date(2026, 4, 3), time(8, 0), 3, 36, False),
        (date(2026, 4, 6), time(9, 0), 3, 36, True),
    ),
) + _week(
    "columbus",
    601,
    (
        (date(2026, 4, 13), time(7, 0), 3, 38, False),
        (date(2026, 4, 14), time(11, 0), 2, 28, False),
        (date(2026, 4, 15), time(8, 0), 3, 36, False),
        (date(2026, 4, 16), time(12, 0), 2, 26, False),
        (date(2026, 4, 17), time(9, 30), 3, 36, True),
    ),
)

ALL: tuple[ScenarioSpec, ...] = SCENARIOS + WEEKS
