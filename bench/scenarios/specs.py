"""The kept scenarios: each one's name, seed, traffic, vans and day (see README.md here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time


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
