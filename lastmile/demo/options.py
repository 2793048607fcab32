"""What the demo is asked to run: the day's size and speed, where it writes, and which of
its parts are on (``lastmile demo``'s options)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class DemoOptions:
    osm: Path | None = None
    orders: int = 120
    vehicles: int = 6
    speed: float = 30.0
    seed: int = 1
    headless: bool = False
    duration_s: float | None = None
    time_limit_s: float = 5.0
    port: int = 8000
    data_dir: Path = Path("var/demo")
    timezone: str = "Europe/Helsinki"
    owntracks_vans: int = 2
    #: Shops on the one broker and database: the second has the same van and order ids as
    #: the first (its own day, seed + 1), and neither may see the other's (issue 17).
    tenants: int = 1
    #: One van's driver uses the drivers' web app in a headless Chromium (issue 20).
    driver_app: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.tenants <= len(SHOPS):
            raise ValueError(f"tenants must be 1-{len(SHOPS)}, not {self.tenants}")


#: The shops' names, in order.
SHOPS = ("Kauppa Demo", "Toinen Kauppa")
