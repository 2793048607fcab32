"""The demo's day put into the running service through its public API, as a shop's systems
would: branding and notification policy, the depot, the vans, the orders with customers who
speak different languages; then plan, dispatch, and register the OwnTracks devices."""

from __future__ import annotations

import time
import unicodedata
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import numpy as np

from domain.problem import Order, PlanningProblem

#: Languages of the demo's customers (Helsinki has many visitors), with their shares.
LANGUAGES = {"en": 0.5, "it": 0.1, "fr": 0.1, "es": 0.1, "nl": 0.1, "ru": 0.1}
FIRST_NAMES = ("Aino", "Marco", "Chloé", "Lucía", "Sanne", "Olga", "Emma", "Leo", "Noah", "Mia")
LAST_NAMES = ("Virtanen", "Rossi", "Martin", "García", "de Vries", "Ivanova", "Smith", "Korhonen")
DRIVERS = ("Jari", "Mikko", "Sara", "Anna", "Pekka", "Laura", "Timo", "Elina", "Ville", "Heidi")


class DemoApiError(RuntimeError):
    """The service refused a step of the demo's set-up (its answer is in the message)."""


def _check(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 400:
        raise DemoApiError(f"{what}: HTTP {response.status_code} {response.text[:500]}")
    return response.json() if response.content else None


@dataclass(frozen=True, slots=True)
class DispatchedDay:
    plan_id: str
    order_ids: tuple[str, ...]
    unassigned: tuple[tuple[str, str], ...]
    routes: tuple[dict[str, Any], ...]


def demo_phone(order_id: str) -> str:
    """A customer's mobile number, made from the order id (not from the day's random stream,
    so the day is the same with or without phones)."""
    return f"+35840{zlib.crc32(order_id.encode()) % 10_000_000:07d}"


def order_body(order: Order, rng: np.random.Generator, timezone: str) -> dict[str, Any]:
    """The API body of a generated order, with a customer who has a name, an address for
    e-mail and a language."""
    first = str(rng.choice(FIRST_NAMES))
    last = str(rng.choice(LAST_NAMES))
    language = str(rng.choice(list(LANGUAGES), p=list(LANGUAGES.values())))
    # E-mail local parts stay ASCII: many servers refuse anything else (ours does).
    handle = (
        unicodedata.normalize("NFKD", f"{first}.{last}".lower().replace(" ", ""))
        .encode("ascii", "ignore")
        .decode()
    )
    return {
        "id": order.id,
        "location": {"lat": order.location.lat, "lon": order.location.lon},
        "windows": [
            {"start": w.start.isoformat(), "end": w.end.isoformat()} for w in order.windows
        ],
        "service_s": order.service_s,
        "demand": list(order.demand),
        "customer_ref": order.customer_ref,
        "contact": {
            "name": f"{first} {last}",
            "email": f"{handle}+{order.id}@customers.demo",
            "phone": demo_phone(order.id),
        },
        "language": language,
        "timezone": timezone,
    }


def set_up(
    client: httpx.Client,
    problem: PlanningProblem,
    *,
    timezone: str,
    webhook_url: str,
    seed: int,
    shop_name: str = "Kauppa Demo",
) -> str:
    """Branding, policy (e-mail and the shop's webhook), the shop's webhook signing secret,
    depot, vans and orders. Returns the secret (the API shows it only this once)."""
    rng = np.random.default_rng(seed)
    _check(
        client.patch(
            "/v1/organisation",
            json={
                "branding": {
                    "name": shop_name,
                    "sender_email": "deliveries@kauppa.demo",
                    "primary_colour": "#0b57d0",
                },
                "notification_policy": {
                    "default_channels": ["email", "webhook"],
                    "webhook_url": webhook_url,
                },
            },
        ),
        "organisation",
    )
    created = _check(client.post("/v1/organisation/webhook-secrets", json={}), "webhook secret")
    secret: str = created["secret"]
    for depot in problem.depots:
        _check(
            client.post(
                "/v1/depots",
                json={
                    "id": depot.id,
                    "name": "Central depot",
                    "location": {"lat": depot.location.lat, "lon": depot.location.lon},
                },
            ),
            f"depot {depot.id}",
        )
    depot_id = problem.depots[0].id
    for k, vehicle in enumerate(problem.vehicles):
        _check(
            client.post(
                "/v1/vehicles",
                json={
                    "id": vehicle.id,
                    "depot_id": depot_id,
                    "shift": {
                        "start": vehicle.shift.start.isoformat(),
                        "end": vehicle.shift.end.isoformat(),
                    },
                    "capacity": list(vehicle.capacity),
                    "driver_first_name": DRIVERS[k % len(DRIVERS)],
                },
            ),
            f"vehicle {vehicle.id}",
        )
    for order in problem.orders:
        _check(client.post("/v1/orders", json=order_body(order, rng, timezone)), order.id)
    return secret


def wait_for_plan(client: httpx.Client, plan_id: str, timeout_s: float = 300.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body: dict[str, Any] = _check(client.get(f"/v1/plans/{plan_id}"), "plan")
        if body["status"] in ("succeeded", "failed", "cancelled"):
            if body["status"] != "succeeded":
                raise DemoApiError(f"plan {plan_id} {body['status']}: {body.get('error')}")
            return body
        time.sleep(0.2)
    raise DemoApiError(f"plan {plan_id} not solved in {timeout_s:.0f} s")


def plan_and_dispatch(client: httpx.Client, time_limit_s: float) -> DispatchedDay:
    started = _check(client.post("/v1/plans", json={"time_limit_s": time_limit_s}), "plan")
    body = wait_for_plan(client, started["plan_id"])
    return dispatch(client, body)


def dispatch(client: httpx.Client, body: dict[str, Any]) -> DispatchedDay:
    plan_id = body["id"]
    _check(client.post(f"/v1/plans/{plan_id}/dispatch"), "dispatch")
    plan = body["plan"]
    return DispatchedDay(
        plan_id,
        tuple(s["order_id"] for r in plan["routes"] for s in r["stops"]),
        tuple((u["order_id"], u.get("reason", "")) for u in plan.get("unassigned", [])),
        tuple(r for r in plan["routes"] if r["stops"]),
    )


def register_owntracks(client: httpx.Client, vehicle_id: str, device: str) -> tuple[str, str]:
    """An OwnTracks phone for the van, registered by its device name: the server makes its
    topic ``owntracks/{MQTT user}/{device}`` (ADR 0025). Returns (user, device)."""
    body = _check(
        client.post(
            f"/v1/vehicles/{vehicle_id}/devices",
            json={"protocol": "owntracks", "external_device_id": device},
        ),
        f"device of {vehicle_id}",
    )
    user, _, name = str(body["external_device_id"]).partition("/")
    return user, name


def insert_urgent(
    client: httpx.Client,
    plan_id: str,
    order: dict[str, Any],
) -> DispatchedDay:
    """A customer's urgent order in the middle of the day: stored, slotted into the plan with
    the least change, and the changed plan dispatched (the vans get their new routes)."""
    _check(client.post("/v1/orders", json=order), f"order {order['id']}")
    job = _check(
        client.post(f"/v1/plans/{plan_id}/insert", json={"order_id": order["id"]}), "insert"
    )
    body = wait_for_plan(client, job["plan_id"])
    return dispatch(client, body)


def urgent_window(now: datetime, minutes: tuple[int, int] = (25, 70)) -> dict[str, str]:
    return {
        "start": (now + timedelta(minutes=minutes[0])).isoformat(),
        "end": (now + timedelta(minutes=minutes[1])).isoformat(),
    }
