"""A scenario's stops name their customer when the plan does (the week scenarios), so service
times can be learned per customer across days; older scenarios without it still load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from domain.errors import ValidationError
from evaluation.scenario import GPS_COLUMNS, STOP_COLUMNS, load_scenario

KEPT = Path(__file__).resolve().parents[2] / "bench" / "scenarios"


def write(folder: Path, stops: list[dict[str, Any]]) -> Path:
    folder.mkdir()
    plan = {
        "vehicles": [
            {
                "id": "v1",
                "depot": {"lat": 43.73, "lon": 7.42},
                "shift_start": 1774836000,
                "stops": stops,
            }
        ]
    }
    (folder / "plan.json").write_text(json.dumps(plan))
    (folder / "gps.csv").write_text(",".join(GPS_COLUMNS) + "\nv1,1774836000,43.73,7.42,0,0\n")
    rows = [
        f"v1,{k},{s['id']},{1774837000 + 600 * k},{1774837200 + 600 * k},delivered"
        for k, s in enumerate(stops)
    ]
    (folder / "stops.csv").write_text("\n".join([",".join(STOP_COLUMNS), *rows]) + "\n")
    return folder


def stop(stop_id: str, **more: Any) -> dict[str, Any]:
    return {"id": stop_id, "lat": 43.731, "lon": 7.415, "service_s": 180, **more}


def test_the_customer_is_read_when_given(tmp_path: Path) -> None:
    folder = write(tmp_path / "day", [stop("s1", customer_id="c007"), stop("s2", customer_id=42)])
    [vehicle] = load_scenario(folder).vehicles
    assert [s.customer_id for s in vehicle.stops] == ["c007", "42"]


def test_a_plan_without_customers_still_loads(tmp_path: Path) -> None:
    [vehicle] = load_scenario(write(tmp_path / "day", [stop("s1"), stop("s2")])).vehicles
    assert [s.customer_id for s in vehicle.stops] == [None, None]


def test_a_bad_customer_is_refused_naming_the_field(tmp_path: Path) -> None:
    folder = write(tmp_path / "day", [stop("s1", customer_id=["c1"])])
    with pytest.raises(ValidationError) as caught:
        load_scenario(folder)
    assert [p.field for p in caught.value.problems] == [
        "plan.json.vehicles[0].stops[0].customer_id"
    ]


def test_the_kept_week_days_name_their_customers_and_the_older_days_do_not() -> None:
    week = sorted(KEPT.glob("*-week-d*"))
    older = KEPT / "monaco-light-1"
    if not week or not older.is_dir():
        pytest.skip("the kept scenarios are not in this checkout")
    for folder in week[:2]:
        stops = [s for v in load_scenario(folder).vehicles for s in v.stops]
        assert stops
        assert all(s.customer_id for s in stops), folder.name
    assert all(s.customer_id is None for v in load_scenario(older).vehicles for s in v.stops)
