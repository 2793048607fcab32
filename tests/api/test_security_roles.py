"""Every route's role rule, proven by calling it: each operation of the OpenAPI schema (and
each route kept out of it) with no key, a bad or revoked key, and a key of every role.

The allowed roles are read from the route's own ``require(...)`` dependency
(:class:`api.auth.RoleCheck`), so the test follows the code; a route with no role check must
be listed in ``PUBLIC`` or ``OWN_AUTH`` with why, so a new route that forgot its check fails
here. Authorisation does not depend on the database, so this runs on SQLite only.

A device key is bound to one vehicle: the matrix's device key is for the vehicle the dummy
path ids name, and every operation a device may call must name a vehicle in its path, where a
device key for another vehicle (or for none, from before keys were bound) gets 403.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastapi.routing
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import update

from api.app import create_app
from api.auth import RoleCheck
from api.routes import dashboard
from api.settings import Settings
from store.db import make_engine, session_factory, transaction
from store.schema import ApiKey
from tests.api.service import Service, running
from tests.api.test_service import SHIFT

pytestmark = pytest.mark.security

ROLES = ("dispatcher", "support", "device", "admin")
#: What _call puts in every path parameter; the matrix's device key is for this vehicle.
DUMMY_ID = "nope-1"
#: The drivers' app's routes (under a vehicle: 404 for any key but the vehicle's own).
DRIVERS_APP = tuple(f"/v1/vehicles/{{vehicle_id}}/{rest}" for rest in ("stops", "actions"))
#: Operations anyone may call, and why that is safe.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "liveness probe: answers ok, nothing else",
    (
        "GET",
        "/readyz",
    ): "readiness probe: component states only (no secrets: test_security_secrets)",
    ("GET", "/metrics"): "Prometheus scrape: request counts and timings by route template",
    ("GET", "/osmand"): "OsmAnd / Traccar Client send no API key; the device identifier the "
    "server issued (128 random bits, test_security_tenancy) is what identifies the vehicle",
    ("POST", "/osmand"): "as GET /osmand",
    ("GET", "/driver"): "the drivers' app's shell: no data until a device key signs in",
    ("GET", "/driver/sw.js"): "the app's service worker: static code",
    ("GET", "/driver/manifest.webmanifest"): "the app's manifest: static",
}
#: Routes outside the schema that check a credential themselves, and which roles they admit
#: (None: not an API key at all).
OWN_AUTH: dict[tuple[str, str], tuple[str, ...] | None] = {
    ("GET", "/t/{token}"): None,  # the tracking token (test_security_tracking_tokens)
    ("POST", "/t/{token}/instructions"): None,
    ("GET", "/t/{token}/events"): None,
    # The tracking page's chat: the token is the credential (test_tracking_chat).
    ("GET", "/t/{token}/messages"): None,
    ("POST", "/t/{token}/messages"): None,
    # The proof shown on the tracking page: the token again (test_driver_api).
    ("GET", "/t/{token}/proof/photo"): None,
    ("GET", "/t/{token}/proof/signature"): None,
    # The login form; the data needs a live session (test_dashboard_sessions).
    ("GET", "/dashboard"): None,
    ("POST", "/dashboard/login"): None,  # checks the key it is given, as the API does
    ("POST", "/dashboard/logout"): None,  # signs out the cookie's own session (CSRF-checked)
    # These take the bearer header as well as the cookie: tried like the API below.
    ("GET", "/dashboard/state"): dashboard.ROLES,
    ("GET", "/dashboard/events"): dashboard.ROLES,
    # Twilio sends no API key: its signature with the tenant's auth token is checked before
    # anything is read (test_inbound_twilio).
    ("POST", "/v1/inbound/twilio/{organisation_id}/sms"): None,
    # The generic SMS gateway signs like our own webhooks (test_inbound_twilio).
    ("POST", "/v1/inbound/sms/{organisation_id}"): None,
    # Mailgun signs its posts with the tenant's signing key (test_inbound_email).
    ("POST", "/v1/inbound/mailgun/{organisation_id}/email"): None,
    # WhatsApp: the verify token answers the challenge; X-Hub-Signature-256 signs messages
    # with the tenant's app secret (test_inbound_whatsapp).
    ("GET", "/v1/inbound/whatsapp/{organisation_id}"): None,
    ("POST", "/v1/inbound/whatsapp/{organisation_id}"): None,
}

#: Operations that hand out or change credentials and tenant-wide settings: admin only, and
#: kept so (checked against each route's own rule by test_credential_operations_are_admin_only).
ADMIN_ONLY = {
    ("POST", "/v1/keys"),
    ("GET", "/v1/keys"),
    ("PATCH", "/v1/organisation"),
    ("POST", "/v1/organisation/webhook-secrets"),
    ("GET", "/v1/organisation/webhook-secrets"),
    ("DELETE", "/v1/organisation/webhook-secrets/{secret_id}"),
}

APP = create_app(Settings(data_dir=Path("unused"), mqtt=False))
SCHEMA = APP.openapi()


def _routes() -> dict[tuple[str, str], Dependant]:
    """(method, path) -> the route's dependencies as the app runs them. FastAPI 0.16x keeps
    included routers as such and resolves prefixes and router dependencies per request;
    iter_route_contexts gives those effective routes (older versions list them flat)."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    candidates: Iterable[Any] = contexts(APP.routes) if contexts is not None else APP.routes
    found: dict[tuple[str, str], Dependant] = {}
    for route in candidates:
        if isinstance(getattr(route, "original_route", route), APIRoute):
            for method in route.methods:
                found[(method, route.path)] = route.dependant
    return found


ROUTES = _routes()


def required_roles(dependant: Dependant) -> tuple[str, ...] | None:
    """The roles the route's RoleCheck dependencies admit (all must pass), or None."""
    checks: list[RoleCheck] = []
    pending = list(dependant.dependencies)
    while pending:
        dependency = pending.pop()
        if isinstance(dependency.call, RoleCheck):
            checks.append(dependency.call)
        pending.extend(dependency.dependencies)
    if not checks:
        return None
    allowed = set(checks[0].roles)
    for check in checks[1:]:
        allowed &= set(check.roles)
    return tuple(sorted(allowed))


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    roles: tuple[str, ...]
    query: dict[str, Any]
    body: bool

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _dummy(schema: dict[str, Any]) -> Any:
    kinds = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
    return 1 if "integer" in kinds or "number" in kinds else "x"


def _operations() -> list[Operation]:
    """Every operation with a role rule: the schema's, then the hidden ones that have one."""
    out: list[Operation] = []
    for path, items in SCHEMA["paths"].items():
        for method, spec in items.items():
            roles = required_roles(ROUTES[(method.upper(), path)])
            if roles is None:
                continue
            query = {
                p["name"]: _dummy(p.get("schema", {}))
                for p in spec.get("parameters", [])
                if p["in"] == "query" and p.get("required")
            }
            out.append(Operation(method.upper(), path, roles, query, "requestBody" in spec))
    for (method, path), roles in OWN_AUTH.items():
        if roles is not None:
            out.append(Operation(method, path, roles, {}, False))
    return out


OPERATIONS = _operations()


def test_every_route_has_a_role_check_or_says_why_not() -> None:
    """A route with no RoleCheck must be listed as public or as checking its own credential;
    a listed route must exist and must not have a RoleCheck after all (a stale entry)."""
    unlisted = [
        f"{method} {path}"
        for (method, path), route in ROUTES.items()
        if required_roles(route) is None and (method, path) not in PUBLIC | OWN_AUTH
    ]
    assert unlisted == [], "routes without a role check: add require(...) or list them here"
    listed = PUBLIC.keys() | OWN_AUTH.keys()
    assert sorted(listed - ROUTES.keys()) == []
    assert [k for k in listed if required_roles(ROUTES[k]) is not None] == []
    in_schema = {(m.upper(), p) for p, items in SCHEMA["paths"].items() for m in items}
    assert in_schema <= ROUTES.keys()
    assert {(o.method, o.path) for o in OPERATIONS} | PUBLIC.keys() | OWN_AUTH.keys() >= in_schema


def test_credential_operations_are_admin_only() -> None:
    """Keys, the organisation's settings and its webhook signing secrets: only an admin key
    (a dispatcher or support key that could read a webhook secret could forge webhooks)."""
    declared = {(o.method, o.path): o.roles for o in OPERATIONS}
    assert {op: declared.get(op) for op in ADMIN_ONLY} == dict.fromkeys(ADMIN_ONLY, ("admin",))


def test_every_role_is_a_role_keys_can_have() -> None:
    """A typo in require("dispatchr") would lock everyone but admin out, silently."""
    assert {r for o in OPERATIONS for r in o.roles} <= set(ROLES)


@dataclass
class Keyed:
    service: Service
    keys: dict[str, str]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyed]:
    """One service for the whole matrix, a key per role and a revoked admin key."""
    data = tmp_path_factory.mktemp("roles")
    url = f"sqlite:///{data / 'lastmile.db'}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LASTMILE_SENDER_ENABLED", "false")
        with running(url, data) as s:
            state: Any = s.client.app.state  # type: ignore[attr-defined]
            state.dashboard_poll_s = 0.02
            state.dashboard_stream_max_s = 0.1
            state.driver_poll_s = 0.02
            state.driver_stream_max_s = 0.1
            for vehicle in (DUMMY_ID, "other-1"):
                body = {"id": vehicle, "start": {"lat": 60.17, "lon": 24.94}, "shift": SHIFT}
                r = s.client.post("/v1/vehicles", json=body, headers=s.headers())
                assert r.status_code == 201, r.text
            keys = {role: s.key(role) for role in ROLES if role not in ("admin", "device")}
            keys["device"] = s.key("device", DUMMY_ID)
            keys["other vehicle's device"] = s.key("device", "other-1")
            keys["admin"] = s.admin
            keys["revoked"] = s.key("admin")
            keys["unbound device"] = s.key("admin")
            engine = make_engine(url)
            try:
                with transaction(session_factory(engine)) as session:
                    session.execute(
                        update(ApiKey)
                        .where(ApiKey.prefix == keys["revoked"].split("_")[1])
                        .values(revoked_at=datetime.now(UTC))
                    )
                    # A device key from before keys were bound to a vehicle.
                    session.execute(
                        update(ApiKey)
                        .where(ApiKey.prefix == keys["unbound device"].split("_")[1])
                        .values(role="device")
                    )
            finally:
                engine.dispose()
            yield Keyed(s, keys)


def _call(client: TestClient, op: Operation, key: str | None) -> int:
    path = re.sub(r"\{[^}]+\}", DUMMY_ID, op.path)
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    extra: dict[str, Any] = {"json": {}} if op.body else {}
    response = client.request(op.method, path, params=op.query, headers=headers, **extra)
    status: int = response.status_code
    return status


@pytest.mark.integration
@pytest.mark.parametrize("op", OPERATIONS, ids=str)
def test_each_role_gets_what_the_route_declares(keyed: Keyed, op: Operation) -> None:
    """No key, a malformed key, a revoked key: 401. A role the route does not admit: 403.
    A role it admits (admin always): past authorisation, whatever the dummy ids then give."""
    client = keyed.service.client
    answers = {
        "no key": _call(client, op, None),
        "not a key": _call(client, op, "lm_000000000000_nope"),
        "revoked": _call(client, op, keyed.keys["revoked"]),
    }
    for role in ROLES:
        answers[role] = _call(client, op, keyed.keys[role])
    expected_refusals = {"no key": 401, "not a key": 401, "revoked": 401}
    for role in ROLES:
        if role != "admin" and role not in op.roles:
            expected_refusals[role] = 403
    assert {k: answers[k] for k in expected_refusals} == expected_refusals, answers
    admitted = {k: v for k, v in answers.items() if k not in expected_refusals}
    assert "admin" in admitted
    assert all(v not in (401, 403) for v in admitted.values()), answers


DEVICE_OPERATIONS = [op for op in OPERATIONS if "device" in op.roles]


def test_device_operations_each_name_a_vehicle() -> None:
    """A device key's binding is checked against the path's vehicle: an operation admitting
    devices without one would let a key act beyond its vehicle."""
    assert DEVICE_OPERATIONS, "no operation admits device keys: the binding test tests nothing"
    assert [str(op) for op in DEVICE_OPERATIONS if "{vehicle_id}" not in op.path] == []


@pytest.mark.integration
@pytest.mark.parametrize("op", DEVICE_OPERATIONS, ids=str)
def test_a_device_key_is_refused_for_another_vehicle(keyed: Keyed, op: Operation) -> None:
    """The same operation, path and body that the vehicle's own device key gets past
    authorisation with: 403 for another vehicle's device key and for one bound to none."""
    client = keyed.service.client
    assert _call(client, op, keyed.keys["device"]) not in (401, 403)
    # The drivers' app's own routes answer as for an unknown vehicle (ADR 0030): a phone
    # learns nothing of another van, not even that it exists.
    refused = 404 if op.path.startswith(DRIVERS_APP) else 403
    for name in ("other vehicle's device", "unbound device"):
        assert _call(client, op, keyed.keys[name]) == refused, name


@pytest.mark.integration
@pytest.mark.parametrize("key", sorted(PUBLIC), ids=" ".join)
def test_public_operations_need_no_key(keyed: Keyed, key: tuple[str, str]) -> None:
    method, path = key
    assert keyed.service.client.request(method, path).status_code not in (401, 403)
