"""The dispatcher dashboard's server-side sessions through the running service: signing in
creates a session whose id (not the key) is the cookie; an expired session, a signed-out one
(even a copy of its cookie) and one whose key was revoked are refused, and an open stream
ends; form posts without the right CSRF token or from another site are refused; on SQLite
and PostgreSQL (ADR 0023)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from api.routes.dashboard import COOKIE, LOGIN_COOKIE, csrf_token
from store.dashboard_sessions import hash_token
from store.db import make_engine, session_factory, transaction
from store.schema import ApiKey, DashboardSessionRow
from tests.api.dashboard_calls import csrf_in, log_in, log_out, login_csrf, post_order
from tests.api.live_state import put_on_route
from tests.api.service import Service

pytestmark = pytest.mark.integration

#: Where the test client keeps the service's cookies.
DOMAIN = "testserver.local"


def _sessions(s: Service) -> list[DashboardSessionRow]:
    engine = make_engine(s.url)
    try:
        with session_factory(engine)() as session:
            return list(session.scalars(select(DashboardSessionRow)))
    finally:
        engine.dispose()


def _revoke_key(s: Service, key: str) -> None:
    engine = make_engine(s.url)
    try:
        with transaction(session_factory(engine)) as session:
            session.execute(
                update(ApiKey)
                .where(ApiKey.prefix == key.split("_")[1])
                .values(revoked_at=datetime.now(UTC))
            )
    finally:
        engine.dispose()


def _key_id(s: Service, key: str) -> str:
    engine = make_engine(s.url)
    try:
        with session_factory(engine)() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.prefix == key.split("_")[1]))
            assert row is not None
            return row.id
    finally:
        engine.dispose()


def _cookie(s: Service) -> str:
    value = s.client.cookies.get(COOKIE)
    assert value, "no session cookie"
    return value


def _with_cookie(s: Service, value: str) -> None:
    """The browser's jar holds only this session cookie (as a thief's would)."""
    s.client.cookies.clear()
    s.client.cookies.set(COOKIE, value, domain=DOMAIN, path="/dashboard")


def _refused(response: Any, status: int = 403) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == "forbidden"
    assert set(error) == {"code", "message", "problems"}


def test_sign_in_creates_a_session_and_the_cookie_holds_no_key(service: Service) -> None:
    s = service
    key = s.key("dispatcher")
    before = datetime.now(UTC)
    log_in(s, key)
    cookie = _cookie(s)
    assert key not in cookie
    assert key.split("_", 2)[2] not in cookie
    assert not cookie.startswith("lm_")
    (row,) = _sessions(s)
    assert row.api_key_id == _key_id(s, key)
    assert row.revoked_at is None
    # Only the id's hash is stored; an absolute expiry 12 h after sign-in (the default).
    assert row.token_hash == hash_token(cookie)
    assert cookie not in {row.id, row.token_hash}
    assert before <= row.created_at <= datetime.now(UTC)
    assert row.expires_at - row.created_at == timedelta(hours=12)
    assert s.client.get("/dashboard/state").status_code == 200
    # The session's id is no API key.
    assert s.client.get("/v1/orders", headers=s.headers(cookie)).status_code == 401


@pytest.mark.security
def test_an_expired_session_is_refused(service: Service) -> None:
    s = service
    log_in(s, s.key("dispatcher"))
    state: Any = s.client.app.state  # type: ignore[attr-defined]
    signed_in = datetime.now(UTC)
    try:
        state.auth_clock = lambda: signed_in + timedelta(hours=11, minutes=59)
        assert s.client.get("/dashboard/state").status_code == 200
        state.auth_clock = lambda: signed_in + timedelta(hours=12, minutes=1)
        r = s.client.get("/dashboard/state")
        assert r.status_code == 401
        assert "expired" in r.json()["error"]["message"]
        page = s.client.get("/dashboard")
        assert page.status_code == 401
        assert "session has ended" in page.text
        assert '<label for="key">' in page.text
    finally:
        del state.auth_clock


@pytest.mark.security
def test_sign_out_makes_the_same_cookie_useless(service: Service) -> None:
    """A copy of the cookie (a stolen one) no longer works once its session signed out."""
    s = service
    log_in(s, s.key("dispatcher"))
    stolen = _cookie(s)
    log_out(s)
    assert s.client.get("/dashboard/state").status_code == 401
    (row,) = _sessions(s)
    assert row.revoked_at is not None
    _with_cookie(s, stolen)
    assert s.client.get("/dashboard/state").status_code == 401
    assert s.client.get("/dashboard/events").status_code == 401
    page = s.client.get("/dashboard")
    assert page.status_code == 401
    assert "dashboard-map" not in page.text


@pytest.mark.security
def test_signing_in_again_ends_the_browsers_previous_session(service: Service) -> None:
    s = service
    key = s.key("dispatcher")
    log_in(s, key)
    first = _cookie(s)
    s.client.cookies.delete(LOGIN_COOKIE)
    data = {"key": key, "csrf": login_csrf_beside(s)}
    r = s.client.post("/dashboard/login", data=data, follow_redirects=False)
    assert r.status_code == 303, r.text
    second = _cookie(s)
    assert second != first
    assert s.client.get("/dashboard/state").status_code == 200
    _with_cookie(s, first)
    assert s.client.get("/dashboard/state").status_code == 401


def login_csrf_beside(s: Service) -> str:
    """A login form's token while the browser still holds a live session (the form is what
    a second tab showed before): taken in a jar without the session, then the session's
    cookie put back."""
    held = _cookie(s)
    s.client.cookies.clear()
    token = login_csrf(s)
    s.client.cookies.set(COOKIE, held, domain=DOMAIN, path="/dashboard")
    return token


@pytest.mark.security
def test_revoking_the_key_ends_the_session_and_an_open_stream(service: Service) -> None:
    s = service
    now = datetime.now(UTC)
    post_order(s, "O-7", now)
    put_on_route(s.url, "O-7", now)
    state: Any = s.client.app.state  # type: ignore[attr-defined]
    state.dashboard_poll_s = 0.05
    state.dashboard_stream_max_s = 30.0
    key = s.key("dispatcher")
    log_in(s, key)
    got: dict[str, Any] = {}

    def watch() -> None:
        started = time.monotonic()
        with s.client.stream("GET", "/dashboard/events", timeout=60) as r:
            got["status"] = r.status_code
            got["body"] = "".join(r.iter_text())
        got["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(1.0)
    _revoke_key(s, key)
    thread.join(timeout=25)
    assert not thread.is_alive(), "the stream went on after its key was revoked"
    assert got["status"] == 200
    # Ended within a few polls of the revocation, long before the stream's own end.
    assert got["seconds"] < 15, got["seconds"]
    first = next(line for line in got["body"].splitlines() if line.startswith("data: "))
    assert json.loads(first.removeprefix("data: "))["vehicles"]
    assert s.client.get("/dashboard/state").status_code == 401
    assert s.client.get("/dashboard").status_code == 401


@pytest.mark.security
def test_login_without_or_with_a_wrong_csrf_token_is_refused(service: Service) -> None:
    s = service
    key = s.key("dispatcher")
    token = login_csrf(s)
    state: Any = s.client.app.state  # type: ignore[attr-defined]
    for name, data in (
        ("no token", {"key": key}),
        ("empty token", {"key": key, "csrf": ""}),
        ("wrong token", {"key": key, "csrf": token[:-4] + "AAAA"}),
        ("another form's token", {"key": key, "csrf": f"{int(time.time())}.{'x' * 43}"}),
    ):
        r = s.client.post("/dashboard/login", data=data, follow_redirects=False)
        _refused(r)
        assert "CSRF" in r.json()["error"]["message"], name
        assert "set-cookie" not in r.headers, name
    # The right token without its pre-session cookie (another browser's form): refused.
    s.client.cookies.clear()
    _refused(s.client.post("/dashboard/login", data={"key": key, "csrf": token}))
    # A form older than its token's life: refused, even with the cookie.
    token = login_csrf(s)
    try:
        state.auth_clock = lambda: datetime.now(UTC) + timedelta(minutes=31)
        _refused(s.client.post("/dashboard/login", data={"key": key, "csrf": token}))
    finally:
        del state.auth_clock
    assert _sessions(s) == []
    # The same form, in time: signed in.
    r = s.client.post("/dashboard/login", data={"key": key, "csrf": token}, follow_redirects=False)
    assert r.status_code == 303, r.text


@pytest.mark.security
def test_logout_without_or_with_a_wrong_csrf_token_is_refused(service: Service) -> None:
    """A cross-site form cannot sign the dispatcher out (nor post anything else)."""
    s = service
    log_in(s, s.key("dispatcher"))
    cookie = _cookie(s)
    token = csrf_token(cookie)
    wrong = token[:-1] + ("1" if token[-1] == "0" else "0")
    for data in ({}, {"csrf": ""}, {"csrf": wrong}, {"csrf": cookie}):
        _refused(s.client.post("/dashboard/logout", data=data, follow_redirects=False))
    # Another session's token does not sign this one out.
    other = s.key("dispatcher")
    s.client.cookies.clear()
    log_in(s, other)
    theirs = csrf_in(s.client.get("/dashboard").text)
    _with_cookie(s, cookie)
    _refused(s.client.post("/dashboard/logout", data={"csrf": theirs}))
    assert s.client.get("/dashboard/state").status_code == 200
    assert all(row.revoked_at is None for row in _sessions(s))
    # The page's own token does.
    assert csrf_in(s.client.get("/dashboard").text) == csrf_token(cookie)
    log_out(s)
    assert s.client.get("/dashboard/state").status_code == 401


@pytest.mark.security
def test_a_cross_site_post_is_refused(service: Service) -> None:
    """With the right CSRF token still: the same-origin check stands on its own."""
    s = service
    key = s.key("dispatcher")
    token = login_csrf(s)
    evil = {"Origin": "https://evil.example"}
    r = s.client.post(
        "/dashboard/login", data={"key": key, "csrf": token}, headers=evil, follow_redirects=False
    )
    _refused(r)
    assert "cross-site" in r.json()["error"]["message"]
    assert _sessions(s) == []
    log_in(s, key)
    csrf = csrf_in(s.client.get("/dashboard").text)
    _refused(s.client.post("/dashboard/logout", data={"csrf": csrf}, headers=evil))
    assert s.client.get("/dashboard/state").status_code == 200


def test_the_bearer_header_still_reads_the_state(service: Service) -> None:
    """API clients: no session, the key in the header, checked at each request."""
    s = service
    key = s.key("dispatcher")
    assert s.client.get("/dashboard/state", headers=s.headers(key)).status_code == 200
    assert _sessions(s) == []
    _revoke_key(s, key)
    assert s.client.get("/dashboard/state", headers=s.headers(key)).status_code == 401
