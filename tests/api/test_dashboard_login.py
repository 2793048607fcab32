"""The dispatcher dashboard's sign-in through the running service: the login form and its
CSRF token, keys refused (wrong, revoked, without the dispatcher role, or from another site),
the session cookie, the page it opens and logging out; on SQLite and PostgreSQL. The session
itself (expiry, sign-out on the server, CSRF refusals) is in test_dashboard_sessions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from api.routes.dashboard import COOKIE, LOGIN_COOKIE
from store.db import make_engine, session_factory, transaction
from store.schema import ApiKey
from tests.api.dashboard_calls import csrf_in, log_in, login_csrf, post_order, stop_in
from tests.api.live_state import put_on_route
from tests.api.service import Service
from tests.api.test_service import SHIFT


@pytest.mark.integration
def test_login_form_without_cookie(service: Service) -> None:
    r = service.client.get("/dashboard")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<label for="key">' in r.text
    assert 'action="/dashboard/login"' in r.text
    assert "dashboard-map" not in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    # The form's CSRF token, bound to a short-lived pre-session cookie.
    assert '<input type="hidden" name="csrf" value="' in r.text
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith(f"{LOGIN_COOKIE}=")
    for attribute in ("httponly", "samesite=strict", "path=/dashboard", "max-age=1800"):
        assert attribute in cookie


@pytest.mark.integration
def test_wrong_key_is_401_with_the_form(service: Service) -> None:
    s = service
    csrf = login_csrf(s)
    for wrong in ("lm_000000000000_not-a-key", "hello", ""):
        data = {"key": wrong, "csrf": csrf}
        r = s.client.post("/dashboard/login", data=data, follow_redirects=False)
        assert r.status_code == 401, wrong
        assert 'role="alert"' in r.text
        assert '<label for="key">' in r.text
        assert "set-cookie" not in r.headers
    data = {"key": "hello", "csrf": csrf}
    assert "not accepted" in s.client.post("/dashboard/login", data=data).text


@pytest.mark.integration
def test_support_and_device_keys_are_403(service: Service) -> None:
    s = service
    vehicle = {"id": "v1", "start": {"lat": 60.17, "lon": 24.94}, "shift": SHIFT}
    assert s.client.post("/v1/vehicles", json=vehicle, headers=s.headers()).status_code == 201
    csrf = login_csrf(s)
    for role, on in (("support", None), ("device", "v1")):
        data = {"key": s.key(role, on), "csrf": csrf}
        r = s.client.post("/dashboard/login", data=data, follow_redirects=False)
        assert r.status_code == 403
        assert "needs the dispatcher role" in r.text
        assert "set-cookie" not in r.headers
        headers = s.headers(s.key(role, on))
        assert s.client.get("/dashboard/state", headers=headers).status_code == 403


@pytest.mark.integration
def test_login_from_another_site_is_refused(service: Service) -> None:
    s = service
    key = s.key("dispatcher")
    csrf = login_csrf(s)
    for origin, proxied_host, status in (
        ("https://evil.example", None, 403),
        ("null", None, 403),
        ("http://testserver", None, 303),
        # Behind a proxy that rewrites Host, the browser's host arrives as X-Forwarded-Host.
        ("https://dispatch.example", "dispatch.example", 303),
    ):
        headers = {"Origin": origin}
        if proxied_host is not None:
            headers["X-Forwarded-Host"] = proxied_host
        r = s.client.post(
            "/dashboard/login",
            data={"key": key, "csrf": csrf},
            headers=headers,
            follow_redirects=False,
        )
        assert r.status_code == status, origin
        assert ("set-cookie" in r.headers) == (status == 303)
        if status == 403:
            assert r.json()["error"]["code"] == "forbidden"
        else:
            s.client.cookies.delete(COOKIE)
            csrf = login_csrf(s)


@pytest.mark.integration
def test_dispatcher_key_sets_the_cookie_and_opens_the_page(service: Service) -> None:
    s = service
    now = datetime.now(UTC)
    post_order(s, "O-7", now, customer_ref="</script><script>alert(1)</script>")
    put_on_route(s.url, "O-7", now, driver_first_name="Lucia")
    key = s.key("dispatcher")
    data = {"key": key, "csrf": login_csrf(s)}
    r = s.client.post("/dashboard/login", data=data, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/dashboard"
    set_cookies = r.headers.get_list("set-cookie")
    (cookie,) = [c.lower() for c in set_cookies if c.startswith(f"{COOKIE}=")]
    for attribute in ("httponly", "samesite=strict", "path=/dashboard"):
        assert attribute in cookie
    assert "secure" not in cookie  # plain http (tests); https below
    # The session's id, never the key; the login form's cookie is dropped.
    assert not any(key in c or key.split("_", 2)[2] in c for c in set_cookies)
    (dropped,) = [c.lower() for c in set_cookies if c.startswith(f"{LOGIN_COOKIE}=")]
    assert "max-age=0" in dropped

    page = s.client.get("/dashboard")
    assert page.status_code == 200, page.text
    html = page.text
    for needle in (
        'id="dashboard-map"',
        '<table id="stops">',
        "<caption>",
        '<th scope="col">Live ETA</th>',
        'id="unassigned"',
        'id="feed"',
        'id="counts"',
        "/static/vendor/leaflet/leaflet.js",
        "/static/dashboard.js",
    ):
        assert needle in html, needle
    # The customer's reference is data: escaped inside the embedded state, never markup.
    assert "<script>alert(1)" not in html
    start = html.index('id="initial-state">') + len('id="initial-state">')
    state = json.loads(html[start : html.index("</script>", start)])
    assert stop_in(state, "O-7")["ref"] == "</script><script>alert(1)</script>"

    for path in ("/static/dashboard.js", "/static/dashboard.css"):
        assert s.client.get(path).status_code == 200, path


@pytest.mark.integration
def test_cookie_is_secure_over_https(service: Service) -> None:
    s = service
    r = s.client.post(
        "https://testserver/dashboard/login",
        data={"key": s.key("dispatcher"), "csrf": login_csrf(s)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    (cookie,) = [c for c in r.headers.get_list("set-cookie") if c.startswith(f"{COOKIE}=")]
    assert "secure" in cookie.lower()
    # The login form's own cookie too.
    s.client.cookies.clear()
    assert "secure" in s.client.get("https://testserver/dashboard").headers["set-cookie"].lower()


@pytest.mark.integration
def test_logout_clears_the_cookie(service: Service) -> None:
    s = service
    log_in(s, s.key("dispatcher"))
    assert s.client.get("/dashboard/state").status_code == 200
    csrf = csrf_in(s.client.get("/dashboard").text)
    r = s.client.post("/dashboard/logout", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith(f'{COOKIE}=""') or cookie.startswith(f"{COOKIE}=;")
    assert "max-age=0" in cookie
    assert "path=/dashboard" in cookie
    assert s.client.get("/dashboard/state").status_code == 401
    assert '<label for="key">' in s.client.get("/dashboard").text


@pytest.mark.integration
def test_a_revoked_key_logs_the_browser_out(service: Service) -> None:
    s = service
    key = s.key("dispatcher")
    log_in(s, key)
    engine = make_engine(s.url)
    try:
        with transaction(session_factory(engine)) as session:
            row = session.scalar(select(ApiKey).where(ApiKey.prefix == key.split("_")[1]))
            assert row is not None
            row.revoked_at = datetime.now(UTC)
    finally:
        engine.dispose()
    r = s.client.get("/dashboard")
    assert r.status_code == 401
    assert "session has ended" in r.text
    (forgotten,) = [c for c in r.headers.get_list("set-cookie") if c.startswith(f"{COOKIE}=")]
    assert "max-age=0" in forgotten.lower()
    # The login form comes back, ready for another key.
    assert '<label for="key">' in r.text
    assert s.client.get("/dashboard/state").status_code == 401
