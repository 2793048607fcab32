"""Stands learned from past deliveries: where the van stood when its driver confirmed one is
kept with the event, the stands that agree give the address's learned stand, and the next
route to that address draws its arrival fence around it too."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from store.db import transaction
from store.schema import EventRow, OrderRow, VehicleRow
from telematics.ingest import Ingester
from telematics.ingest.place import learned_stands_for
from telematics.stopping_points import (
    STOOD_LAT,
    STOOD_LON,
    StandParams,
    address_key,
    learned_stands,
    stood_at,
    stood_point,
)
from tests.telematics.conftest import LINE_LAT, LINE_LON, ROUTE_STOPS, store_with_route

M_PER_DEG_LAT = 111_195.0
NOW = datetime.now(UTC).replace(microsecond=0)
T0 = NOW - timedelta(minutes=10)


def north(lat: float, lon: float, metres: float) -> tuple[float, float]:
    return lat + metres / M_PER_DEG_LAT, lon


def east(lat: float, lon: float, metres: float) -> tuple[float, float]:
    return lat, lon + metres / (M_PER_DEG_LAT * math.cos(math.radians(lat)))


# Address keys ---------------------------------------------------------------------------------
def test_an_address_is_its_normalised_text_or_its_rounded_point() -> None:
    assert address_key(60.17, 24.9, "  Mannerheimintie 1,\tHELSINKI ") == (
        "addr:mannerheimintie 1, helsinki"
    )
    assert address_key(60.170004, 24.899996) == address_key(60.17, 24.9) == "ll:60.1700,24.9000"
    assert address_key(60.1702, 24.9) != address_key(60.17, 24.9)
    assert address_key(-0.00001, 0.00001) == address_key(0.0, 0.0)  # no "-0.0000"
    assert address_key(60.17, 24.9, "") == address_key(60.17, 24.9)


# Learning -------------------------------------------------------------------------------------
HOME = (60.17, 24.9)
KEY = address_key(*HOME)


def test_two_stands_that_agree_are_learned_as_their_median() -> None:
    a, b = east(*HOME, 120), east(*north(*HOME, 6), 126)
    learned = learned_stands([(KEY, *a), (KEY, *b)], {KEY: HOME})
    assert learned[KEY] == pytest.approx(((a[0] + b[0]) / 2, (a[1] + b[1]) / 2))


def test_one_stand_or_two_that_disagree_teach_nothing() -> None:
    a, b = east(*HOME, 120), east(*HOME, -100)
    assert learned_stands([(KEY, *a)]) == {}
    assert learned_stands([(KEY, *a), (KEY, *b)]) == {}


def test_an_odd_stand_out_is_left_out() -> None:
    """Three stands at the kerb in front and one across the block: the kerb is learned."""
    kerb = [east(*HOME, 10 + d) for d in (0, 3, -4)]
    learned = learned_stands([(KEY, *p) for p in [*kerb, east(*HOME, 200)]], {KEY: HOME})
    assert learned[KEY] == pytest.approx(kerb[0], abs=1e-5)


def test_an_address_served_from_two_sides_keeps_no_stand() -> None:
    """Two stands in front, two at the back: no single stand (the road point stays)."""
    front = [east(*HOME, d) for d in (0, 5)]
    back = [north(*HOME, 150 + d) for d in (0, 5)]
    assert learned_stands([(KEY, *p) for p in front + back], {KEY: HOME}) == {}


def test_stands_far_from_the_address_are_not_its() -> None:
    """Confirmed late, at the next stop 800 m away: not where this address was served."""
    far = [east(*HOME, 800 + d) for d in (0, 5, 10)]
    assert learned_stands([(KEY, *p) for p in far], {KEY: HOME}) == {}
    assert KEY in learned_stands([(KEY, *p) for p in far])  # without the address: kept


def test_only_the_newest_stands_count() -> None:
    """A new lay-by: the newest stands (given first) outvote the old ones beyond the limit."""
    new = [east(*HOME, 60 + d) for d in (0, 2, 4)]
    old = [east(*HOME, -60 + d) for d in range(10)]
    params = StandParams(newest=5)
    learned = learned_stands([(KEY, *p) for p in new + old], {KEY: HOME}, params)
    assert learned[KEY] == pytest.approx(new[1], abs=1e-5)


def test_the_median_across_the_antimeridian() -> None:
    home = (-16.8, 179.9999)
    key = address_key(*home)
    learned = learned_stands([(key, -16.8, 179.99995), (key, -16.8, -179.99995)], {key: home})
    assert abs(abs(learned[key][1]) - 180.0) < 1e-6


def test_junk_observations_are_ignored() -> None:
    a = east(*HOME, 20)
    junk = [(KEY, math.nan, 24.9), (KEY, 95.0, 24.9), (KEY, 60.17, math.inf)]
    assert learned_stands([*junk, (KEY, *a), (KEY, *a)])[KEY] == pytest.approx(a)


# Recording where the van stood ---------------------------------------------------------------
def standing_state(fix_time: datetime, fixes: int = 5) -> dict[str, object]:
    return {
        "fix_time": fix_time.isoformat(),
        "inside_since": (fix_time - timedelta(seconds=60)).isoformat(),
        "still_lat": 60.1701234567,
        "still_lon": 24.9012345678,
        "still_fixes": fixes,
    }


def test_a_delivery_records_where_the_van_stands() -> None:
    stood = stood_at("delivered", NOW, standing_state(NOW - timedelta(seconds=20)))
    assert stood == {STOOD_LAT: 60.170123, STOOD_LON: 24.901235}
    assert stood_point(stood) == (60.170123, 24.901235)


@pytest.mark.parametrize(
    ("kind", "state"),
    [
        ("failed", standing_state(NOW)),  # not a delivery
        ("delivered", None),  # no progress yet
        ("delivered", {**standing_state(NOW), "inside_since": None}),  # moving
        ("delivered", standing_state(NOW, fixes=1)),  # one fix: not known to stand
        ("delivered", standing_state(NOW - timedelta(minutes=30))),  # no fix lately
        ("delivered", {**standing_state(NOW), "still_lat": None}),
        ("delivered", {**standing_state(NOW), "fix_time": "yesterday"}),
    ],
)
def test_no_stand_is_recorded_when_it_is_not_known(
    kind: str, state: dict[str, object] | None
) -> None:
    assert stood_at(kind, NOW, state) == {}


def test_an_event_without_a_stand_has_no_point() -> None:
    assert stood_point({"reason": "", "by": "driver"}) is None
    assert stood_point(None) is None
    assert stood_point({STOOD_LAT: "60", STOOD_LON: 24.9}) is None


# Through the store ---------------------------------------------------------------------------
def fix(ingester: Ingester, seconds: float, lat: float, lon: float, speed: float) -> None:
    payload = {
        "time": (T0 + timedelta(seconds=seconds)).isoformat(),
        "lat": lat,
        "lon": lon,
        "speed_mps": speed,
    }
    result = ingester.fleet_message("fleet/van-1/position", json.dumps(payload).encode())
    assert result.status == "applied", result


def test_a_drivers_delivery_keeps_where_the_van_stood(tmp_path: Path) -> None:
    """The van stands a minute at o1, reporting speed 0; the driver confirms the delivery: the
    event's data holds where it stood (the mean of its fixes there)."""
    sessions, engine = store_with_route(tmp_path, T0)
    ingester = Ingester(sessions, clock=lambda: NOW)
    o1 = (LINE_LAT, LINE_LON + dict(ROUTE_STOPS)["o1"])
    for k, metres in enumerate((-3.0, 4.0, -1.0, 2.0, 0.0, -2.0)):
        fix(ingester, 10 * k, *east(*north(*o1, 8.0), metres), 0.0)
    event = {"order_id": "o1", "kind": "delivered", "at": (T0 + timedelta(seconds=55)).isoformat()}
    result = ingester.driver_event_message("fleet/van-1/events", json.dumps(event).encode())
    assert result.status == "applied", result
    with sessions() as session:
        row = session.scalars(select(EventRow).where(EventRow.kind == "delivered")).one()
        stood = stood_point(row.data)
        assert row.data["by"] == "driver"
    assert stood is not None
    assert stood == pytest.approx(north(*o1, 8.0), abs=2e-6)
    engine.dispose()


def test_the_route_fence_takes_the_stand_learned_from_past_deliveries(tmp_path: Path) -> None:
    """Two past deliveries at o2's address, both confirmed with the van in the car park 70 m
    north of it: the route's o2 has that stand, and a van standing there has arrived at o2
    (the stops before it passed). Without the history it is nowhere."""
    o2 = (LINE_LAT, LINE_LON + dict(ROUTE_STOPS)["o2"])
    car_park = north(*o2, 70.0)

    def drive(ingester: Ingester) -> list[str]:
        seen: list[str] = []
        for k in range(12):  # 0 to 220 m along the street at 10 m/s
            fix(ingester, 2 * k, *east(LINE_LAT, LINE_LON, 20.0 * k), 10.0)
        for k in range(8):  # into the car park, and standing there
            result = ingester.fleet_message(
                "fleet/van-1/position",
                json.dumps(
                    {
                        "time": (T0 + timedelta(seconds=40 + 10 * k)).isoformat(),
                        "lat": car_park[0],
                        "lon": car_park[1],
                        "speed_mps": 0.0,
                    }
                ).encode(),
            )
            seen += [f"{type(e).__name__}:{getattr(e, 'order_id', '')}" for e in result.events]
        return seen

    (tmp_path / "without").mkdir()
    sessions, engine = store_with_route(tmp_path / "without", T0)
    assert "Arrived:o2" not in drive(Ingester(sessions, clock=lambda: NOW))
    engine.dispose()

    (tmp_path / "with").mkdir()
    sessions, engine = store_with_route(tmp_path / "with", T0)
    with transaction(sessions) as session:
        vehicle = session.scalars(select(VehicleRow)).one()
        for n, metres in enumerate((0.0, 5.0)):
            order = OrderRow(
                organisation_id=vehicle.organisation_id,
                external_id=f"past-{n}",
                lat=o2[0] + 3e-6,  # geocoded a hair apart: the same address
                lon=o2[1],
                tracking_token=f"token-past-{n}",
                status="delivered",
            )
            session.add(order)
            session.flush()
            stood = east(*car_park, metres)
            session.add(
                EventRow(
                    organisation_id=vehicle.organisation_id,
                    order_id=order.id,
                    vehicle_id=vehicle.id,
                    kind="delivered",
                    at=T0 - timedelta(days=n + 1),
                    data={"reason": "", "by": "driver", STOOD_LAT: stood[0], STOOD_LON: stood[1]},
                )
            )
    with sessions() as session:
        rows = {
            o.external_id: o
            for o in session.scalars(select(OrderRow).where(OrderRow.external_id.like("o%")))
        }
        stands = learned_stands_for(session, vehicle.organisation_id, rows)
    assert set(stands) == {"o2"}
    assert stands["o2"] == pytest.approx(east(*car_park, 2.5), abs=1e-6)
    seen = drive(Ingester(sessions, clock=lambda: NOW))
    assert "Arrived:o2" in seen
    assert "Passed:o1" in seen
    engine.dispose()
