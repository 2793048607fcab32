"""The dispatcher dashboard ``/dashboard``: today's routes and vehicles on a map, every stop
with its planned and live ETA and whether it is late, the orders left unassigned and why, and
the notification feed; live over server-sent events. What it shows is built by
:func:`api.dashboard_state.dashboard_state`; this module serves it and signs the browser in.

Browsers send no ``Authorization`` header on navigation or EventSource, so the page signs in
once with an API key (checked as the API does, :func:`api.auth.caller_for_key`) and gets a
server-side session (:mod:`store.dashboard_sessions`, ADR 0023): the HttpOnly,
SameSite=Strict cookie scoped to ``/dashboard`` holds only the session's random id, never the
key. Every request resolves it to a live session whose key is still unrevoked, so signing out,
the session's expiry (``dashboard_session_hours``) or revoking the key shuts the dashboard at
once and an open stream within one poll. ``/dashboard/state`` and its stream also take the
bearer header, for API clients.

Every form post (log in, log out) carries a CSRF token in a hidden field, compared in constant
time, besides the same-origin check: the login form's is bound to a short-lived pre-session
cookie (double submit), the sign-out form's is derived from the session's id. A post without
it, or with a wrong one, is a 403 in the API's error shape.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api.auth import Caller, caller_for_key, check_role
from api.dashboard_state import dashboard_state
from api.deps import service_now
from api.errors import ApiError
from api.limits import read_within
from api.routes.tracking import MAX_BODY_BYTES, _client_ip, _pages
from api.sse import POLL_S, STREAM_MAX_S, change_stream
from api.stream_caps import RETRY_AFTER_S, StreamCaps
from store.dashboard_sessions import create_session, resolve_session, revoke_session
from store.db import transaction

router = APIRouter(include_in_schema=False)

#: The session cookie: the session's random id (never the API key).
COOKIE = "lastmile_dashboard"
#: The login form's pre-session cookie: the CSRF token the form carries (double submit).
LOGIN_COOKIE = "lastmile_dashboard_login"
COOKIE_PATH = "/dashboard"
#: The hidden field every dashboard form posts its CSRF token in.
CSRF_FIELD = "csrf"
#: How long a served login form may be posted (its pre-session cookie's life), in seconds.
LOGIN_TOKEN_S = 1800
#: Admin is always admitted too (as everywhere in the API).
ROLES = ("dispatcher",)
#: The pages load only our own scripts and styles: no inline script can run even if some
#: data slipped through unescaped.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _silent_s(request: Request) -> float:
    """When a vehicle shows "no signal": the service's setting (the ingester's threshold)."""
    return float(request.app.state.settings.silent_after_s)


# --- authentication ----------------------------------------------------------------------


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _auth_now(request: Request) -> datetime:
    """Sessions' and login forms' time: the wall clock, not the service's (a session's hours
    are real hours, also in the demo's sped-up day); a test may set ``app.state.auth_clock``."""
    clock = getattr(request.app.state, "auth_clock", None)
    return clock() if clock is not None else datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Credential:
    """What a request signed in with, checked again on every poll of a stream: an API key
    (the bearer header) or a dashboard session's id (the cookie)."""

    kind: Literal["key", "session"]
    value: str = field(repr=False)


def _session_caller(request: Request, token: str) -> Caller:
    """The caller of the live session the cookie names, or 401."""
    with request.app.state.sessions() as session:
        live = resolve_session(session, token, _auth_now(request))
    if live is None:
        raise ApiError(
            401,
            "unauthorized",
            "no dashboard session: it expired, was signed out or its key was revoked; "
            "log in at /dashboard",
        )
    return Caller(live.organisation_id, live.role, live.api_key_id)


def _check(request: Request, credential: Credential) -> Caller:
    """The dispatcher (or admin) the credential signs in as now; 401 / 403 as the API."""
    if credential.kind == "key":
        return check_role(caller_for_key(request, credential.value), *ROLES)
    return check_role(_session_caller(request, credential.value), *ROLES)


def _dispatcher(request: Request) -> tuple[Caller, Credential]:
    """The caller (dispatcher or admin) and what it signed in with, from the bearer header
    (API clients) or else the session cookie (the browser); 401 / 403 as the API answers."""
    key = _bearer(request)
    if key is not None:
        credential = Credential("key", key)
    else:
        token = request.cookies.get(COOKIE)
        if not token:
            raise ApiError(
                401, "unauthorized", "log in at /dashboard or send Authorization: Bearer"
            )
        credential = Credential("session", token)
    return _check(request, credential), credential


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session's forms: an HMAC of the session's id, which only the
    cookie holds (neither is stored; another site can read neither)."""
    digest = hmac.new(session_token.encode(), b"lastmile dashboard csrf", hashlib.sha256)
    return digest.hexdigest()


def _same_token(given: str | None, expected: str | None) -> bool:
    """Both present and equal, compared in constant time."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def _login_token_age(request: Request, token: str | None) -> float | None:
    """Seconds since the login form's token was issued, or None if it is malformed, from
    the future or older than :data:`LOGIN_TOKEN_S` (the cookie's own expiry is the
    browser's to keep; this one is the server's)."""
    if not token or len(token) > 100:
        return None
    issued, _, nonce = token.partition(".")
    if not issued.isdigit() or len(nonce) < 32:
        return None
    age = _auth_now(request).timestamp() - int(issued)
    return age if -60 <= age <= LOGIN_TOKEN_S else None


def _new_login_token(request: Request) -> str:
    """A login form's CSRF token: when it was issued, and 256 random bits."""
    return f"{int(_auth_now(request).timestamp())}.{secrets.token_urlsafe(32)}"


def _same_origin(request: Request) -> bool:
    """A form posted from another site is refused (SameSite guards the cookie, not the login
    form itself). Requests without an Origin header (old browsers, scripts) pass. A proxy may
    rewrite Host, so X-Forwarded-Host counts too: a cross-site form cannot set that header."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    hosts = {request.headers.get("host"), request.headers.get("x-forwarded-host")}
    return urlsplit(origin).netloc in hosts - {None, ""}


def _html(html: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            # Not no-referrer: browsers then send our own forms' Origin as "null".
            "Referrer-Policy": "same-origin",
        },
    )


def _login_page(request: Request, message: str = "", status_code: int = 200) -> HTMLResponse:
    """The login form with its CSRF token: the pre-session cookie's own while it has more
    than half its life left (a retry after a refused key sets no cookie), else a new one."""
    held = request.cookies.get(LOGIN_COOKIE)
    age = _login_token_age(request, held)
    reuse = held is not None and age is not None and age < LOGIN_TOKEN_S / 2
    token = held if held is not None and reuse else _new_login_token(request)
    response = _html(
        _pages.get_template("dashboard_login.html").render(message=message, csrf=token),
        status_code=status_code,
    )
    if not reuse:
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            max_age=LOGIN_TOKEN_S,
            path=COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return response


def _forget(response: Response) -> Response:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


def _refusal(exc: ApiError) -> str:
    if exc.status == 403:
        return "This key cannot open the dashboard: it needs the dispatcher role."
    return "That key was not accepted: it is unknown, revoked or mistyped."


def _cross_site(action: str) -> ApiError:
    return ApiError(
        403, "forbidden", f"{action} from the dashboard's own page: cross-site posts are refused"
    )


async def _form(request: Request) -> dict[str, str] | None:
    """The posted form's fields (the first value of each), or None past the body limit."""
    raw = await read_within(request, MAX_BODY_BYTES)
    if raw is None:
        return None
    fields = parse_qs(raw.decode("utf-8", errors="replace"))
    return {name: values[0] for name, values in fields.items() if values}


def _start_session(request: Request, caller: Caller, previous: str | None) -> str:
    """A new session for the caller's key (the cookie's id); the browser's previous session,
    if it still had one, is signed out in the same transaction."""
    now = _auth_now(request)
    lifetime = timedelta(hours=request.app.state.settings.dashboard_session_hours)
    with transaction(request.app.state.sessions) as session:
        if previous:
            revoke_session(session, previous, now)
        created = create_session(session, caller.organisation_id, caller.key_id, now, lifetime)
        return created.token


def _end_session(request: Request, token: str) -> None:
    with transaction(request.app.state.sessions) as session:
        revoke_session(session, token, _auth_now(request))


# --- routes ------------------------------------------------------------------------------


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(request: Request) -> Response:
    """The dashboard, or the login form when there is no session or it is no longer live."""
    token = request.cookies.get(COOKIE)
    if not token:
        return _login_page(request)
    try:
        caller = _check(request, Credential("session", token))
    except ApiError as exc:
        message = (
            _refusal(exc)
            if exc.status == 403
            else "Your dashboard session has ended (signed out, expired, or its key was "
            "revoked): log in again."
        )
        return _forget(_login_page(request, message, exc.status))
    with request.app.state.sessions() as session:
        state = dashboard_state(
            session, caller.organisation_id, service_now(request), _silent_s(request)
        )
    page = _pages.get_template("dashboard.html").render(state=state, csrf=csrf_token(token))
    return _html(page)


@router.post("/dashboard/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the key as the API would and start a session: its id goes in the cookie, the
    key itself nowhere in the browser."""
    if not _same_origin(request):
        raise _cross_site("log in")
    form = await _form(request)
    if form is None:
        return _login_page(request, "That is too long to be an API key.", 413)
    login_token = request.cookies.get(LOGIN_COOKIE)
    fresh = _login_token_age(request, login_token) is not None
    if not fresh or not _same_token(form.get(CSRF_FIELD), login_token):
        raise ApiError(
            403,
            "forbidden",
            "the login form's CSRF token is missing, wrong or expired: open /dashboard "
            "and log in again",
        )
    key = form.get("key", "").strip()
    if not key:
        return _login_page(request, "Enter an API key.", 401)
    try:
        caller = await run_in_threadpool(lambda: check_role(caller_for_key(request, key), *ROLES))
    except ApiError as exc:
        return _login_page(request, _refusal(exc), exc.status)
    token = await run_in_threadpool(_start_session, request, caller, request.cookies.get(COOKIE))
    response = Response(status_code=303, headers={"Location": "/dashboard"})
    # No Max-Age: the cookie goes with the browser session; the server ends the session at
    # its expiry (dashboard_session_hours) whatever the browser keeps.
    response.set_cookie(
        COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


@router.post("/dashboard/logout")
async def logout(request: Request) -> Response:
    """Sign the session out on the server (a copy of the cookie no longer works) and forget
    the cookie."""
    if not _same_origin(request):
        raise _cross_site("log out")
    form = await _form(request)
    if form is None:
        raise ApiError(413, "too_large", f"request body over {MAX_BODY_BYTES} bytes")
    token = request.cookies.get(COOKIE)
    if not token or not _same_token(form.get(CSRF_FIELD), csrf_token(token)):
        raise ApiError(
            403,
            "forbidden",
            "the sign-out form's CSRF token is missing or wrong: open /dashboard and log out there",
        )
    await run_in_threadpool(_end_session, request, token)
    return _forget(Response(status_code=303, headers={"Location": "/dashboard"}))


@router.get("/dashboard/state")
def state(request: Request) -> JSONResponse:
    """The dashboard's state as JSON (cookie or bearer header)."""
    caller, _ = _dispatcher(request)
    with request.app.state.sessions() as session:
        data = dashboard_state(
            session, caller.organisation_id, service_now(request), _silent_s(request)
        )
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


def _snapshot(request: Request, key: Credential) -> dict[str, Any] | None:
    """The state now, or None once the credential no longer signs in: the key revoked, or
    the session signed out, expired or its key revoked (the stream then ends)."""
    try:
        caller = _check(request, key)
    except ApiError:
        return None
    with request.app.state.sessions() as session:
        return dashboard_state(
            session, caller.organisation_id, service_now(request), _silent_s(request)
        )


@router.get("/dashboard/events")
async def events(request: Request) -> Response:
    """Server-sent events: the whole state whenever it changes (the store is polled). A
    stream over the open-stream caps (:mod:`api.stream_caps`) gets 429 with Retry-After."""
    caller, key = await run_in_threadpool(_dispatcher, request)
    first = await run_in_threadpool(_snapshot, request, key)
    if first is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key")
    app_state = request.app.state
    caps: StreamCaps = app_state.stream_caps
    slot = await run_in_threadpool(
        caps.acquire, "dashboard", _client_ip(request), caller.organisation_id
    )
    if slot is None:
        message = "too many live streams open; close some or try again later"
        return JSONResponse(
            {"error": {"code": "too_many_streams", "message": message, "problems": []}},
            status_code=429,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return change_stream(
        request,
        first,
        lambda: _snapshot(request, key),
        poll_s=getattr(app_state, "dashboard_poll_s", POLL_S),
        max_s=getattr(app_state, "dashboard_stream_max_s", STREAM_MAX_S),
        hold=slot,
    )
