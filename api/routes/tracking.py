"""The customer's tracking page ``/t/{token}``: the order's progress as a short timeline, the
current arrival window in the customer's language and time zone, why it is late, delivery
instructions, and live updates over server-sent events.

Unauthenticated: the token is the secret. An unknown and a malformed token get the same 404
page; every ``/t/*`` request counts against a per-IP rate limit shared by the service's
processes (:mod:`api.rate_limits`; 429 with Retry-After when spent), and the live stream
takes a slot under the open-stream caps (:mod:`api.stream_caps`; 429 when full).
The order's live state is read as the support lookup reads it (:mod:`api.routes.support`).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import service_now
from api.limits import read_within
from api.proofs import proof_block
from api.rate_limits import RateLimit
from api.routes.plans import route_messages
from api.routes.support import _at, _late_minutes, _latest_route
from api.sse import POLL_S, STREAM_MAX_S, change_stream
from api.stream_caps import RETRY_AFTER_S, StreamCaps
from api.tracking_map import MapView, Tracks, map_view, roads_around
from notify.answer import LATE_FROM_MINUTES
from notify.render import (
    SHIPPED_LANGUAGES,
    _plural,
    _say,
    catalogue,
    resolve_locale,
    window_text,
)
from notify.triggers import Window
from store.schema import EventRow, OrderRow, PlanRow, ProgressRow, VehicleRow
from telematics.mqtt import PublishError, publish_checked
from telematics.topics import route_topic

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

#: Tokens are ``secrets.token_urlsafe(20)``; anything else is not looked up.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
#: Field → most characters kept (the form refuses more, saying so).
LIMITS = {"safe_place": 200, "notes": 500, "access_code": 32}
#: A form body larger than this is refused before it is parsed.
MAX_BODY_BYTES = 4096
#: Rate limit per client IP on /t/*: this many requests within any minute (all processes).
RATE_PER_MINUTE = 60

_pages = Environment(
    loader=PackageLoader("api", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

STEPS = ("planned", "out", "stops", "arrived", "done")


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
    #: None once the order is final (nothing left to watch).
    map: MapView | None = None

    def live(self) -> dict[str, Any]:
        """The parts the live stream pushes."""
        return {
            "status": self.status,
            "window": self.window,
            "reason": self.reason,
            "steps": [[s.label, s.state] for s in self.steps],
            "final": self.final,
            "map": self.map.live() if self.map is not None else None,
        }


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _first_name(name: str) -> str:
    parts = name.split()
    return parts[0] if parts else ""


def tracking_view(
    session: Session, order: OrderRow, now: datetime, tracks: Tracks | None = None
) -> TrackingView:
    """Read the order's live state (as the support lookup does) and word it for the customer."""
    language, locale = resolve_locale(order.language)
    full = catalogue(language)
    cat: dict[str, str] = full["tracking"]
    window: tuple[datetime, datetime] | None = None
    stops_before: int | None = None
    arrived = False
    live = False
    driver = ""
    plan_id: str | None = None
    vehicle_name: str | None = None
    progress: ProgressRow | None = None
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
            vehicle_name = vehicle.external_id
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
    # Until the order ends, the last step is the hoped-for one.
    done_label = cat["failed"] if order.status in ("failed", "skipped") else cat["delivered"]
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
    where = None
    if not final and order.status != "cancelled":
        # The vehicle shows only once this stop is next (or reached): privacy (ADR 0013).
        next_up = live and (stops_before == 0 or arrived)
        on_plan = progress if progress is not None and progress.plan_id == plan_id else None
        where = map_view(
            session, order, plan_id, vehicle_name, on_plan, next_up, tracks or Tracks(1)
        )
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
        map=where,
    )


def _client_ip(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _limiter(request: Request) -> RateLimit:
    """The service's limit on /t/* (built by :func:`api.app.create_app`)."""
    limiter: RateLimit = request.app.state.tracking_limiter
    return limiter


def _tracks(request: Request) -> Tracks:
    state = request.app.state
    tracks: Tracks | None = getattr(state, "tracking_tracks", None)
    if tracks is None:
        tracks = state.tracking_tracks = Tracks()
    return tracks


def browser_language(accept_language: str) -> str:
    """The first shipped language the browser asks for (``Accept-Language``, by q), else
    English: an error page has no order to take the customer's language from."""
    wanted: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept_language.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        language = tag.strip().split("-")[0].lower()
        if q > 0 and language in SHIPPED_LANGUAGES:
            wanted.append((-q, i, language))
    return min(wanted)[2] if wanted else "en"


def _message(request: Request, title_key: str | None, text_key: str, title: str = "") -> str:
    language = browser_language(request.headers.get("accept-language", ""))
    cat = catalogue(language)["tracking"]
    return _pages.get_template("message.html").render(
        lang=language, title=cat[title_key] if title_key else title, text=cat[text_key]
    )


def _too_many(request: Request) -> Response | None:
    """None when the client's IP may make this request, else the 429 page (may wait briefly
    for Redis: async routes call it in a worker thread)."""
    wait = _limiter(request).take(_client_ip(request))
    if wait <= 0:
        return None
    return _429(request, wait)


def _429(request: Request, wait: float) -> HTMLResponse:
    html = _message(request, None, "too_many", title="429")
    return HTMLResponse(html, status_code=429, headers={"Retry-After": str(math.ceil(wait))})


def _not_found(request: Request) -> HTMLResponse:
    return HTMLResponse(_message(request, "not_found", "not_found_text"), status_code=404)


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
    roads: list[list[list[float]]] | None = None,
    chat: object = None,
    proof: object = None,
) -> HTMLResponse:
    html = _pages.get_template("tracking.html").render(
        view=view,
        live=view.live(),
        roads=roads or [],
        t=view.texts,
        order_line=_say(view.texts["order"], reference=view.reference),
        token=token,
        instructions=instructions,
        limits=LIMITS,
        message=message,
        error=error,
        chat=chat,
        proof=proof,
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


@router.get("/t/{token}", response_class=HTMLResponse)
def tracking_page(token: str, request: Request) -> Response:
    """The tracking page (the same 404 for unknown and malformed tokens)."""
    refused = _too_many(request)
    if refused is not None:
        return refused
    from api.routes.tracking_chat import chat_view  # it imports this module

    with request.app.state.sessions() as session:
        order = _order(session, token)
        if order is None:
            return _not_found(request)
        view = tracking_view(session, order, service_now(request), _tracks(request))
        saved = "saved" in request.query_params
        roads = roads_around(getattr(request.app.state, "snapper", None), order)
        return _page(
            view,
            token,
            order.delivery_instructions or {},
            message=view.texts["saved"] if saved else "",
            roads=roads if view.map is not None else [],
            chat=chat_view(request, session, order),
            proof=proof_block(session, order, token),
        )


@router.post("/t/{token}/instructions", response_class=HTMLResponse)
async def save_instructions(token: str, request: Request) -> Response:
    """Store the customer's delivery instructions; oversized input is refused, not cut."""
    refused = await run_in_threadpool(_too_many, request)
    if refused is not None:
        return refused
    raw = await read_within(request, MAX_BODY_BYTES)
    too_large = raw is None
    fields = {} if raw is None else parse_qs(raw.decode("utf-8", errors="replace"))
    given = {name: (fields.get(name) or [""])[0].strip() for name in LIMITS}
    return await run_in_threadpool(_save, request, token, given, too_large)


def _save(request: Request, token: str, given: dict[str, str], too_large: bool) -> Response:
    with request.app.state.sessions() as session, session.begin():
        order = _order(session, token)
        if order is None:
            return _not_found(request)
        view = tracking_view(session, order, service_now(request), _tracks(request))
        cat = view.texts
        problem = cat["too_large"] if too_large else ""
        for name, limit in LIMITS.items():
            if not problem and len(given[name]) > limit:
                problem = _say(cat["too_long"], field=cat[name], max=limit)
        if problem:
            shown = {k: v[: LIMITS[k]] for k, v in given.items()}
            return _page(view, token, shown, message=problem, error=True, status_code=422)
        kept = {k: v for k, v in given.items() if v}
        set_instructions(request.app.state, session, order, kept)
    return Response(status_code=303, headers={"Location": f"/t/{token}?saved=1"})


def set_instructions(state: Any, session: Session, order: OrderRow, kept: dict[str, str]) -> bool:
    """Store the customer's delivery instructions (``kept``: the non-empty fields, already
    checked against :data:`LIMITS`) and, when they changed, tell the driver. ``state`` is the
    app's (the tracking form and WhatsApp's "leave with a neighbour" both change them)."""
    changed = (order.delivery_instructions or {}) != kept
    order.delivery_instructions = kept or None
    if changed:
        _tell_driver(state, session, order)
    return changed


def _tell_driver(state: Any, session: Session, order: OrderRow) -> None:
    """New instructions for an order already on the road: an event for the dispatcher's feed
    and, with MQTT on, the vehicle's retained route message again, now carrying them (the
    driver's app reads its route there). Published before the commit: a retained message
    that goes out for a save that then fails carries the same stops, only the old notes."""
    route = _latest_route(session, order) if order.status == "dispatched" else None
    if route is None:
        return
    plan_id, vehicle_id = route
    session.add(
        EventRow(
            organisation_id=order.organisation_id,
            order_id=order.id,
            vehicle_id=vehicle_id,
            kind="instructions_changed",
            data={"fields": sorted(order.delivery_instructions or {})},
        )
    )
    mqtt = getattr(state, "mqtt", None)
    plan = session.get(PlanRow, plan_id)
    vehicle = session.get(VehicleRow, vehicle_id)
    if mqtt is None or plan is None or vehicle is None or plan.geojson is None:
        return
    session.flush()
    topic = route_topic(vehicle.organisation_id, vehicle.external_id)
    for name, message in route_messages(
        plan.id, plan.result or {"routes": []}, plan.geojson, session, order.organisation_id
    ):
        if name == topic:
            try:
                publish_checked(mqtt.client, topic, message, qos=1, retain=True)
            except PublishError as exc:
                # The customer's save stands; the driver sees it at the next route message.
                log.warning("route of %s not republished: %s", vehicle.external_id, exc)


def _snapshot(request: Request, token: str) -> dict[str, Any] | None:
    with request.app.state.sessions() as session:
        order = _order(session, token)
        if order is None:
            return None
        return tracking_view(session, order, service_now(request), _tracks(request)).live()


def _opening(request: Request, token: str) -> tuple[str, dict[str, Any]] | None:
    """The order's organisation (its streams count under its cap) and first snapshot."""
    with request.app.state.sessions() as session:
        order = _order(session, token)
        if order is None:
            return None
        view = tracking_view(session, order, service_now(request), _tracks(request))
        return order.organisation_id, view.live()


@router.get("/t/{token}/events")
async def tracking_events(token: str, request: Request) -> Response:
    """Server-sent events: the window and status, sent when they change (polled every 2 s).
    A stream over the open-stream caps gets the 429 page instead (:mod:`api.stream_caps`)."""
    refused = await run_in_threadpool(_too_many, request)
    if refused is not None:
        return refused
    opening = await run_in_threadpool(_opening, request, token)
    if opening is None:
        return _not_found(request)
    organisation, first = opening
    state = request.app.state
    caps: StreamCaps = state.stream_caps
    slot = await run_in_threadpool(caps.acquire, "tracking", _client_ip(request), organisation)
    if slot is None:
        return _429(request, RETRY_AFTER_S)
    return change_stream(
        request,
        first,
        lambda: _snapshot(request, token),
        poll_s=getattr(state, "tracking_poll_s", POLL_S),
        max_s=getattr(state, "tracking_stream_max_s", STREAM_MAX_S),
        final=lambda view: bool(view.get("final")),
        hold=slot,
    )
