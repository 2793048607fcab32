"""The HTTP service through the real app, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from store.db import make_engine, session_factory, transaction
from store.schema import PlanJobRow
from tests.api.service import Service, running

SHIFT = {"start": "2026-11-26T08:00:00+02:00", "end": "2026-11-26T18:00:00+02:00"}


def shift_tomorrow() -> dict[str, str]:
    """A shift of tomorrow 08:00-18:00 UTC: for tests whose messages must not be stale when
    the test runs (a plan confirmation is news only until the window it announces closes)."""
    day = (datetime.now(UTC) + timedelta(days=1)).date()
    start = datetime(day.year, day.month, day.day, 8, tzinfo=UTC)
    return {"start": start.isoformat(), "end": (start + timedelta(hours=10)).isoformat()}


PLACES = [(60.1665, 24.9433), (60.1700, 24.9500), (60.1620, 24.9400), (60.1680, 24.9440)]


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Service:
    with running(database_url, tmp_path) as s:
        yield s  # type: ignore[misc]


def _fleet(s: Service, orders: int = 4) -> None:
    h = s.headers()
    assert (
        s.client.post(
            "/v1/depots", json={"id": "d1", "location": {"lat": 60.1699, "lon": 24.9384}}, headers=h
        ).status_code
        == 201
    )
    for vid in ("v1", "v2"):
        r = s.client.post(
            "/v1/vehicles",
            json={"id": vid, "depot_id": "d1", "shift": SHIFT, "capacity": [10]},
            headers=h,
        )
        assert r.status_code == 201, r.text
    for i in range(orders):
        lat, lon = PLACES[i % len(PLACES)]
        r = s.client.post(
            "/v1/orders",
            json={
                "id": f"o{i}",
                "location": {"lat": lat, "lon": lon},
                "service_s": 120,
                "demand": [1],
                "contact": {"email": f"c{i}@example.com"},
                "language": "it",
            },
            headers=h,
        )
        assert r.status_code == 201, r.text


def test_health_ready_and_metrics(service: Service) -> None:
    """Liveness, readiness with the database checked, and Prometheus text."""
    assert service.client.get("/healthz").json() == {"status": "ok"}
    ready = service.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"
    assert "lastmile_http_requests_total" in service.client.get("/metrics").text


def test_keys_and_roles(service: Service) -> None:
    """No key: 401; a device key cannot read plans; a support key reads but cannot plan."""
    assert service.client.get("/v1/plans").status_code == 401
    bad = service.client.get("/v1/plans", headers={"Authorization": "Bearer lm_nope_x"})
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "unauthorized"
    vehicle = {"id": "v1", "start": {"lat": 60.17, "lon": 24.94}, "shift": SHIFT}
    r = service.client.post("/v1/vehicles", json=vehicle, headers=service.headers())
    assert r.status_code == 201, r.text
    device = service.key("device", "v1")
    support = service.key("support")
    assert service.client.get("/v1/plans", headers=service.headers(device)).status_code == 403
    assert service.client.get("/v1/plans", headers=service.headers(support)).status_code == 200
    denied = service.client.post("/v1/plans", json={}, headers=service.headers(support))
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "forbidden"
    assert (
        service.client.post(
            "/v1/keys", json={"role": "admin"}, headers=service.headers(support)
        ).status_code
        == 403
    )


def test_invalid_input_lists_every_problem_with_its_field(service: Service) -> None:
    """One 422 names each bad field; nothing is stored."""
    body = {
        "id": "bad",
        "location": {"lat": 95, "lon": 24.9},
        "windows": [{"start": "2026-11-26T18:00:00+02:00", "end": "2026-11-26T08:00:00+02:00"}],
        "demand": [-1],
        "penalty": 5,
    }
    r = service.client.post("/v1/orders", json=body, headers=service.headers())
    assert r.status_code == 422
    fields = [p["field"] for p in r.json()["error"]["problems"]]
    assert "location.lat" in fields
    assert "windows.0" in fields
    assert "demand.0" in fields
    assert service.client.get("/v1/orders/bad", headers=service.headers()).status_code == 404
    naive = {
        **body,
        "location": {"lat": 60.1, "lon": 24.9},
        "windows": [{"start": "2026-11-26T08:00:00", "end": "2026-11-26T09:00:00"}],
    }
    r = service.client.post("/v1/orders", json=naive, headers=service.headers())
    assert r.status_code == 422


def test_conflicts_and_unknown_ids(service: Service) -> None:
    """Duplicates and repeated cancels are 409; unknown ids 404; one error shape."""
    _fleet(service, orders=1)
    h = service.headers()
    again = service.client.post(
        "/v1/depots", json={"id": "d1", "location": {"lat": 60.1, "lon": 24.9}}, headers=h
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    assert service.client.post("/v1/orders/o0/cancel", headers=h).json()["status"] == "cancelled"
    assert service.client.post("/v1/orders/o0/cancel", headers=h).status_code == 409
    missing = service.client.get("/v1/vehicles/nope", headers=h)
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "no vehicle 'nope'"
    r = service.client.post(
        "/v1/vehicles", json={"id": "v9", "depot_id": "nowhere", "shift": SHIFT}, headers=h
    )
    assert r.status_code == 422
    assert r.json()["error"]["problems"][0]["field"] == "depot_id"
    r = service.client.post("/v1/plans", json={"order_ids": ["o0", "ghost"]}, headers=h)
    assert r.status_code == 422
    assert [p["field"] for p in r.json()["error"]["problems"]] == ["order_ids[0]", "order_ids[1]"]


def test_plan_job_progress_result_geojson_and_dispatch(service: Service) -> None:
    """A job runs in the background, shows progress, returns routes and GeoJSON, and can be
    dispatched to the vehicles."""
    _fleet(service)
    h = service.headers()
    started = service.client.post("/v1/plans", json={"time_limit_s": 1}, headers=h)
    assert started.status_code == 202
    plan_id = started.json()["plan_id"]
    body = service.wait(plan_id)
    assert body["status"] == "succeeded", body["error"]
    assert body["progress"]
    served = sorted(s["order_id"] for r in body["plan"]["routes"] for s in r["stops"])
    assert served == ["o0", "o1", "o2", "o3"]
    geo = service.client.get(f"/v1/plans/{plan_id}/geojson", headers=h).json()
    assert geo["type"] == "FeatureCollection"
    assert geo["features"][0]["geometry"]["type"] == "LineString"
    events = service.client.get(f"/v1/plans/{plan_id}/events", headers=h)
    assert "event: succeeded" in events.text
    dispatched = service.client.post(f"/v1/plans/{plan_id}/dispatch", headers=h)
    assert dispatched.status_code == 200
    used = {r["vehicle_id"] for r in body["plan"]["routes"] if r["stops"]}
    for vid in used:
        assert (
            service.client.get(f"/v1/vehicles/{vid}", headers=h).json()["active_plan_id"] == plan_id
        )
    assert service.client.get("/v1/orders/o1", headers=h).json()["status"] == "dispatched"


def test_replan_and_insert(service: Service) -> None:
    """Re-plan from vehicles' positions, and insert a new order into a plan."""
    _fleet(service)
    h = service.headers()
    plan_id = service.client.post("/v1/plans", json={"time_limit_s": 1}, headers=h).json()[
        "plan_id"
    ]
    plan = service.wait(plan_id)["plan"]
    route = next(r for r in plan["routes"] if r["stops"])
    first = route["stops"][0]
    r = service.client.post(
        f"/v1/plans/{plan_id}/replan",
        json={
            "now": first["departure"],
            "time_limit_s": 1,
            "vehicles": [
                {
                    "vehicle_id": route["vehicle_id"],
                    "position": {"lat": PLACES[0][0], "lon": PLACES[0][1]},
                    "done": [first["order_id"]],
                    "on_board": [s["order_id"] for s in route["stops"]],
                }
            ],
        },
        headers=h,
    )
    assert r.status_code == 202, r.text
    again = service.wait(r.json()["plan_id"])
    assert again["status"] == "succeeded", again["error"]
    assert again["parent_plan_id"] == plan_id
    remaining = sorted(s["order_id"] for x in again["plan"]["routes"] for s in x["stops"])
    assert first["order_id"] not in remaining
    assert (
        service.client.post(
            "/v1/orders",
            json={"id": "urgent", "location": {"lat": 60.1690, "lon": 24.9450}, "demand": [1]},
            headers=h,
        ).status_code
        == 201
    )
    r = service.client.post(
        f"/v1/plans/{plan_id}/insert", json={"order_id": "urgent", "now": route["start"]}, headers=h
    )
    assert r.status_code == 202, r.text
    inserted = service.wait(r.json()["plan_id"])
    assert inserted["status"] == "succeeded", inserted["error"]
    ids = [s["order_id"] for x in inserted["plan"]["routes"] for s in x["stops"]]
    assert ids.count("urgent") == 1
    cancelled = service.client.post(f"/v1/plans/{plan_id}/cancel", headers=h)
    assert cancelled.status_code == 200
    assert service.client.post(f"/v1/plans/{plan_id}/replan", json={}, headers=h).status_code == 409


def test_vroom_problem_through_the_api(service: Service) -> None:
    """A VROOM problem posted to /v1/plans comes back as a VROOM-like solution."""
    golden = (
        Path(__file__).resolve().parents[1] / "routing" / "golden" / "vroom_matrix_problem.json"
    )
    import json

    r = service.client.post(
        "/v1/plans",
        json={"vroom": json.loads(golden.read_text()), "time_limit_s": 1},
        headers=service.headers(),
    )
    assert r.status_code == 202
    body = service.wait(r.json()["plan_id"])
    assert body["plan"]["code"] == 0
    assert body["plan"]["summary"]["unassigned"] == 1


def test_restart_keeps_plans_and_resumes_jobs(database_url: str, tmp_path: Path) -> None:
    """Plans survive a restart; a job left running by a crash runs again and finishes."""
    with running(database_url, tmp_path) as first:
        _fleet(first)
        h = first.headers()
        done_id = first.client.post("/v1/plans", json={"time_limit_s": 1}, headers=h).json()[
            "plan_id"
        ]
        first.wait(done_id)
        admin = first.admin
        pending = first.client.post("/v1/plans", json={"time_limit_s": 1}, headers=h).json()
    # Simulate a crash mid-solve: the job is left "running" in the database.
    engine = make_engine(database_url)
    with transaction(session_factory(engine)) as session:
        job = session.get(PlanJobRow, pending["job_id"])
        assert job is not None
        job.status = "running"
    engine.dispose()
    with running(database_url, tmp_path, admin=admin) as second:
        assert (
            second.client.get(f"/v1/plans/{done_id}", headers=second.headers()).json()["status"]
            == "succeeded"
        )
        resumed = second.wait(pending["plan_id"])
        assert resumed["status"] == "succeeded"


def test_organisation_settings(service: Service) -> None:
    """Admins set the time zone, branding and notification policy; a bad zone is a 422."""
    h = service.headers()
    r = service.client.patch(
        "/v1/organisation",
        json={
            "timezone": "Europe/Rome",
            "branding": {"name": "Shop", "primary_colour": "#112233"},
            "notification_policy": {"budget_per_order": 4},
        },
        headers=h,
    )
    assert r.status_code == 200, r.text
    got = service.client.get("/v1/organisation", headers=h).json()
    assert got["timezone"] == "Europe/Rome"
    assert got["branding"]["primary_colour"] == "#112233"
    assert got["notification_policy"]["budget_per_order"] == 4
    bad = service.client.patch("/v1/organisation", json={"timezone": "Mars/Olympus"}, headers=h)
    assert bad.status_code == 422
    assert bad.json()["error"]["problems"][0]["field"] == "timezone"
    policy = {"notification_policy": {"budget_per_order": "six", "delay_threshold_s": 600}}
    bad = service.client.patch("/v1/organisation", json=policy, headers=h)
    assert bad.status_code == 422
    assert {p["field"] for p in bad.json()["error"]["problems"]} == {
        "notification_policy.budget_per_order",
        "notification_policy.delay_threshold_s",
    }
    support = service.key("support")
    assert (
        service.client.patch(
            "/v1/organisation", json={}, headers=service.headers(support)
        ).status_code
        == 403
    )


def test_solve_times_reach_the_metrics(service: Service) -> None:
    """A finished job shows in the plan-job histogram."""
    _fleet(service, orders=2)
    plan_id = service.client.post(
        "/v1/plans", json={"time_limit_s": 0.5}, headers=service.headers()
    ).json()["plan_id"]
    service.wait(plan_id)
    text = service.client.get("/metrics").text
    assert 'lastmile_plan_job_seconds_count{kind="plan",status="succeeded"} 1.0' in text
