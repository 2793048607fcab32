"""The dispatcher dashboard ``/dashboard``: today's routes and vehicles on a map, every stop
with its planned and live ETA and whether it is late, the orders left unassigned and why, and
the notification feed; live over server-sent events. What it shows is built by
:func:`api.dashboard_state.dashboard_state`; this module serves it and signs the browser in.

Browsers send no ``Authorization`` header on navigation or EventSource, so the page logs in
once with an API key and keeps the key in an HttpOnly, SameSite=Strict cookie scoped to
``/dashboard``. Every request checks the key as the API does (:func:`api.auth.caller_for_key`),
so revoking it shuts the dashboard at once and an open stream within one poll.
``/dashboard/state`` also takes the bearer header, for API clients.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api.auth import Caller, caller_for_key, check_role
from api.dashboard_state import dashboard_state
from api.deps import service_now
from api.errors import ApiError
from api.routes.tracking import MAX_BODY_BYTES, _pages
from api.sse import POLL_S, STREAM_MAX_S, change_stream

router = APIRouter(include_in_schema=False)

COOKIE = "lastmile_dashboard"
COOKIE_PATH = "/dashboard"
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


def _dispatcher(request: Request) -> tuple[Caller, str]:
    """The caller (dispatcher or admin) and its key, from the bearer header (API clients) or
    else the cookie (the browser); 401 / 403 as the API answers."""
    key = _bearer(request) or request.cookies.get(COOKIE)
    if not key:
        raise ApiError(401, "unauthorized", "log in at /dashboard or send Authorization: Bearer")
    return check_role(caller_for_key(request, key), *ROLES), key


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


def _login_page(message: str = "", status_code: int = 200) -> HTMLResponse:
    return _html(
        _pages.get_template("dashboard_login.html").render(message=message),
        status_code=status_code,
    )


def _forget(response: Response) -> Response:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


def _refusal(exc: ApiError) -> str:
    if exc.status == 403:
        return "This key cannot open the dashboard: it needs the dispatcher role."
    return "That key was not accepted: it is unknown, revoked or mistyped."


# --- routes ------------------------------------------------------------------------------


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(request: Request) -> Response:
    """The dashboard, or the login form when the cookie is missing or no longer valid."""
    key = request.cookies.get(COOKIE)
    if not key:
        return _login_page()
    try:
        caller = check_role(caller_for_key(request, key), *ROLES)
    except ApiError as exc:
        return _forget(_login_page(_refusal(exc), exc.status))
    with request.app.state.sessions() as session:
        state = dashboard_state(
            session, caller.organisation_id, service_now(request), _silent_s(request)
        )
    return _html(_pages.get_template("dashboard.html").render(state=state))


@router.post("/dashboard/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the key as the API would and keep it in the dashboard's cookie."""
    if not _same_origin(request):
        return _login_page("Log in from the dashboard's own page.", 403)
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            return _login_page("That is too long to be an API key.", 413)
    key = (parse_qs(raw.decode("utf-8", errors="replace")).get("key") or [""])[0].strip()
    if not key:
        return _login_page("Enter an API key.", 401)
    try:
        await run_in_threadpool(lambda: check_role(caller_for_key(request, key), *ROLES))
    except ApiError as exc:
        return _login_page(_refusal(exc), exc.status)
    response = Response(status_code=303, headers={"Location": "/dashboard"})
    # No Max-Age: the key lives as long as the browser session (a dispatcher's working day).
    response.set_cookie(
        COOKIE,
        key,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/dashboard/logout")
def logout(request: Request) -> Response:
    if not _same_origin(request):
        return _login_page("Log out from the dashboard's own page.", 403)
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


def _snapshot(request: Request, key: str) -> dict[str, Any] | None:
    """The state now, or None once the key is revoked (the stream then ends)."""
    try:
        caller = check_role(caller_for_key(request, key), *ROLES)
    except ApiError:
        return None
    with request.app.state.sessions() as session:
        return dashboard_state(
            session, caller.organisation_id, service_now(request), _silent_s(request)
        )


@router.get("/dashboard/events")
async def events(request: Request) -> Response:
    """Server-sent events: the whole state whenever it changes (the store is polled)."""
    _, key = await run_in_threadpool(_dispatcher, request)
    first = await run_in_threadpool(_snapshot, request, key)
    if first is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key")
    app_state = request.app.state
    return change_stream(
        request,
        first,
        lambda: _snapshot(request, key),
        poll_s=getattr(app_state, "dashboard_poll_s", POLL_S),
        max_s=getattr(app_state, "dashboard_stream_max_s", STREAM_MAX_S),
    )
