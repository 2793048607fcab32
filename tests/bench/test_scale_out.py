"""The scale-out benchmark's own checks: what it counts as stored, out of order and lost."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from bench.ingest import _setup
from bench.scale_out import _check, _TaggedFixes
from store.db import make_engine, session_factory, transaction
from store.schema import PositionRow, VehicleRow


def test_check_counts_late_applied_rows_duplicates_and_history(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'scale.db'}"
    ids = _setup(url, 2)
    t0 = datetime(2026, 11, 26, 8, tzinfo=UTC)
    engine = make_engine(url)
    try:
        with transaction(session_factory(engine)) as session:
            vehicles = {
                v.external_id: v
                for v in session.scalars(select(VehicleRow))
                if v.external_id in ids
            }

            def add(vehicle: str, second: int, *, applied: bool = True) -> None:
                row = vehicles[vehicle]
                session.add(
                    PositionRow(
                        organisation_id=row.organisation_id,
                        vehicle_id=row.id,
                        fix_time=t0 + timedelta(seconds=second),
                        lat=60.17,
                        lon=24.9,
                        applied=applied,
                    )
                )
                session.flush()  # ids in the order the rows were written

            a, b = ids
            for second in (1, 2, 3):
                add(a, second)
            add(a, 2, applied=False)  # arrived late, kept as history: fine
            add(b, 5)
            add(b, 4)  # applied after a newer fix: out of order
            add(b, 6)
            add(b, 6)  # the same fix applied twice
    finally:
        engine.dispose()
    assert _check(url, ids) == {"stored": 6, "out_of_order": 1, "applied_twice": 1, "history": 1}


def test_fixes_visit_every_vehicle_once_a_round_in_changing_order() -> None:
    ids = [f"v{k}" for k in range(20)]
    fixes = _TaggedFixes(ids, "run1")
    rounds = [[fixes.next(r * 20 + k) for k in range(20)] for r in range(3)]
    orders = [[topic.split("/")[1] for topic, _ in one] for one in rounds]
    assert all(sorted(order) == sorted(ids) for order in orders)
    assert orders[0] != orders[1]
    payloads = [json.loads(payload) for one in rounds for _, payload in one]
    assert {p["run"] for p in payloads} == {"run1"}
    assert Counter(p["time"] for p in payloads).most_common(1)[0][1] == 20  # one step a round
