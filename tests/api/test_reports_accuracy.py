"""``GET /v1/reports/accuracy`` through the running service: the caller's organisation only,
its days in its time zone, the bounds of ``days`` and who may ask; on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from store.db import make_engine, session_factory, transaction
from store.repo import create_organisation
from store.schema import Organisation
from tests.api.service import Service
from tests.store.accuracy_day import (
    MINE_BY_DAY,
    MINE_OVERALL,
    ROME,
    THEIRS,
    Seeded,
    seed_mine,
    seed_theirs,
    subset,
)


@dataclass
class Carriers:
    day: date
    seeded: Seeded
    theirs_admin: str


def seed_two_carriers(s: Service) -> Carriers:
    """The service's carrier (made a Rome one) with D = yesterday in Rome, so its D+1 is today;
    another carrier with the same order ids beside it."""
    day = datetime.now(UTC).astimezone(ROME).date() - timedelta(days=1)
    engine = make_engine(s.url)
    try:
        _, theirs_admin = create_organisation(session_factory(engine), "Other carrier", "UTC")
        with transaction(session_factory(engine)) as session:
            mine = session.scalar(
                select(Organisation.id).where(Organisation.name == "Test carrier")
            )
            theirs = session.scalar(
                select(Organisation.id).where(Organisation.name == "Other carrier")
            )
            assert mine is not None
            assert theirs is not None
            seeded = seed_mine(session, mine, day)
            seed_theirs(session, theirs, day)
    finally:
        engine.dispose()
    return Carriers(day, seeded, theirs_admin)


@pytest.mark.integration
def test_each_carrier_sees_its_own_days(service: Service) -> None:
    s = service
    carriers = seed_two_carriers(s)
    r = s.client.get(
        "/v1/reports/accuracy", params={"days": 3}, headers=s.headers(s.key("dispatcher"))
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["days"], report["timezone"]) == (3, "Europe/Rome")
    expected_days = [(carriers.day + timedelta(days=n)).isoformat() for n in (-1, 0, 1)]
    assert [d["day"] for d in report["by_day"]] == expected_days
    for got, expected in zip(report["by_day"], MINE_BY_DAY, strict=True):
        assert subset(got, expected) == expected, got["day"]
    assert subset(report["overall"], MINE_OVERALL) == MINE_OVERALL
    plans = carriers.seeded.plans
    assert [(r["plan_id"], r["vehicle_id"]) for r in report["by_route"]] == [
        (plans["P13"], "V-A"),
        (plans["P1"], "V-A"),
        (plans["P0"], "V-B"),
        (plans["P3"], "V-C"),
    ]

    theirs = s.client.get(
        "/v1/reports/accuracy", params={"days": 3}, headers=s.headers(carriers.theirs_admin)
    ).json()
    assert subset(theirs["overall"], THEIRS) == THEIRS
    assert {r["plan_id"] for r in theirs["by_route"]}.isdisjoint(plans.values())


@pytest.mark.integration
def test_days_default_bounds_and_roles(service: Service) -> None:
    s = service
    dispatcher = s.headers(s.key("dispatcher"))
    default = s.client.get("/v1/reports/accuracy", headers=dispatcher)
    assert default.status_code == 200, default.text
    body = default.json()
    assert body["days"] == 7
    assert len(body["by_day"]) == 7
    assert body["by_day"][-1]["day"] == datetime.now(UTC).date().isoformat()
    assert body["overall"]["stops_scored"] == 0
    assert body["overall"]["first_window_hit"] is None
    assert body["by_route"] == []
    for bad in ("0", "91", "-3", "seven"):
        r = s.client.get("/v1/reports/accuracy", params={"days": bad}, headers=dispatcher)
        assert r.status_code == 422, (bad, r.text)
        fields = [p["field"] for p in r.json()["error"]["problems"]]
        assert any(f.split(".")[-1] == "days" for f in fields), fields
    assert (
        s.client.get("/v1/reports/accuracy", params={"days": 90}, headers=dispatcher).status_code
        == 200
    )
    assert s.client.get("/v1/reports/accuracy").status_code == 401
    support = s.client.get("/v1/reports/accuracy", headers=s.headers(s.key("support")))
    assert support.status_code == 403


def test_the_report_is_in_the_openapi_schema(service: Service) -> None:
    schema = service.client.get("/openapi.json").json()
    operation = schema["paths"]["/v1/reports/accuracy"]["get"]
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/AccuracyReportOut"}
    figures = schema["components"]["schemas"]["PromiseFiguresOut"]["properties"]
    assert "material_delays_told_15min_ahead" in figures
    assert figures["first_window_hit"]["description"]
    (days,) = operation["parameters"]
    assert (days["name"], days["schema"]["minimum"], days["schema"]["maximum"]) == ("days", 1, 90)
