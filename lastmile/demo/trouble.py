"""The demo day's troubles, chosen on the dispatched plan: slow traffic that holds one van,
a stop where another van's driver is kept long, and a customer who is not at home.

The jam and the long stop come early enough in their routes that several stops lie behind
them, still a good while off when the live ETA sees the van fall behind: the story the demo
tells is a delay its customers hear of before they wonder. Whether they do is up to the
service (the summary scores what it really told them), not to this module.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from lastmile.demo.fleet import Disruptions, Jam

#: How long the slow traffic holds the van that runs into it...
JAM_DURATION = timedelta(minutes=35)
#: ... on its way to a stop planned at least this long after the van sets out.
JAM_AFTER = timedelta(minutes=25)
#: How much longer than planned the long stop takes...
SLOW_EXTRA = timedelta(minutes=30)
#: ... a stop planned at least this long after its van sets out.
SLOW_AFTER = timedelta(minutes=15)
#: Stops that stay behind a trouble, at least (when the route has them).
STOPS_BEHIND = 3
#: The jam needs a leg this long (planned metres) for its queue (see :class:`Jam`), and looks
#: for one among this many stops from the first one late enough.
LONG_LEG_M = 500.0
JAM_CANDIDATES = 3


def stop_after(route: dict[str, Any], after: timedelta) -> int:
    """The first stop planned ``after`` or longer after the route starts, never the first
    stop and, when the route is long enough, with ``STOPS_BEHIND`` stops behind it."""
    stops = route["stops"]
    start = datetime.fromisoformat(route["start"])
    last = min(max(1, len(stops) - 1 - STOPS_BEHIND), len(stops) - 1)
    for k in range(1, last):
        if datetime.fromisoformat(stops[k]["arrival"]) - start >= after:
            return k
    return max(last, 0)


def jam_stop(route: dict[str, Any]) -> int:
    """The stop the jam is on the way to: from :func:`stop_after` on, the first of
    ``JAM_CANDIDATES`` stops whose leg is long enough to hold a queue clear of both doors
    (``LONG_LEG_M``), else the one of them with the longest leg; never fewer than
    ``STOPS_BEHIND`` from the end."""
    stops = route["stops"]
    first = stop_after(route, JAM_AFTER)
    last = max(first, min(first + JAM_CANDIDATES - 1, len(stops) - 1 - STOPS_BEHIND))
    candidates = range(first, last + 1)
    for k in candidates:
        if stops[k]["distance_from_previous_m"] >= LONG_LEG_M:
            return k
    return max(candidates, key=lambda k: stops[k]["distance_from_previous_m"])


def _minutes(span: timedelta) -> int:
    return round(span.total_seconds() / 60)


def choose_disruptions(routes: tuple[dict[str, Any], ...]) -> tuple[Disruptions, dict[str, str]]:
    """From the dispatched plan: the jam on the shortest route and the long stop on the next
    shortest (so the day does not end much later), the failed stop on the longest. Returns the
    disruptions and a line describing each."""
    by_length = sorted(routes, key=lambda r: r["duration_s"])
    said: dict[str, str] = {}
    jam = None
    jam_route = by_length[0]
    if len(jam_route["stops"]) >= 3:
        order_id = jam_route["stops"][jam_stop(jam_route)]["order_id"]
        jam = Jam(jam_route["vehicle_id"], order_id, JAM_DURATION)
        said["jam"] = (
            f"slow traffic holds {jam_route['vehicle_id']} for {_minutes(JAM_DURATION)} min "
            f"on its way to {order_id}"
        )
    others = [r for r in by_length[1:] if len(r["stops"]) >= 3] or by_length
    slow_route = others[0]
    slow = slow_route["stops"][stop_after(slow_route, SLOW_AFTER)]["order_id"]
    failed_route = others[-1]
    failed = failed_route["stops"][-2 if len(failed_route["stops"]) > 1 else 0]["order_id"]
    if failed == slow:
        failed = failed_route["stops"][-1]["order_id"]
    said["slow"] = f"{slow} will take {_minutes(SLOW_EXTRA)} min longer than planned"
    said["failed"] = f"{failed} will not be at home"
    return Disruptions(jam, (slow,), SLOW_EXTRA, (failed,)), said
