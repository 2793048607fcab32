"""The audit log through the running service: dispatching, re-planning and cancelling a plan,
changing the organisation's settings and creating a key each leave one entry naming the
acting key, written with the action or not at all; ``GET /v1/audit`` lists the caller's
organisation's entries only, newest first; its limit and since are checked; on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from store.db import make_engine, session_factory
from store.repo import create_organisation
from tests.api.service import Service
from tests.api.test_service import _fleet

pytestmark = pytest.mark.integration


def _named_key(s: Service, role: str, name: str) -> tuple[str, str]:
    """(the key's id, the key) of a new key with a name."""
    r = s.client.post("/v1/keys", json={"role": role, "name": name}, headers=s.headers())
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["key"]


def _audit(s: Service, key: str | None = None, **params: Any) -> list[dict[str, Any]]:
    r = s.client.get("/v1/audit", params=params, headers=s.headers(key))
    assert r.status_code == 200, r.text
    entries: list[dict[str, Any]] = r.json()
    return entries


def _admin_key_id(s: Service) -> str:
    keys = s.client.get("/v1/keys", headers=s.headers()).json()
    return str(next(k["id"] for k in keys if k["name"] == "first admin key"))


def test_each_action_leaves_an_entry_with_the_acting_key(service: Service) -> None:
    s = service
    _fleet(s)
    desk_id, desk = _named_key(s, "dispatcher", "Desk 2")
    h = s.headers(desk)
    plan_id = s.client.post("/v1/plans", json={"time_limit_s": 1}, headers=h).json()["plan_id"]
    plan = s.wait(plan_id)
    assert plan["status"] == "succeeded", plan["error"]
    assert s.client.post(f"/v1/plans/{plan_id}/dispatch", headers=h).status_code == 200
    # From the first stop's departure: within the fleet's shift (test_service's day).
    first = next(route for route in plan["plan"]["routes"] if route["stops"])["stops"][0]
    replan = {"now": first["departure"], "time_limit_s": 1}
    r = s.client.post(f"/v1/plans/{plan_id}/replan", json=replan, headers=h)
    assert r.status_code == 202, r.text
    new_plan_id = r.json()["plan_id"]
    s.wait(new_plan_id)
    assert s.client.post(f"/v1/plans/{plan_id}/cancel", headers=h).status_code == 200
    settings = {"timezone": "Europe/Rome", "notification_policy": {"budget_per_order": 4}}
    assert s.client.patch("/v1/organisation", json=settings, headers=s.headers()).status_code == 200

    entries = _audit(s, desk)
    assert [e["action"] for e in entries] == [
        "settings_changed",
        "cancelled",
        "replanned",
        "dispatched",
        "api_key_created",
    ]
    settings_changed, cancelled, replanned, dispatched, created = entries
    for entry in (cancelled, replanned, dispatched):
        assert (entry["api_key_id"], entry["actor_name"], entry["actor_role"]) == (
            desk_id,
            "Desk 2",
            "dispatcher",
        )
        assert (entry["object_type"], entry["object_id"]) == ("plan", plan_id)
    admin_id = _admin_key_id(s)
    for entry in (settings_changed, created):
        assert (entry["api_key_id"], entry["actor_role"]) == (admin_id, "admin")
    used = [route for route in plan["plan"]["routes"] if route["stops"]]
    served = sum(len(route["stops"]) for route in used)
    assert dispatched["detail"] == {"kind": "plan", "vehicles": len(used), "orders": served}
    assert replanned["detail"] == {"new_plan_id": new_plan_id}
    assert cancelled["detail"] == {"previous_status": "succeeded"}
    assert settings_changed["object_type"] == "organisation"
    assert settings_changed["detail"] == {
        "fields": ["notification_policy", "timezone"],
        "changed": ["notification_policy", "timezone"],
    }
    assert (created["object_type"], created["object_id"]) == ("api_key", desk_id)
    assert created["detail"] == {"name": "Desk 2", "role": "dispatcher", "vehicle_id": None}
    stamps = [datetime.fromisoformat(e["at"]) for e in entries]
    assert stamps == sorted(stamps, reverse=True)
    # Never the key itself, never a customer's contact.
    text = json.dumps(entries)
    assert desk not in text
    assert desk.split("_")[2] not in text
    assert "@example.com" not in text
    # Admins read it too; support keys do not.
    assert _audit(s) == entries
    assert s.client.get("/v1/audit", headers=s.headers(s.key("support"))).status_code == 403


def test_an_action_refused_leaves_no_entry(service: Service) -> None:
    """The entry is written in the action's own transaction: a refusal writes neither."""
    s = service
    _fleet(s, orders=2)
    plan_id = s.client.post("/v1/plans", json={"time_limit_s": 1}, headers=s.headers()).json()[
        "plan_id"
    ]
    s.wait(plan_id)
    assert s.client.post(f"/v1/plans/{plan_id}/cancel", headers=s.headers()).status_code == 200
    before = _audit(s)
    assert s.client.post(f"/v1/plans/{plan_id}/cancel", headers=s.headers()).status_code == 409
    assert s.client.post(f"/v1/plans/{plan_id}/dispatch", headers=s.headers()).status_code == 409
    bad = {"timezone": "Mars/Olympus", "name": "Renamed"}
    assert s.client.patch("/v1/organisation", json=bad, headers=s.headers()).status_code == 422
    assert _audit(s) == before


@pytest.mark.security
def test_two_organisations_never_see_each_others_entries(service: Service) -> None:
    s = service
    engine = make_engine(s.url)
    try:
        theirs_id, theirs = create_organisation(session_factory(engine), "Other carrier", "UTC")
    finally:
        engine.dispose()
    assert s.client.patch("/v1/organisation", json={"name": "Mine"}, headers=s.headers()).is_success
    r = s.client.patch("/v1/organisation", json={"name": "Theirs"}, headers=s.headers(theirs))
    assert r.status_code == 200
    mine = _audit(s, limit=500)
    other = _audit(s, theirs, limit=500, since="2000-01-01T00:00:00Z")
    assert [e["object_id"] for e in other] == [theirs_id]
    assert theirs_id not in json.dumps(mine)
    assert {e["id"] for e in mine}.isdisjoint({e["id"] for e in other})
    assert [e["detail"]["changed"] for e in mine] == [["name"]]


def test_limit_and_since(service: Service) -> None:
    s = service
    for name in ("One", "Two", "Three"):
        body = {"name": name}
        assert s.client.patch("/v1/organisation", json=body, headers=s.headers()).is_success
    everything = _audit(s)
    assert len(everything) == 3
    assert _audit(s, limit=1) == everything[:1]
    assert _audit(s, limit=500) == everything
    oldest = everything[-1]["at"]
    assert _audit(s, since=oldest) == everything
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert _audit(s, since=later) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "query.limit"),
        ({"limit": 501}, "query.limit"),
        ({"limit": "many"}, "query.limit"),
        ({"since": "2030-01-01T00:00:00"}, "query.since"),
        ({"since": "yesterday"}, "query.since"),
    ],
)
def test_a_bad_limit_or_since_is_a_422_naming_the_field(
    service: Service, params: dict[str, Any], field: str
) -> None:
    r = service.client.get("/v1/audit", params=params, headers=service.headers())
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid"
    assert [p["field"] for p in error["problems"]] == [field]
