"""No customer data in the logs: a realistic day through the running service (orders with
names, phones, e-mails and delivery instructions; plan, dispatch, fixes over /osmand, a
driver event, support lookups and a contact, the tracking page, notifications whose e-mail
and SMS channels fail) with every logger at DEBUG, and no log record holding any of it.

The uvicorn access log is not in play under the test client; what it would hold is proven
separately (query strings and tracking tokens are cut from it: :mod:`api.log_privacy`).
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select

from api.app import create_app
from api.log_privacy import AccessLogPrivacy, redact_path
from api.settings import Settings
from store.db import make_engine, session_factory
from store.schema import NotificationAttemptRow, OrderRow
from tests.api.live_state import dispatch, osmand_id
from tests.api.service import Service, running

pytestmark = pytest.mark.security

DEPOT = (60.1699, 24.9384)
CUSTOMERS: dict[str, dict[str, Any]] = {
    "P-1": {
        "location": {"lat": 60.16653, "lon": 24.94327},
        "contact": {
            "name": "Aurora Virtanen",
            "phone": "+358401110001",
            "email": "aurora@v.example",
        },
        "customer_ref": "SHOP-1001",
    },
    "P-2": {
        "location": {"lat": 60.17004, "lon": 24.95011},
        "contact": {"name": "Onni Korhonen", "phone": "+358402220002", "email": "onni@k.example"},
        "customer_ref": "SHOP-1002",
    },
}
INSTRUCTIONS = {
    "safe_place": "Behind the blue shed",
    "notes": "Dog named Rekku",
    "access_code": "ZK-7Q",  # not digits: ids are hex and timings decimal
}


def _pii(tokens: list[str]) -> list[str]:
    """Every string that would identify or locate a customer, as it could appear in a log."""
    found: list[str] = [*INSTRUCTIONS.values(), *tokens]
    for order in CUSTOMERS.values():
        contact = order["contact"]
        found += [contact["name"], *contact["name"].split(), contact["email"]]
        found += [contact["phone"], contact["phone"].lstrip("+"), contact["phone"][4:]]
        for axis in ("lat", "lon"):
            value = order["location"][axis]
            found += [str(value), f"{value:.4f}"]
    return found


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def failing_channels(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Service]:
    """The service with its sender on and e-mail and SMS configured towards closed ports."""
    monkeypatch.setenv("LASTMILE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("LASTMILE_SMTP_PORT", str(_closed_port()))
    monkeypatch.setenv("LASTMILE_SMTP_SECURITY", "none")
    monkeypatch.setenv("LASTMILE_SMTP_SENDER", "noreply@lastmile.example")
    monkeypatch.setenv("LASTMILE_SMS_URL", f"http://127.0.0.1:{_closed_port()}/sms")
    monkeypatch.setenv("LASTMILE_SMS_TOKEN", "sms-token")
    monkeypatch.setenv("LASTMILE_SMS_FROM", "Lastmile")
    with running(database_url, tmp_path) as s:
        yield s


def _every_logger_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    """Root and every logger created so far at DEBUG (caplog restores them), except that
    SQLAlchemy's engine log stays at INFO: at DEBUG it prints every result row, which is SQL
    echo by design and no log the service writes. At INFO it prints each statement and its
    parameters, which the engine hides (store.db.make_engine)."""
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        level = logging.INFO if name.startswith("sqlalchemy.engine") else logging.DEBUG
        caplog.set_level(level, logger=name)


def _wait_for(what: str, done: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout_s} s for {what}")
        time.sleep(0.05)


def _attempts(url: str) -> int:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            return len(list(session.scalars(select(NotificationAttemptRow))))
    finally:
        engine.dispose()


def _tokens(url: str) -> dict[str, str]:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            return {o.external_id: o.tracking_token for o in session.scalars(select(OrderRow))}
    finally:
        engine.dispose()


def _record_text(record: logging.LogRecord) -> str:
    """What a handler could write of the record: message, raw args, traceback."""
    parts = [str(record.msg), repr(record.args), record.getMessage()]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.exc_text:
        parts.append(record.exc_text)
    # SQLAlchemy's statement timings ("[cached since 0.7319s ago]") are not data, and their
    # digits once matched the tail of a customer's phone number.
    return _TIMING.sub("", "\n".join(parts))


_TIMING = re.compile(r"\[(?:cached since|generated in) [0-9.e-]+s(?: ago)?\]")


def _from_the_test_client(record: logging.LogRecord) -> bool:
    """httpx logs each request the test itself sends through TestClient (query strings
    included); those lines are the test's, not the service's."""
    return record.name.startswith("httpx") and "http://testserver/" in record.getMessage()


@pytest.mark.integration
def test_a_days_logs_hold_no_customer_data(
    failing_channels: Service, caplog: pytest.LogCaptureFixture
) -> None:
    s = failing_channels
    _every_logger_at_debug(caplog)
    h = s.headers()
    r = s.client.patch(
        "/v1/organisation",
        json={
            "branding": {"name": "Acme", "sender": "orders@acme.example"},
            "notification_policy": {"quiet_start": None, "quiet_end": None},
        },
        headers=h,
    )
    assert r.status_code == 200, r.text
    orders = {k: {**v, "service_s": 60, "channels": ["email", "sms"]} for k, v in CUSTOMERS.items()}
    stops = dispatch(s, orders, DEPOT)
    tokens = _tokens(s.url)

    # The driver's phone reports over OsmAnd, from the depot towards the first stop.
    now = datetime.now(UTC)
    first = CUSTOMERS[stops[0]]["location"]
    device_id = osmand_id(s)
    for k in range(5):
        where = (
            DEPOT[0] + (first["lat"] - DEPOT[0]) * k / 4,
            DEPOT[1] + (first["lon"] - DEPOT[1]) * k / 4,
        )
        at = now - timedelta(seconds=60 * (5 - k))
        r = s.client.get(
            "/osmand",
            params={
                "id": device_id,
                "lat": where[0],
                "lon": where[1],
                "timestamp": int(at.timestamp()),
            },
        )
        assert r.status_code in (200, 400), r.text

    # The customer of the second stop leaves instructions on the tracking page.
    r = s.client.post(f"/t/{tokens[stops[1]]}/instructions", data=INSTRUCTIONS)
    assert r.status_code == 200, r.text
    assert s.client.get(f"/t/{tokens[stops[1]]}").status_code == 200

    # Support finds the orders by phone, e-mail and name fragments, and records a contact.
    support = s.key("support")
    for order in CUSTOMERS.values():
        for q in (order["contact"]["phone"], order["contact"]["email"], order["customer_ref"]):
            r = s.client.get("/v1/support/lookup", params={"q": q}, headers=s.headers(support))
            assert r.status_code == 200, r.text
    r = s.client.post(
        "/v1/support/contacts",
        json={
            "order_id": stops[1],
            "channel": "phone",
            "note": f"{CUSTOMERS[stops[1]]['contact']['name']} called from "
            f"{CUSTOMERS[stops[1]]['contact']['phone']}",
        },
        headers=s.headers(support),
    )
    assert r.status_code == 201, r.text

    # The driver marks the first stop delivered; messages go out through failing channels.
    device = s.key("device", "v1")
    r = s.client.post(
        "/v1/vehicles/v1/events",
        json={"order_id": stops[0], "kind": "delivered"},
        headers=s.headers(device),
    )
    assert r.status_code == 201, r.text
    s.client.app.state.sender.poke()  # type: ignore[attr-defined]
    _wait_for("a failed delivery attempt", lambda: _attempts(s.url) >= 2)
    for order_id in stops:
        r = s.client.get(f"/v1/orders/{order_id}/notifications", headers=h)
        assert r.status_code == 200, r.text

    records = [r for r in caplog.records if not _from_the_test_client(r)]
    assert records, "nothing was logged at all: the capture is not working"
    pii = _pii(list(tokens.values()))
    leaks = [
        (record.name, text, record.getMessage()[:200])
        for record in records
        for text in pii
        if text in _record_text(record)
    ]
    loggers = sorted({name for name, _, _ in leaks})
    shown = "\n".join(f"{name}: {text!r} in {line!r}" for name, text, line in leaks[:10])
    assert leaks == [], f"customer data logged by {loggers}:\n{shown}"


# --- the access log -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/v1/support/lookup?q=%2B358401110001", "/v1/support/lookup?…"),
        ("/v1/support/lookup?q=aurora%40v.example", "/v1/support/lookup?…"),
        ("/osmand?id=dev-1&lat=60.16653&lon=24.94327", "/osmand?…"),
        ("/t/AbCdEfGhIjKlMnOpQrStUvWxYz0", "/t/…"),
        ("/t/AbCdEfGhIjKlMnOpQrStUvWxYz0/events", "/t/…/events"),
        ("/t/AbCdEfGhIjKlMnOpQrStUvWxYz0/instructions?x=1", "/t/…/instructions?…"),
        ("/v1/orders/P-1", "/v1/orders/P-1"),
        ("/healthz", "/healthz"),
    ],
)
def test_access_log_paths_lose_query_strings_and_tracking_tokens(path: str, shown: str) -> None:
    """uvicorn logs each request's path with its query: support's lookups carry a customer's
    phone or e-mail there, OsmAnd a position, and /t/ paths the token that opens an order."""
    assert redact_path(path) == shown


def test_the_access_log_filter_is_installed_and_survives_uvicorns_logging_setup(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """create_app installs the filter on uvicorn.access; uvicorn's own logging configuration
    (done when it starts) keeps it; a record as uvicorn writes it comes out redacted."""
    access = logging.getLogger("uvicorn.access")
    app = create_app(Settings(data_dir=tmp_path, mqtt=False))
    uvicorn.Config(app).configure_logging()
    assert any(isinstance(f, AccessLogPrivacy) for f in access.filters)
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    access.addHandler(caplog.handler)
    try:
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "10.0.0.1:5555",
            "GET",
            "/v1/support/lookup?q=%2B358401110001",
            "1.1",
            200,
        )
    finally:
        access.removeHandler(caplog.handler)
    [record] = [r for r in caplog.records if r.name == "uvicorn.access"]
    assert "358401110001" not in record.getMessage()
    assert "/v1/support/lookup?…" in record.getMessage()
