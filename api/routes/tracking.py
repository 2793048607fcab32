"""The customer's tracking page ``/t/{token}``: the order's progress as a short timeline, the
current arrival window in the customer's language and time zone, why it is late, delivery
instructions, and live updates over server-sent events.

Unauthenticated: the token is the secret. An unknown and a malformed token get the same 404
page; every ``/t/*`` request spends from a per-IP token bucket (429 with Retry-After when empty).
The order's live state is read as the support lookup reads it (:mod:`api.routes.support`).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.routes.support import _at, _late_minutes, _latest_route
from notify.answer import LATE_FROM_MINUTES
from notify.render import _plural, _say, catalogue, resolve_locale, window_text
from notify.triggers import Window
from store.schema import OrderRow, ProgressRow, VehicleRow

router = APIRouter(include_in_schema=False)

#: Tokens are ``secrets.token_urlsafe(20)``; anything else is not looked up.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
#: Field → most characters kept (the form refuses more, saying so).
LIMITS = {"safe_place": 200, "notes": 500, "access_code": 32}
#: A form body larger than this is refused before it is parsed.
MAX_BODY_BYTES = 4096
#: Rate limit per client IP on /t/*: a bucket of this many requests, refilled over a minute.
RATE_PER_MINUTE = 60
#: Server-sent events: poll the store this often, comment this often when nothing changed,
#: and end the stream after this long (EventSource reconnects by itself).
POLL_S = 2.0
KEEP_ALIVE_S = 15.0
STREAM_MAX_S = 600.0

_pages = Environment(
    loader=PackageLoader("api", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

STEPS = ("planned", "out", "stops", "arrived", "done")


class RateLimiter:
    """An in-memory token bucket per key (client IP), thread-safe."""

    def __init__(self, per_minute: int = RATE_PER_MINUTE) -> None:
        self.capacity = float(per_minute)
        self.refill_per_s = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """0 when allowed (one token spent), else seconds until a token is back."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, since = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - since) * self.refill_per_s)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                if len(self._buckets) > 10_000:  # forget full buckets, bounding memory
                    self._buckets = {
                        k: v for k, v in self._buckets.items() if v[0] < self.capacity - 1
                    }
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.refill_per_s


@dataclass(frozen=True, slots=True)
class Step:
    label: str
    state: str  # done | current | todo


@dataclass(frozen=True, slots=True)
class TrackingView:
    """What the customer sees of their order now (all texts in their language)."""

    lang: str
    reference: str
    status: str
    steps: tuple[Step, ...]
    window: str
    reason: str
    driver: str
    final: bool
    texts: dict[str, str] = field(default_factory=dict)

    def live(self) -> dict[str, Any]:
        """The parts the live stream pushes."""
        return {
            "status": self.status,
            "window": self.window,
            "reason": self.reason,
            "steps": [[s.label, s.state] for s in self.steps],
            "final": self.final,
        }


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _first_name(name: str) -> str:
    parts = name.split()
    return parts[0] if parts else ""


def tracking_view(session: Session, order: OrderRow, now: datetime) -> TrackingView:
    """Read the order's live state (as the support lookup does) and word it for the customer."""
    language, locale = resolve_locale(order.language)
    full = catalogue(language)
    cat: dict[str, str] = full["tracking"]
    window: tuple[datetime, datetime] | None = None
    stops_before: int | None = None
    arrived = False
    live = False
    driver = ""
    route = _latest_route(session, order)
    if route is not None and order.status == "dispatched":
        plan_id, vehicle_id = route
        progress = session.get(ProgressRow, vehicle_id)
        if progress is not None and progress.plan_id == plan_id:
            for i, stored in enumerate((progress.state or {}).get("etas", [])):
                if stored[0] == order.external_id:
                    window = (_at(stored[2]), _at(stored[3]))
                    stops_before = i
                    arrived = bool(stored[5])
                    live = True
                    break
        vehicle = session.get(VehicleRow, vehicle_id)
        if vehicle is not None:
            driver = _first_name(vehicle.driver_first_name)
    if window is None and order.status == "dispatched":
        known = (order.notify_state or {}).get("known_window")
        if isinstance(known, list) and len(known) == 2:
            window = (datetime.fromisoformat(known[0]), datetime.fromisoformat(known[1]))

    final = order.status in ("delivered", "failed", "skipped", "cancelled")
    if order.status in ("delivered", "failed", "skipped"):
        reached = 4
    elif arrived:
        reached = 3
    elif live:
        reached = 2
    elif order.status in ("planned", "dispatched"):
        reached = 0
    else:
        reached = -1
    stops_label = cat["next"]
    if stops_before:
        stops_label = _say(cat["stops"], stops=_plural(full, "stops", stops_before, locale))
    done_label = cat["delivered"] if order.status == "delivered" else cat["failed"]
    labels = (cat["planned"], cat["out"], stops_label, cat["arrived"], done_label)
    steps = tuple(
        Step(label, "done" if i < reached else "current" if i == reached else "todo")
        for i, label in enumerate(labels)
    )
    if order.status == "cancelled":
        status = str(full["answer"]["cancelled"])
        steps = ()
    elif reached < 0:
        status = str(full["answer"]["not_planned"])
    else:
        status = labels[reached]

    window_line = ""
    reason = ""
    if not final and window is not None:
        text = window_text(Window(*window), now, _zone(order.timezone), locale, full, short=False)
        window_line = _say(cat["expected"], window=text)
        late = _late_minutes(session, order) if live else None
        if late is not None and late >= LATE_FROM_MINUTES:
            minutes = _plural(full, "minutes", late, locale)
            if stops_before:
                stops = _plural(full, "stops", stops_before, locale)
                reason = _say(cat["late"], stops=stops, minutes=minutes)
            else:
                reason = _say(cat["late_only"], minutes=minutes)
    return TrackingView(
        lang=language,
        reference=order.customer_ref or order.external_id,
        status=status,
        steps=steps,
        window=window_line,
        reason=reason,
        driver=_say(cat["driver"], name=driver) if driver and not final else "",
        final=final,
        texts=cat,
    )


def _client_ip(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _limiter(request: Request) -> RateLimiter:
    state = request.app.state
    limiter: RateLimiter | None = getattr(state, "tracking_limiter", None)
    if limiter is None:
        limiter = state.tracking_limiter = RateLimiter()
    return limiter


def _too_many(request: Request) -> Response | None:
    wait = _limiter(request).take(_client_ip(request))
    if wait <= 0:
        return None
    html = _pages.get_template("message.html").render(
        lang="en",
        title="429",
        text=str(catalogue("en")["tracking"]["too_many"]),
    )
    return HTMLResponse(html, status_code=429, headers={"Retry-After": str(math.ceil(wait))})


def _not_found() -> HTMLResponse:
    cat = catalogue("en")["tracking"]
    html = _pages.get_template("message.html").render(
        lang="en", title=cat["not_found"], text=cat["not_found_text"]
    )
    return HTMLResponse(html, status_code=404)


def _order(session: Session, token: str) -> OrderRow | None:
    if not _TOKEN.fullmatch(token):
        return None
    return session.scalar(select(OrderRow).where(OrderRow.tracking_token == token))


def _page(
    view: TrackingView,
    token: str,
    instructions: dict[str, Any],
    *,
    message: str = "",
    error: bool = False,
    status_code: int = 200,
) -> HTMLResponse:
    html = _pages.get_template("tracking.html").render(
        view=view,
        t=view.texts,
        order_line=_say(view.texts["order"], reference=view.reference),
        token=token,
        instructions=instructions,
        limits=LIMITS,
        message=message,
        error=error,
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


@router.get("/t/{token}", response_class=HTMLResponse)
def tracking_page(token: str, request: Request) -> Response:
    """The tracking page (the same 404 for unknown and malformed tokens)."""
    refused = _too_many(request)
    if refused is not None:
        return refused
    with request.app.state.sessions() as session:
        order = _order(session, token)
        if order is None:
            return _not_found()
        view = tracking_view(session, order, datetime.now(UTC))
        saved = "saved" in request.query_params
        return _page(
            view,
            token,
            order.delivery_instructions or {},
            message=view.texts["saved"] if saved else "",
        )


@router.post("/t/{token}/instructions", response_class=HTMLResponse)
async def save_instructions(token: str, request: Request) -> Response:
    """Store the customer's delivery instructions; oversized input is refused, not cut."""
    refused = _too_many(request)
    if refused is not None:
        return refused
    raw = b""
    too_large = False
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            too_large = True
            break
    fields = {} if too_large else parse_qs(raw.decode("utf-8", errors="replace"))
    given = {name: (fields.get(name) or [""])[0].strip() for name in LIMITS}
    return await run_in_threadpool(_save, request, token, given, too_large)


def _save(request: Request, token: str, given: dict[str, str], too_large: bool) -> Response:
    with request.app.state.sessions() as session, session.begin():
        order = _order(session, token)
        if order is None:
            return _not_found()
        view = tracking_view(session, order, datetime.now(UTC))
        cat = view.texts
        problem = cat["too_large"] if too_large else ""
        for name, limit in LIMITS.items():
            if not problem and len(given[name]) > limit:
                problem = _say(cat["too_long"], field=cat[name], max=limit)
        if problem:
            shown = {k: v[: LIMITS[k]] for k, v in given.items()}
            return _page(view, token, shown, message=problem, error=True, status_code=422)
        kept = {k: v for k, v in given.items() if v}
        order.delivery_instructions = kept or None
    return Response(status_code=303, headers={"Location": f"/t/{token}?saved=1"})


def _snapshot(request: Request, token: str) -> dict[str, Any] | None:
    with request.app.state.sessions() as session:
        order = _order(session, token)
        if order is None:
            return None
        return tracking_view(session, order, datetime.now(UTC)).live()


def _sse(data: dict[str, Any]) -> str:
    return f"event: update\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@router.get("/t/{token}/events")
async def tracking_events(token: str, request: Request) -> Response:
    """Server-sent events: the window and status, sent when they change (polled every 2 s)."""
    refused = _too_many(request)
    if refused is not None:
        return refused
    first = await run_in_threadpool(_snapshot, request, token)
    if first is None:
        return _not_found()
    state = request.app.state
    poll_s: float = getattr(state, "tracking_poll_s", POLL_S)
    max_s: float = getattr(state, "tracking_stream_max_s", STREAM_MAX_S)

    async def stream() -> AsyncIterator[str]:
        last = first
        yield "retry: 5000\n" + _sse(first)
        started = quiet_since = time.monotonic()
        while not last.get("final") and time.monotonic() - started < max_s:
            await asyncio.sleep(poll_s)
            if await request.is_disconnected():
                return
            now = await run_in_threadpool(_snapshot, request, token)
            if now is None:
                return
            if now != last:
                last = now
                quiet_since = time.monotonic()
                yield _sse(now)
            elif time.monotonic() - quiet_since >= KEEP_ALIVE_S:
                quiet_since = time.monotonic()
                yield ": keep-alive\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
