"""The dashboard's accuracy panel: the week's promise figures in the state and on the page, the
caller's organisation's only; on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest

from api.dashboard_accuracy import panel_of
from eta.promise import promise_figures
from tests.api.dashboard_calls import log_in
from tests.api.service import Service
from tests.api.test_reports_accuracy import seed_two_carriers

#: The seeded carrier's three days (tests/store/accuracy_day.py), all inside the week.
MINE = {
    "days": 7,
    "first_window_hit": "57%",
    "told_ahead": "1 / 3",
    "late_notice_precision": "50%",
    "late_notices": 2,
    "coverage": "64%",
    "stops_scored": 7,
}
THEIRS = {
    "days": 7,
    "first_window_hit": "50%",
    "told_ahead": "1 / 1",
    "late_notice_precision": "100%",
    "late_notices": 1,
    "coverage": "0%",
    "stops_scored": 2,
}


@pytest.mark.integration
def test_the_panel_shows_the_weeks_figures(service: Service) -> None:
    s = service
    carriers = seed_two_carriers(s)
    dispatcher = s.key("dispatcher")
    state = s.client.get("/dashboard/state", headers=s.headers(dispatcher)).json()
    assert state["accuracy"] == MINE
    theirs = s.client.get("/dashboard/state", headers=s.headers(carriers.theirs_admin)).json()
    assert theirs["accuracy"] == THEIRS

    log_in(s, dispatcher)
    page = s.client.get("/dashboard")
    assert page.status_code == 200
    shown = dict(re.findall(r'data-accuracy="([a-z_]+)">([^<]*)<', page.text))
    assert shown == {
        "days": "7",
        "first_window_hit": "57%",
        "told_ahead": "1 / 3",
        "late_notice_precision": "50%",
        "coverage": "64%",
        "stops_scored": "7",
    }


def test_a_week_with_nothing_to_score() -> None:
    assert panel_of(promise_figures([])) == {
        "days": 7,
        "first_window_hit": "no data",
        "told_ahead": "0 / 0",
        "late_notice_precision": "no data",
        "late_notices": 0,
        "coverage": "no data",
        "stops_scored": 0,
    }


@pytest.mark.integration
def test_an_empty_organisation_gets_an_empty_panel(service: Service) -> None:
    state = service.client.get(
        "/dashboard/state", headers=service.headers(service.key("dispatcher"))
    ).json()
    assert state["accuracy"]["stops_scored"] == 0
    assert state["accuracy"]["first_window_hit"] == "no data"
