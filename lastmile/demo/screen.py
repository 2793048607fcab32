"""The demo's live terminal screen (rich): each van's place in its route, late stops, ETA
changes and the messages going out. It shows what the dispatcher dashboard shows, from the
same :func:`api.dashboard_state.dashboard_state`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text


def _local(iso: str | None, zone: ZoneInfo) -> str:
    if not iso:
        return "-"
    return datetime.fromisoformat(iso).astimezone(zone).strftime("%H:%M")


def render(
    state: dict[str, Any],
    now: datetime,
    zone: ZoneInfo,
    phases: dict[str, str],
    log_lines: Sequence[str],
    mails: Sequence[tuple[str, str]],
    webhooks: int,
) -> RenderableType:
    """One frame: header counts, a row per van, the day's events and the last e-mails."""
    counts = state["counts"]
    header = Text.assemble(
        ("Simulated time ", "bold"),
        (now.astimezone(zone).strftime("%H:%M:%S"), "bold cyan"),
        "   delivered ",
        (str(counts["stops_delivered"]), "green"),
        "  failed ",
        (str(counts["stops_failed"]), "red"),
        f"  of {counts['stops_total']} stops   late ",
        (str(counts["stops_late"]), "yellow"),
        "   messages sent ",
        (str(counts["messages_sent"]), "cyan"),
        f" (webhooks {webhooks})",
    )
    vans = Table(expand=True, box=None, pad_edge=False)
    for name in ("Van", "Driver", "Doing", "Stops", "Next stop", "Live ETA", "Late", "Last fix"):
        vans.add_column(name, no_wrap=True)
    for vehicle in state["vehicles"]:
        stops = vehicle["stops"]
        upcoming = [s for s in stops if s["status"] in ("next", "arrived", "planned")]
        nxt = upcoming[0] if upcoming else None
        late = [s for s in stops if s["late"] and s["status"] in ("next", "planned", "arrived")]
        vans.add_row(
            vehicle["id"],
            vehicle.get("driver") or "",
            phases.get(vehicle["id"], ""),
            f"{vehicle['stops_done']}/{vehicle['stops_total']}",
            nxt["order"] if nxt else "-",
            _local(nxt["eta"], zone) if nxt else "-",
            Text(str(len(late)), style="yellow" if late else ""),
            _local(vehicle.get("last_fix"), zone),
        )
    events = Text("\n".join(log_lines[-8:]) or "(nothing yet)")
    inbox = Text(
        "\n".join(f"{to.split('@')[0][:28]:28}  {subject[:70]}" for to, subject in mails[-6:])
        or "(no e-mail yet)"
    )
    return Group(
        header,
        Panel(vans, title="Vans"),
        Panel(events, title="The day"),
        Panel(inbox, title="Customers' mailbox (latest)"),
    )
