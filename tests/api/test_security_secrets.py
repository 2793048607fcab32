"""Secrets never leave in a response: the service's SMTP password, SMS tokens and MQTT
password, stored API key and device password hashes, and keys, device passwords and the
tenant's webhook signing secrets once they have been shown at creation. Every GET of the API
is called with real ids (plus the pages, probes, metrics, docs and some errors) and no body or
header holds any of them."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from api.settings import Settings
from store.db import make_engine, session_factory
from store.repo import create_organisation
from store.schema import ApiKey, DeviceRow, WebhookSecretRow
from tests.api.live_state import dispatch, tracking_token
from tests.api.service import Service

pytestmark = [pytest.mark.security, pytest.mark.integration]

SMTP_PASSWORD = "smtp-pw-Q7x2Lk9"
SMS_TOKEN = "sms-token-Vb3Mn8"
TWILIO_TOKEN = "twilio-token-Hd5Rt1"
MQTT_PASSWORD = "mqtt-pw-Jc8Nf3"
SETTINGS_SECRETS = (SMTP_PASSWORD, SMS_TOKEN, TWILIO_TOKEN, MQTT_PASSWORD)
DEPOT = (60.1699, 24.9384)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def configured(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Service]:
    """The service with every secret setting set and its sender on. MQTT is off (dispatch
    needs a connected broker to publish routes); its URL, password included, is still set."""
    for name, value in {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(_closed_port()),
        "SMTP_USERNAME": "mailer",
        "SMTP_PASSWORD": SMTP_PASSWORD,
        "SMS_URL": f"http://127.0.0.1:{_closed_port()}/sms",
        "SMS_TOKEN": SMS_TOKEN,
        "SMS_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
    }.items():
        monkeypatch.setenv(f"LASTMILE_{name}", value)
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        plan_time_limit_s=1.0,
        mqtt=False,
        mqtt_url=f"mqtt://lastmile:{MQTT_PASSWORD}@127.0.0.1:{_closed_port()}",
    )
    with TestClient(create_app(settings)) as client:
        engine = make_engine(database_url)
        try:
            _, admin = create_organisation(session_factory(engine), "Secret carrier", "UTC")
        finally:
            engine.dispose()
        yield Service(client, admin, database_url)


def _stored_hashes(url: str) -> list[str]:
    """What the store keeps of keys, passwords and webhook secrets."""
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            keys = list(session.scalars(select(ApiKey.key_hash)))
            devices = list(session.scalars(select(DeviceRow.password_hash)))
            keys += list(session.scalars(select(WebhookSecretRow.secret)))
    finally:
        engine.dispose()
    # A device hash's salt and digest, each alone, are as telling as the whole.
    parts = [p for h in devices for p in h.split("$")[3:]]
    return [*keys, *devices, *parts]


def _day(s: Service) -> tuple[list[str], str]:
    """Organisation settings, webhook signing secrets (one rotated out), a dispatched plan,
    keys and a device: (every key, password or secret shown once at creation, the plan id)."""
    h = s.headers()
    r = s.client.patch(
        "/v1/organisation",
        json={
            "branding": {"name": "Acme", "sender": "orders@acme.example"},
            "notification_policy": {"webhook_url": "https://shop.example/hooks"},
        },
        headers=h,
    )
    assert r.status_code == 200, r.text
    shown = []
    for _ in range(2):
        r = s.client.post("/v1/organisation/webhook-secrets", json={}, headers=h)
        assert r.status_code == 201, r.text
        shown.append(r.json()["secret"])
    orders = {
        "S-1": {"location": {"lat": 60.1665, "lon": 24.9433}, "channels": ["email", "webhook"]},
        "S-2": {"location": {"lat": 60.1700, "lon": 24.9500}, "channels": ["sms", "push"]},
    }
    for order in orders.values():
        order["contact"] = {"email": "c@example.com", "phone": "+358401234567"}
    dispatch(s, orders, DEPOT)  # registers an OsmAnd device too
    shown += [s.admin, s.key("dispatcher"), s.key("support"), s.key("device", "v1")]
    r = s.client.post("/v1/vehicles/v1/devices", json={}, headers=h)
    assert r.status_code == 201, r.text
    shown.append(r.json()["mqtt_password"])
    plans = s.client.get("/v1/plans", headers=h).json()
    return shown, plans[0]["id"]


def _paths(s: Service, plan_id: str) -> list[str]:
    """Every GET in the schema with real ids, and the GETs outside it."""
    organisation = s.client.get("/v1/organisation", headers=s.headers()).json()["id"]
    ids = {
        "{vehicle_id}": "v1",
        "{order_id}": "S-1",
        "{plan_id}": plan_id,
        "{organisation_id}": organisation,
        "{part}": "photo",
    }
    query = {"/v1/support/lookup": "?q=S-1", "/v1/reports/wismo": "?days=7"}
    schema = s.client.get("/openapi.json").json()
    paths = []
    for path, items in schema["paths"].items():
        if "get" in items:
            real = re.sub(r"\{[^}]+\}", lambda m: ids[m.group(0)], path)
            paths.append(real + query.get(path, ""))
    token = tracking_token(s.url, "S-1")
    hidden = ["/openapi.json", "/docs", "/redoc", f"/t/{token}", "/dashboard/state"]
    return paths + hidden + ["/v1/orders/nope", "/v1/plans/nope/geojson", "/t/not-a-token"]


def _leaks(response: httpx.Response, secrets: list[str]) -> list[str]:
    text = response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    return [secret for secret in secrets if secret in text]


def test_no_response_holds_a_secret(configured: Service) -> None:
    s = configured
    shown, plan_id = _day(s)
    secrets = [*SETTINGS_SECRETS, *_stored_hashes(s.url), *shown]
    assert len(secrets) > len(SETTINGS_SECRETS) + 8
    answers = {"/readyz": s.client.get("/readyz")}
    for path in _paths(s, plan_id):
        answers[path] = s.client.get(path, headers=s.headers())
    answers["bad order"] = s.client.post("/v1/orders", json={"id": 1}, headers=s.headers())
    answers["bad key"] = s.client.get("/v1/plans", headers=s.headers(f"{s.admin}x"))
    assert answers["/v1/keys"].status_code == 200
    assert len(answers["/v1/keys"].json()) == 4
    assert len(answers["/v1/organisation/webhook-secrets"].json()) == 2
    assert answers["/v1/organisation"].status_code == 200
    assert "lastmile_http_requests_total" in answers["/metrics"].text
    leaks = {path: _leaks(r, secrets) for path, r in answers.items()}
    assert {path: found for path, found in leaks.items() if found} == {}


def test_readyz_reports_an_unreachable_broker_without_its_password(tmp_path: Path) -> None:
    """With MQTT on and the broker down, /readyz says so, naming no credential."""
    url = f"mqtt://lastmile:{MQTT_PASSWORD}@127.0.0.1:{_closed_port()}"
    settings = Settings(data_dir=tmp_path, mqtt=True, mqtt_url=url, sender_enabled=False)
    with TestClient(create_app(settings)) as client:
        r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["broker"].startswith("unreachable")
    assert _leaks(r, [MQTT_PASSWORD, "lastmile:"]) == []


def test_settings_do_not_print_their_secrets() -> None:
    """Settings as they would be logged or shown in a traceback keep secrets masked."""
    settings = Settings(
        smtp_password=SMTP_PASSWORD,
        sms_token=SMS_TOKEN,
        sms_twilio_auth_token=TWILIO_TOKEN,
    )
    for text in (repr(settings), str(settings), str(settings.model_dump())):
        assert [s for s in SETTINGS_SECRETS if s in text] == []
