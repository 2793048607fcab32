"""The FastAPI application, built by :func:`create_app` from settings.

The lifespan owns the long-lived things: the database engine (migrated on start), the road
graph and its spatial index, and the planning worker (which resumes unfinished jobs); the
ingester with the fleet's prior and window calibration fitted from the store, and two timers
on the service clock: silent vehicles' ETAs recomputed, the prior and the calibration fitted
again (docs/adr/0018, 0020).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy.orm import Session, sessionmaker

from api import errors, limits
from api.driver_mqtt import phone_broker
from api.ingest_metrics import IngestCollector
from api.log_privacy import install_access_log_privacy
from api.proofs import proof_files_for
from api.rate_limits import RateLimit
from api.routes import (
    audit,
    dashboard,
    devices,
    driver,
    driver_pages,
    fleet,
    health,
    inbound,
    inbound_email,
    inbound_providers,
    inbound_whatsapp,
    notifications,
    orders,
    plans,
    proofs,
    reports,
    support,
    telematics,
    tracking,
    tracking_chat,
    webhook_secrets,
)
from api.routes.inbound import answer_now
from api.settings import Settings
from api.stream_caps import StreamCaps
from domain.geo import LatLon
from jobs.plan_runner import PlanRunner
from notify.channels import GenericSms, SmtpChannel, TwilioSms, WebhookChannel
from notify.channels.base import Channel as ChannelImpl
from notify.channels.push import MqttPushChannel
from notify.channels.whatsapp import WhatsAppChannel
from notify.outbox import Outbox
from notify.sender import OutboxSender
from notify.settings import Channel
from routing.network import load_road_graph
from routing.snapping import Snapper
from store.db import make_engine, session_factory, upgrade
from telematics.acl_sync import AclSync
from telematics.broker import BrokerUnavailableError, start_private_broker
from telematics.fleet_prior import FittedPrior, fit_fleet_prior
from telematics.ingest import Ingester
from telematics.mqtt import BrokerAddress, MqttIngester
from telematics.timer import ServiceTimer
from telematics.way_back import way_back
from telematics.window_history import fit_window_history

log = logging.getLogger(__name__)

DESCRIPTION = """
Route planning and live ETAs for last-mile delivery fleets.

Authenticate with an API key: `Authorization: Bearer lm_...`. Keys have a role:
`dispatcher` (plan and manage), `support` (read), `device` (positions and driver events of
the one vehicle the key names), `admin` (everything, and keys). Times are ISO 8601 with a UTC
offset; distances in metres, durations in seconds. Every error has the shape `{"error":
{"code", "message", "problems": [{"field", "message"}]}}`.
"""

#: Where a customer's tracking link points, under the tracking base URL.
TRACKING_PATH = "/t/{token}"
#: Scripts, styles and the bundled Leaflet served under /static.
STATIC_DIR = Path(__file__).parent / "static"


def build_channels(
    settings: Settings, mqtt_client: mqtt.Client | None = None
) -> dict[Channel, ChannelImpl]:
    """The notification channels that are configured (push only with an MQTT connection)."""
    channels: dict[Channel, ChannelImpl] = {}
    if settings.smtp_host:
        channels[Channel.EMAIL] = SmtpChannel(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_security,
            settings.smtp_username,
            settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            default_sender=settings.smtp_sender,
        )
    if settings.sms_twilio_account_sid and settings.sms_twilio_auth_token:
        channels[Channel.SMS] = TwilioSms(
            settings.sms_twilio_base_url,
            settings.sms_twilio_account_sid,
            settings.sms_twilio_auth_token.get_secret_value(),
            settings.sms_from,
        )
    elif settings.sms_url:
        token = settings.sms_token.get_secret_value() if settings.sms_token else ""
        channels[Channel.SMS] = GenericSms(settings.sms_url, token, settings.sms_from)
    # Signed with each organisation's own secrets (the sender adds them to each message).
    channels[Channel.WEBHOOK] = WebhookChannel(allow_private=settings.webhook_allow_private)
    # Always there: each organisation's number and token come with its messages.
    channels[Channel.WHATSAPP] = WhatsAppChannel(settings.whatsapp_graph_url)
    if os.environ.get("LASTMILE_WEBHOOK_SECRET"):
        log.warning(
            "LASTMILE_WEBHOOK_SECRET is ignored: webhooks are signed with each organisation's "
            "own secrets (POST /v1/organisation/webhook-secrets; docs/webhooks.md)"
        )
    if mqtt_client is not None:
        channels[Channel.PUSH] = MqttPushChannel(mqtt_client)
    return channels


def close_channels(channels: dict[Channel, ChannelImpl]) -> None:
    """Close the HTTP clients the channels own."""
    for channel in channels.values():
        close = getattr(channel, "close", None)
        if callable(close):
            close()


def refit_prior(
    settings: Settings, sessions: sessionmaker[Session], ingester: Ingester
) -> FittedPrior | None:
    """Fit the fleet prior and the live window's calibration from the store's history (each
    stays neutral until there is enough of it) and give them to the ingester together: one new
    frozen ``EtaParams`` swapped in whole, so a batch reads either the old pair or the new one.
    A fit that fails keeps what is in use for its part (the other still moves on)."""
    now = ingester.clock()
    params = ingester.eta_params
    fitted: FittedPrior | None = None
    try:
        fitted = fit_fleet_prior(
            sessions, now, days=settings.prior_history_days, min_legs=settings.prior_min_legs
        )
    except Exception:
        log.exception("fitting the fleet prior failed; the prior in use stays")
    else:
        params = replace(params, prior=fitted.prior)
    try:
        # The same days as the prior: the window is as recent as the forecasts it frames.
        windows = fit_window_history(sessions, now, days=settings.prior_history_days)
    except Exception:
        log.exception("fitting the window calibration failed; the calibration in use stays")
    else:
        params = replace(params, calibration=windows.calibration)
    ingester.eta_params = params
    return fitted


def create_app(
    settings: Settings | None = None, clock: Callable[[], datetime] | None = None
) -> FastAPI:
    """The service. ``clock`` is the time every part reads (routes, ingester, sender): the
    wall clock unless given (the demo passes a sped-up one)."""
    settings = settings or Settings()
    service_clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade(settings.url)
        engine = make_engine(settings.url, busy_timeout_s=settings.sqlite_busy_timeout_s)
        sessions = session_factory(engine)
        graph, _ = load_road_graph(settings.osm_path)
        app.state.engine = engine
        app.state.sessions = sessions
        app.state.graph = graph
        app.state.snapper = Snapper(graph)
        task_queue = None
        if settings.task_queue_url:
            from jobs.task_queue import TaskQueue  # only when configured

            # Jobs run in `lastmile worker` processes; without a queue, on a thread here.
            task_queue = TaskQueue(settings.task_queue_url, settings.task_queue_name)
        app.state.runner = PlanRunner(
            sessions,
            graph,
            app.state.snapper,
            default_time_limit_s=settings.plan_time_limit_s,
            on_solved=lambda kind, status, s: solve_time.labels(kind, status).observe(s),
            send=task_queue.send if task_queue is not None else None,
        )
        app.state.runner.resume()
        snapper = app.state.snapper

        def drive_back_s(lat: float, lon: float, stop_lat: float, stop_lon: float) -> float:
            return way_back(graph, snapper, LatLon(lat, lon), LatLon(stop_lat, stop_lon)).duration_s

        # One outbox for the ingester (which queues) and the sender (which releases and sends).
        app.state.outbox = Outbox()
        app.state.ingester = ingester = Ingester(
            sessions,
            off_route_travel=drive_back_s,
            outbox=app.state.outbox,
            clock=service_clock,
            silent_after_s=settings.silent_after_s,
        )
        # Before the first fix: the prior and the window calibration from the fleet's own
        # history (docs/adr/0018, 0020).
        refit_prior(settings, sessions, ingester)
        private = None
        app.state.mqtt = None
        if settings.mqtt:
            address = None
            if settings.mqtt_url:
                address = BrokerAddress.parse(settings.mqtt_url)
            else:
                try:
                    # Mosquitto if installed, else the embedded amqtt; its address carries
                    # the MQTT version it speaks (3.1.1 for amqtt) through to the ingester.
                    private = start_private_broker(settings.data_dir / "broker")
                    address = private.address
                    log.info(
                        "private MQTT broker (%s, MQTT %s) on %s:%d",
                        private.kind,
                        "5" if address.protocol == 5 else "3.1.1",
                        address.host,
                        address.port,
                    )
                except BrokerUnavailableError as exc:
                    # HTTP ingestion still works; /readyz says why MQTT does not.
                    log.warning("no MQTT ingestion: %s", exc)
                    app.state.mqtt_unavailable = str(exc)
            if address is not None:
                app.state.mqtt = MqttIngester(
                    app.state.ingester,
                    address,
                    client_id=settings.mqtt_client_id,
                    shared_group=settings.mqtt_shared_group,
                    shed_backlog=settings.mqtt_shed_backlog or None,
                    shed_after_s=settings.mqtt_shed_after_s,
                    reader=settings.mqtt_reader,
                )
                app.state.mqtt.start()
        # Where drivers' phones may publish their fixes over WebSockets (api/driver_mqtt.py).
        app.state.phone_broker = phone_broker(settings, private)
        app.state.sender = None
        channels: dict[Channel, ChannelImpl] = {}
        if settings.sender_enabled:
            mqtt_client = app.state.mqtt.client if app.state.mqtt is not None else None
            channels = build_channels(settings, mqtt_client)
            base = settings.tracking_base
            app.state.sender = OutboxSender(
                sessions,
                channels,
                app.state.outbox,
                tracking_url=lambda token: base + TRACKING_PATH.format(token=token),
                clock=service_clock,
                lease_s=settings.sender_lease_s,
                backoff_s=settings.sender_backoff_s,
                max_attempts=settings.sender_max_attempts,
                answer_text=lambda session, order, now: answer_now(app.state, session, order, now),
            )
            app.state.sender.start()
            app.state.ingester.on_queued = app.state.sender.poke
            log.info("notification sender on: %s", ", ".join(sorted(channels)) or "no channels")
        # On the ingester's clock (the service's; a test may move the ingester's own), so
        # their intervals are service time: the demo's sped-up day ticks as often as a real one.
        app.state.timers = [
            ServiceTimer(
                "silence-timer",
                lambda _now: ingester.tick_silent(),
                lambda: ingester.clock(),
                settings.silent_tick_s,
            ),
            ServiceTimer(
                "prior-refit",
                lambda _now: refit_prior(settings, sessions, ingester),
                lambda: ingester.clock(),
                settings.prior_refit_s,
            ),
        ]
        for timer in app.state.timers:
            timer.start()
        app.state.mailbox_poller = inbound_email.start_mailbox_poller(
            app.state, settings.imap_poll_s, allow_private=settings.imap_allow_private
        )
        try:
            yield
        finally:
            if app.state.mailbox_poller is not None:
                app.state.mailbox_poller.stop()
            for timer in app.state.timers:
                timer.stop()
            if app.state.sender is not None:
                app.state.sender.stop()
            close_channels(channels)
            if app.state.mqtt is not None:
                app.state.mqtt.stop()
            if private is not None:
                private.stop()
            app.state.runner.shutdown()
            if task_queue is not None:
                task_queue.close()
            engine.dispose()
            app.state.tracking_limiter.close()
            app.state.stream_caps.close()

    app = FastAPI(
        title="lastmile",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = service_clock
    limits.install(app)  # oversized requests get a 413 before any route reads them
    registry = CollectorRegistry()
    app.state.registry = registry
    registry.register(IngestCollector(app.state))
    requests = Counter(
        "lastmile_http_requests", "HTTP requests", ["method", "route", "status"], registry=registry
    )
    latency = Histogram(
        "lastmile_http_request_seconds", "HTTP request time", ["route"], registry=registry
    )
    app.state.plan_jobs = Counter("lastmile_plan_jobs", "Planning jobs started", registry=registry)
    # The broker's files after a device change (telematics/acl_sync.py): a setting that
    # cannot work is refused at start, naming it.
    app.state.acl_sync = AclSync.configure(
        settings.mosquitto_acl_dir, settings.mqtt_url, settings.mosquitto_reload_command
    )
    app.state.acl_reloads = Counter(
        "lastmile_acl_reloads",
        "Broker password/ACL exports and reloads after device changes, by result",
        ["result"],
        registry=registry,
    )
    app.state.wismo_contacts = Counter(
        "lastmile_wismo_contacts",
        "Where-is-my-order contacts recorded by support",
        ["channel"],
        registry=registry,
    )
    # The tracking page's rate limit and the open-stream caps: in Redis when configured,
    # shared by every process; failing open (in memory) while it does not answer.
    redis_errors = Counter(
        "lastmile_redis_errors",
        "Redis failures of the rate limits and stream caps (each failed open, in memory)",
        ["use"],
        registry=registry,
    )
    app.state.tracking_limiter = RateLimit(
        "tracking",
        tracking.RATE_PER_MINUTE,
        settings.redis_url,
        key_prefix=settings.redis_key_prefix,
        errors=redis_errors.labels("rate_limit"),
    )
    # Drivers' proof photos and signatures: a bucket when configured, else data_dir/proofs.
    app.state.proof_files = proof_files_for(settings)
    app.state.stream_caps = StreamCaps(
        settings.stream_cap_per_ip,
        settings.stream_cap_per_organisation,
        settings.redis_url,
        key_prefix=settings.redis_key_prefix,
        errors=redis_errors.labels("stream_cap"),
    )
    solve_time = Histogram(
        "lastmile_plan_job_seconds",
        "Time a planning job took, by kind and outcome",
        ["kind", "status"],
        buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
        registry=registry,
    )

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        requests.labels(request.method, path, str(response.status_code)).inc()
        latency.labels(path).observe(time.perf_counter() - started)
        return response

    errors.install(app)
    # uvicorn's access log would otherwise keep phones, e-mails and tracking tokens.
    install_access_log_privacy()
    for module in (
        health,
        fleet,
        devices,
        orders,
        plans,
        telematics,
        notifications,
        webhook_secrets,
        audit,
        support,
        inbound,
        inbound_email,
        inbound_providers,
        inbound_whatsapp,
        reports,
        tracking,
        tracking_chat,
        dashboard,
        driver,
        driver_pages,
        proofs,
    ):
        app.include_router(module.router)
    # The web pages' own scripts and styles, and the bundled Leaflet (no CDN, works offline).
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
