"""The dashboard's accuracy panel: the promise's key figures over the organisation's last seven
days (docs/accuracy.md; the same figures as ``GET /v1/reports/accuracy?days=7``), as text.

The dashboard polls its state every few seconds per open page, and a week of window samples is
no glance-sized read: the panel is kept per organisation and read again once it is
``REFRESH_S`` old on the service clock (or the clock went back, as a demo's restarts do)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from store.accuracy import accuracy_report

PANEL_DAYS = 7
REFRESH_S = 300.0
#: Shown for a share with nothing to score.
NONE = "no data"

#: (database, organisation id) -> (when read, the panel).
_kept: dict[tuple[str, str], tuple[datetime, dict[str, Any]]] = {}


def _percent(share: object) -> str:
    return f"{round(100 * share)}%" if isinstance(share, int | float) else NONE


def panel_of(overall: dict[str, Any]) -> dict[str, Any]:
    """The panel's texts from the overall figures."""
    return {
        "days": PANEL_DAYS,
        "first_window_hit": _percent(overall["first_window_hit"]),
        "told_ahead": (
            f"{overall['material_delays_told_15min_ahead']} / {overall['material_delays']}"
        ),
        "late_notice_precision": _percent(overall["late_notice_precision"]),
        "late_notices": overall["late_notices"],
        "coverage": _percent(overall["coverage"]),
        "stops_scored": overall["stops_scored"],
    }


def accuracy_panel(session: Session, organisation_id: str, now: datetime) -> dict[str, Any]:
    """The panel for the week up to ``now`` (kept for ``REFRESH_S``)."""
    bind = session.get_bind()
    key = (bind.engine.url.render_as_string(hide_password=True), organisation_id)
    kept = _kept.get(key)
    if kept is not None and timedelta(0) <= now - kept[0] < timedelta(seconds=REFRESH_S):
        return kept[1]
    report = accuracy_report(session, organisation_id, now, PANEL_DAYS)
    panel = panel_of(report["overall"])
    _kept[key] = (now, panel)
    return panel
