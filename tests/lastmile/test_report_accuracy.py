"""``lastmile report``'s promise plots: the numbers behind them, exactly, and PNG files that
open, drawn when there is data and "no data yet" when not."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy.orm import Session

from lastmile.report import write_report
from lastmile.report_accuracy import (
    first_window_places,
    lead_times_min,
    write_accuracy_plots,
)
from store.accuracy import plan_records
from store.db import make_engine, session_factory, transaction, upgrade
from store.repo import create_organisation
from store.schema import PlanRow
from tests.store.accuracy_day import Seeded, seed_mine

D = date(2030, 6, 14)
NAMES = ["first_window_hits.png", "late_notice_lead_times.png", "coverage_by_horizon.png"]


def assert_png(path: Path, *, drawn: bool) -> None:
    """A PNG that opens, of a real size; ``drawn``: it has coloured marks, else it is all grey
    (the "no data yet" figure). As tests/lastmile/test_report.py checks its own plots, not
    imported from there: that module imports the whole command line."""
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), path
    with Image.open(path) as image:
        assert (image.width, image.height) >= (300, 200)
        rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    coloured = (rgb.max(axis=2) - rgb.min(axis=2) > 60).mean()
    assert (coloured > 0.005) if drawn else (coloured == 0), (path, coloured)


@dataclass
class Day:
    url: str
    seeded: Seeded


@pytest.fixture
def day(database_url: str) -> Day:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        org, _ = create_organisation(session_factory(engine), "Rome carrier", "UTC")
        with transaction(session_factory(engine)) as session:
            seeded = seed_mine(session, org, D)
    finally:
        engine.dispose()
    return Day(database_url, seeded)


@pytest.fixture
def session(day: Day) -> Iterator[Session]:
    engine = make_engine(day.url)
    with session_factory(engine)() as s:
        yield s
    engine.dispose()


def test_the_numbers_behind_the_plots(session: Session, day: Day) -> None:
    """P1: A-1 and A-3 inside their first window, A-2 and R-1 over 10 min late (A-2 told 70
    min ahead, R-1 not told); A-4 and A-5 not scored."""
    records = plan_records(session, day.seeded.plans["P1"])
    assert first_window_places(records) == {
        "before the window": 0,
        "inside": 2,
        "up to 10 min late": 0,
        "more than 10 min late": 2,
    }
    assert lead_times_min(records) == ([70.0], 1)


def test_the_plots_are_drawn(session: Session, day: Day, tmp_path: Path) -> None:
    plan = session.get(PlanRow, day.seeded.plans["P1"])
    assert plan is not None
    paths = write_accuracy_plots(session, plan, tmp_path)
    assert [p.name for p in paths] == NAMES
    for path in paths:
        assert_png(path, drawn=True)


def test_a_plan_never_dispatched_says_no_data(session: Session, day: Day, tmp_path: Path) -> None:
    plan = session.get(PlanRow, day.seeded.plans["PN"])
    assert plan is not None
    for path in write_accuracy_plots(session, plan, tmp_path):
        assert_png(path, drawn=False)


def test_write_report_adds_the_promise_plots(session: Session, day: Day, tmp_path: Path) -> None:
    plan = session.get(PlanRow, day.seeded.plans["P1"])
    assert plan is not None
    report = write_report(session, plan, tmp_path, None)
    assert [p.name for p in report.paths][-3:] == NAMES
    assert len(report.paths) == 7
    for path in report.paths[-3:]:
        assert_png(path, drawn=True)
