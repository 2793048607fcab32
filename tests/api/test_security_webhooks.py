"""Webhooks through the running service: every tenant signs with its own secrets (created,
rotated and revoked by its admins, shown once), a ``webhook_url`` on the service's own
network is refused when the policy is saved, and what a receiver answers is never recorded.
On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from notify.channels import verify_signature
from store.db import make_engine, session_factory
from store.repo import create_organisation
from store.schema import Organisation
from tests.api.service import Service, running
from tests.notify.test_channels_http import serve, stop

pytestmark = [pytest.mark.security, pytest.mark.integration]

DEPOT = (60.1699, 24.9384)
ORDERS = {"a": (60.1665, 24.9433), "b": (60.1700, 24.9500)}
AWAKE = {"quiet_start": None, "quiet_end": None}
#: What a receiver answers that must never come back through the API.
LEAK = "db-password=Kq81-internal " * 20
WEBHOOKS = "/v1/organisation/webhook-secrets"


@dataclass
class Receiver:
    """A local webhook endpoint: keeps (order id, signature header, body) of each request and
    answers ``status`` with ``body``."""

    url: str = ""
    status: int = 204
    body: bytes = b""
    got: list[tuple[str, str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> list[tuple[str, str, bytes]]:
        with self.lock:
            return list(self.got)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with found.lock:
                found.got.append(
                    (json.loads(body)["order_id"], self.headers["X-Lastmile-Signature"], body)
                )
            self.send_response(found.status)
            self.send_header("Content-Length", str(len(found.body)))
            self.end_headers()
            self.wfile.write(found.body)

        def log_message(self, *_: Any) -> None:
            """Silence."""

    server, thread = serve(Handler)
    found.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    yield found
    stop(server, thread)


@pytest.fixture
def local_hooks(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Service]:
    """The service with its sender on, allowed to post to the local receiver."""
    monkeypatch.setenv("LASTMILE_WEBHOOK_ALLOW_PRIVATE", "true")
    with running(database_url, tmp_path) as s:
        yield s


@pytest.fixture
def service_with_sender(database_url: str, tmp_path: Path) -> Iterator[Service]:
    """The service as deployed: sender on, private addresses not allowed."""
    with running(database_url, tmp_path) as s:
        yield s


def second_tenant(s: Service, name: str = "Other shop") -> str:
    """Another organisation on the same service: its admin key."""
    engine = make_engine(s.url)
    try:
        _, key = create_organisation(session_factory(engine), name, "UTC")
    finally:
        engine.dispose()
    return key


def dispatch_one(s: Service, key: str, order_id: str, where: tuple[float, float]) -> None:
    """A depot, a van on shift, one order, planned and dispatched (which queues the
    customer's plan_confirmed notification)."""
    h = s.headers(key)
    now = datetime.now(UTC)
    shift = {
        "start": (now - timedelta(hours=2)).isoformat(),
        "end": (now + timedelta(hours=8)).isoformat(),
    }
    for path, body in (
        ("/v1/depots", {"id": "d1", "location": {"lat": DEPOT[0], "lon": DEPOT[1]}}),
        ("/v1/vehicles", {"id": "v1", "depot_id": "d1", "shift": shift}),
        ("/v1/orders", {"id": order_id, "location": {"lat": where[0], "lon": where[1]}}),
    ):
        r = s.client.post(path, json=body, headers=h)
        assert r.status_code == 201, r.text
    plan_id = s.client.post("/v1/plans", json={"time_limit_s": 0.5}, headers=h).json()["plan_id"]
    deadline = time.monotonic() + 60
    while s.client.get(f"/v1/plans/{plan_id}", headers=h).json()["status"] != "succeeded":
        assert time.monotonic() < deadline, "the plan did not succeed"
        time.sleep(0.1)
    assert s.client.post(f"/v1/plans/{plan_id}/dispatch", headers=h).status_code == 200


def set_policy(s: Service, key: str, url: str) -> None:
    policy = {**AWAKE, "default_channels": ["webhook"], "webhook_url": url}
    r = s.client.patch(
        "/v1/organisation", json={"notification_policy": policy}, headers=s.headers(key)
    )
    assert r.status_code == 200, r.text


def new_secret(s: Service, key: str, **body: Any) -> dict[str, Any]:
    r = s.client.post(WEBHOOKS, json=body, headers=s.headers(key))
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def wait_for(what: str, done: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout_s} s for {what}")
        time.sleep(0.05)


def verifies(secret: str, header: str, body: bytes) -> bool:
    return verify_signature(secret, header, body, time.time())


def test_each_tenant_signs_with_its_own_secret(local_hooks: Service, receiver: Receiver) -> None:
    """Two tenants send to the same receiver: each webhook verifies with its own tenant's
    secret and not with the other's, so neither tenant can forge the other's webhooks."""
    s = local_hooks
    keys = {"a": s.admin, "b": second_tenant(s)}
    secrets = {}
    for name, key in keys.items():
        set_policy(s, key, receiver.url)
        secrets[name] = new_secret(s, key)["secret"]
        dispatch_one(s, key, f"order-{name}", ORDERS[name])
    wait_for("a webhook from each tenant", lambda: len(receiver.received()) >= 2)
    got = {order: (header, body) for order, header, body in receiver.received()}
    assert sorted(got) == ["order-a", "order-b"]
    for name, other in (("a", "b"), ("b", "a")):
        header, body = got[f"order-{name}"]
        assert verifies(secrets[name], header, body)
        assert not verifies(secrets[other], header, body)


def test_a_secret_is_shown_once_rotated_and_revoked(service: Service) -> None:
    """The creation answer is the only one holding the secret; a second secret starts a
    rotation (the first keeps signing until ``previous_expire_at``); revoking is at once;
    another tenant's admin cannot revoke it; at most three sign at once."""
    s = service
    first = new_secret(s, s.admin)
    assert first["secret"].startswith("whsec_")
    assert (first["status"], first["previous_expire_at"]) == ("active", None)
    second = new_secret(s, s.admin, previous_valid_for_s=3_600)
    expires = datetime.fromisoformat(second["previous_expire_at"])
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)
    r = s.client.get(WEBHOOKS, headers=s.headers())
    assert r.status_code == 200
    listed = {row["id"]: row for row in r.json()}
    assert listed[first["id"]]["status"] == "rotating"
    assert listed[first["id"]]["expires_at"] == second["previous_expire_at"]
    assert listed[second["id"]]["status"] == "active"
    assert first["secret"] not in r.text
    assert second["secret"] not in r.text
    assert "secret" not in {k for row in r.json() for k in row}

    other = second_tenant(s)
    r = s.client.delete(f"{WEBHOOKS}/{first['id']}", headers=s.headers(other))
    assert r.status_code == 404
    assert s.client.get(WEBHOOKS, headers=s.headers(other)).json() == []
    assert s.client.delete(f"{WEBHOOKS}/{first['id']}", headers=s.headers()).status_code == 204
    statuses = {
        row["id"]: row["status"] for row in s.client.get(WEBHOOKS, headers=s.headers()).json()
    }
    assert statuses == {first["id"]: "revoked", second["id"]: "active"}

    new_secret(s, s.admin, previous_valid_for_s=3_600)
    new_secret(s, s.admin, previous_valid_for_s=3_600)
    r = s.client.post(WEBHOOKS, json={}, headers=s.headers())
    assert r.status_code == 409, r.text
    third = new_secret_after_immediate_expiry(s)
    assert third["status"] == "active"


def new_secret_after_immediate_expiry(s: Service) -> dict[str, Any]:
    """With ``previous_valid_for_s: 0`` the older secrets stop signing at once, so a new one
    is always possible after revoking one."""
    rows = s.client.get(WEBHOOKS, headers=s.headers()).json()
    oldest_valid = [row for row in rows if row["status"] in ("active", "rotating")][-1]
    assert (
        s.client.delete(f"{WEBHOOKS}/{oldest_valid['id']}", headers=s.headers()).status_code == 204
    )
    created = new_secret(s, s.admin, previous_valid_for_s=0)
    statuses = [row["status"] for row in s.client.get(WEBHOOKS, headers=s.headers()).json()]
    assert statuses.count("active") == 1
    assert "rotating" not in statuses
    return created


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hooks",
        "http://localhost/hooks",
        "http://[::1]/hooks",
        "http://[::ffff:127.0.0.1]/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/admin",
        "http://192.168.1.1/",
        "http://[fd00::1]/",
        "http://0.0.0.0:5432/",
    ],
)
def test_a_webhook_url_on_an_internal_address_is_refused(service: Service, url: str) -> None:
    """Saving the policy with such a URL is a 422 naming ``webhook_url``; nothing is stored."""
    s = service
    r = s.client.patch(
        "/v1/organisation", json={"notification_policy": {"webhook_url": url}}, headers=s.headers()
    )
    assert r.status_code == 422, r.text
    [problem] = r.json()["error"]["problems"]
    assert problem["field"] == "notification_policy.webhook_url"
    assert "public internet addresses" in problem["message"]
    policy = s.client.get("/v1/organisation", headers=s.headers()).json()["notification_policy"]
    assert policy.get("webhook_url") is None


def test_a_public_or_not_yet_resolvable_webhook_url_is_accepted(service: Service) -> None:
    """A name that does not resolve now is accepted (every send resolves and checks it)."""
    s = service
    for url in ("https://shop.example/hooks", "https://93.184.216.34/hooks"):
        r = s.client.patch(
            "/v1/organisation",
            json={"notification_policy": {"webhook_url": url}},
            headers=s.headers(),
        )
        assert r.status_code == 200, r.text


def test_the_operator_setting_allows_local_receivers(
    local_hooks: Service, receiver: Receiver
) -> None:
    """LASTMILE_WEBHOOK_ALLOW_PRIVATE=true (tests, the demo) lets a local URL be saved."""
    set_policy(local_hooks, local_hooks.admin, receiver.url)


def test_a_url_that_turned_internal_is_refused_when_sending(
    service_with_sender: Service, receiver: Receiver
) -> None:
    """A URL stored before the check existed (or whose name now resolves inside) is checked
    again at send time: nothing reaches the local receiver and the notification says why."""
    s = service_with_sender
    engine = make_engine(s.url)
    try:
        with engine.begin() as connection:
            policy = {**AWAKE, "default_channels": ["webhook"], "webhook_url": receiver.url}
            connection.execute(update(Organisation).values(notification_policy=policy))
    finally:
        engine.dispose()
    new_secret(s, s.admin)
    dispatch_one(s, s.admin, "order-a", ORDERS["a"])
    rows = notifications_when_done(s, "order-a")
    assert receiver.received() == []
    assert rows[0]["status"] == "dead"
    assert "public internet addresses" in rows[0]["last_error"]


def notifications_when_done(s: Service, order_id: str) -> list[dict[str, Any]]:
    """The order's notifications once none is pending or sending."""
    found: list[dict[str, Any]] = []

    def done() -> bool:
        found[:] = s.client.get(f"/v1/orders/{order_id}/notifications", headers=s.headers()).json()
        return bool(found) and all(row["status"] not in ("pending", "sending") for row in found)

    wait_for(f"order {order_id}'s notifications", done)
    return found


@pytest.mark.parametrize("status", [400, 500])
def test_the_receivers_answer_is_never_recorded(
    local_hooks: Service, receiver: Receiver, status: int
) -> None:
    """``last_error`` and every attempt's detail say the status code, never the body the
    receiver sent (which, from an internal URL, could be anything the service can reach)."""
    s = local_hooks
    receiver.status, receiver.body = status, LEAK.encode()
    set_policy(s, s.admin, receiver.url)
    new_secret(s, s.admin)
    dispatch_one(s, s.admin, "order-a", ORDERS["a"])
    wait_for("the webhook", lambda: bool(receiver.received()))
    rows = notifications_when_done(s, "order-a") if status == 400 else wait_recorded(s)
    text = json.dumps(rows)
    assert f"HTTP {status}" in text
    assert "Kq81" not in text
    assert "db-password" not in text


def wait_recorded(s: Service) -> list[dict[str, Any]]:
    """A retried notification: once its first attempt is recorded."""
    found: list[dict[str, Any]] = []

    def done() -> bool:
        found[:] = s.client.get("/v1/orders/order-a/notifications", headers=s.headers()).json()
        return bool(found) and bool(found[0]["attempts_detail"])

    wait_for("the first attempt", done)
    return found
