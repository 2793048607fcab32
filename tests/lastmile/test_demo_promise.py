"""The demo summary's promise figures: read from the store exactly as the accuracy report
reads it (store/accuracy.py), on a day of a Rome carrier worked out by hand
(tests/store/accuracy_day.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from lastmile.demo.summary import SUMMARY_KEYS, summary
from store.accuracy import all_records, figures
from store.db import make_engine, session_factory, transaction, upgrade
from store.repo import create_organisation
from tests.store.accuracy_day import MINE_OVERALL, seed_mine, seed_theirs

D = date(2030, 6, 14)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Session, str]]:
    url = f"sqlite:///{tmp_path / 'lastmile.db'}"
    upgrade(url)
    engine = make_engine(url)
    mine, _ = create_organisation(session_factory(engine), "Rome carrier", "UTC")
    theirs, _ = create_organisation(session_factory(engine), "Other carrier", "UTC")
    with transaction(session_factory(engine)) as session:
        seed_mine(session, mine, D)
        seed_theirs(session, theirs, D)
    with session_factory(engine)() as session:
        yield session, mine
    engine.dispose()


def test_the_summary_reads_the_promise_as_the_report_does(store: tuple[Session, str]) -> None:
    """Every day the carrier ever dispatched (the demo has one), none of the other carrier's
    stops with the same ids; the keys in the summary's order after the older ones."""
    session, mine = store
    line = summary(session, mine)
    expected = {k: v for k, v in MINE_OVERALL.items() if k in SUMMARY_KEYS}
    assert {k: line[k] for k in expected} == expected
    overall = figures(all_records(session, mine))
    assert {k: line[k] for k in SUMMARY_KEYS} == {k: overall[k] for k in SUMMARY_KEYS}
    assert list(line) == [
        "orders",
        "delivered",
        "failed",
        "messages_sent",
        "eta_mae_s",
        "late_stops_notified",
        "late_stops",
        "contacts",
        "answered_auto",
        *SUMMARY_KEYS,
    ]
