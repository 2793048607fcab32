"""``lastmile demo``: a delivery day, live, end to end, on a real road network.

The whole product runs as in production, on its embedded defaults: the service (API, web
pages, ingester with its own MQTT broker, live ETA core, notification sender) on a SQLite
file, in this process, on a clock that runs ``speed`` times faster than the wall clock. Around
it, what the real world would bring: a shop that sends its day through the API, a fleet of
vans that drive their routes and publish GPS over MQTT (some as OwnTracks), a customers'
mailbox (SMTP, ``.eml`` files) and the shop's webhook endpoint. The day has its troubles
(:mod:`lastmile.demo.trouble`): slow traffic that holds a van for 35 minutes, a stop that takes
30 minutes longer than planned, a failed delivery and an urgent order inserted mid-day; the
summary says how many customers were told of a delay before they wondered.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import uvicorn
from rich.console import Console
from rich.live import Live
from sqlalchemy import select

from api.app import create_app
from api.dashboard_state import dashboard_state
from api.settings import Settings
from domain.problem import PlanningProblem
from lastmile.demo import day as demo_day
from lastmile.demo.clock import SimClock
from lastmile.demo.customers import TextingCustomers
from lastmile.demo.device_messages import DriverEvent
from lastmile.demo.driver_phone import DriverPhone, device_key
from lastmile.demo.fleet import Disruptions, FleetConfig, FleetSimulator
from lastmile.demo.mailbox import Mailbox, free_port
from lastmile.demo.options import SHOPS, DemoOptions
from lastmile.demo.phones import Phones
from lastmile.demo.screen import render
from lastmile.demo.summary import settled, summary_line
from lastmile.demo.trouble import choose_disruptions
from lastmile.demo.webhooks import WebhookLog
from routing.network import load_road_graph
from routing.scenario import random_day
from store.repo import create_organisation
from store.schema import OrderRow

log = logging.getLogger(__name__)

#: The demo's day: a morning wave of two hours from 08:00, windows of one or one and a half
#: hours; the service starts five minutes before the vans leave.
SHIFT_H = 2.0
WINDOW_H = (1.0, 1.5)
DAY_START = clock_time(8, 0)
LEAD = timedelta(minutes=5)
#: When the urgent order comes in, after the vans leave.
URGENT_AFTER = timedelta(minutes=40)
#: Wall-clock seconds the demo waits, once the vans are done, for the last messages.
SETTLE_S = 15.0


@dataclass
class _Shop:
    name: str
    org_id: str
    client: httpx.Client
    problem: PlanningProblem
    dispatched: demo_day.DispatchedDay
    webhooks: WebhookLog
    fleet: FleetSimulator | None = None


@dataclass
class _Day:
    """What happened, for the screen."""

    lines: deque[str] = field(default_factory=lambda: deque(maxlen=50))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def say(self, at: datetime, zone: ZoneInfo, text: str) -> None:
        with self.lock:
            self.lines.append(f"{at.astimezone(zone):%H:%M}  {text}")

    def recent(self) -> list[str]:
        with self.lock:
            return list(self.lines)


def _port(wanted: int) -> int:
    """``wanted`` if it is free, else any free port (0: any)."""
    if wanted == 0:
        return free_port()
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", wanted))
            return wanted
        except OSError:
            return free_port()


def _urgent_order(problem: PlanningProblem, now: datetime, timezone: str) -> dict[str, Any]:
    """An order placed near an existing customer (a real address on the network)."""
    near = problem.orders[len(problem.orders) // 2].location
    return {
        "id": "urgent-1",
        "location": {"lat": near.lat + 0.0004, "lon": near.lon - 0.0004},
        "windows": [demo_day.urgent_window(now)],
        "service_s": 180,
        "priority": 100,
        "customer_ref": "URGENT-1",
        "contact": {"name": "Urgent Customer", "email": "urgent+urgent-1@customers.demo"},
        "language": "en",
        "timezone": timezone,
    }


class Demo:
    """One run of the demo; :meth:`run` returns the summary."""

    def __init__(self, options: DemoOptions, console: Console | None = None) -> None:
        self.options = options
        self.console = console or Console(stderr=True)
        self.zone = ZoneInfo(options.timezone)
        self.day = _Day()
        self.urgent: dict[str, Any] | None = None
        self.urgent_error: str | None = None
        self.urgent_done = threading.Event()
        #: Drivers' apps on phones (--driver-app), closed with the demo.
        self.phones_in_use: list[DriverPhone] = []

    def _say(self, text: str) -> None:
        self.day.say(self.clock(), self.zone, text)

    def run(self) -> dict[str, Any]:
        o = self.options
        started = time.monotonic()
        folder = o.data_dir
        stale_logs = [f"webhooks-{k}.jsonl" for k in range(2, len(SHOPS) + 1)]
        for stale in (
            "lastmile.db",
            "lastmile.db-wal",
            "lastmile.db-shm",
            "webhooks.jsonl",
            "phones.jsonl",
            *stale_logs,
        ):
            (folder / stale).unlink(missing_ok=True)
        shutil.rmtree(folder / "mailbox", ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)

        graph, _ = load_road_graph(o.osm)
        today = datetime.now(self.zone).date()

        def generated_day(seed: int) -> PlanningProblem:
            return random_day(
                graph,
                orders=o.orders,
                vehicles=o.vehicles,
                seed=seed,
                day=today,
                tz=o.timezone,
                shift_h=SHIFT_H,
                window_h=WINDOW_H,
            )

        problem = generated_day(o.seed)
        self.clock = SimClock(_at(today, DAY_START, self.zone) - LEAD, o.speed)
        mailbox = Mailbox(folder / "mailbox")
        webhooks = WebhookLog(folder / "webhooks.jsonl")
        # Customers' phones: the SMS and WhatsApp providers the service texts through.
        self.phones = phones = Phones(folder / "phones.jsonl", lambda _message: None)
        mailbox.start()
        webhooks.start()
        phones.start()
        port = _port(o.port)
        base = f"http://127.0.0.1:{port}"
        settings = Settings(
            data_dir=folder,
            database_url=f"sqlite:///{folder / 'lastmile.db'}",
            osm_path=o.osm,
            plan_time_limit_s=o.time_limit_s,
            mqtt_client_id=f"demo-ingester-{secrets.token_hex(3)}",
            public_base_url=base,
            smtp_host="127.0.0.1",
            smtp_port=mailbox.port,
            smtp_security="none",
            smtp_sender="deliveries@kauppa.demo",
            # The shop's receiver (WebhookLog) listens on 127.0.0.1.
            webhook_allow_private=True,
            **phones.settings(),
        )
        app = create_app(settings, clock=self.clock)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                log_level="warning",
                timeout_graceful_shutdown=2,
            )
        )
        thread = threading.Thread(target=server.run, name="demo-service", daemon=True)
        thread.start()
        shops: list[_Shop] = []
        logs = [webhooks]
        clients: list[httpx.Client] = []
        try:
            _wait(lambda: server.started, 120, "the service did not start")
            if app.state.mqtt is None:
                raise RuntimeError(
                    "the service has no MQTT broker: "
                    + str(getattr(app.state, "mqtt_unavailable", "unknown reason"))
                )
            _wait(app.state.mqtt.connected.is_set, 30, "the ingester did not reach the broker")
            self.console.print(
                f"[bold]lastmile demo[/]: {len(problem.orders)} orders, "
                f"{len(problem.vehicles)} vans, {today} in {o.timezone}, x{o.speed:g} speed"
                + (f", {o.tenants} shops with the same van ids" if o.tenants > 1 else "")
            )
            for k in range(o.tenants):
                if k == 0:
                    log, day = webhooks, problem
                else:
                    log = WebhookLog(folder / f"webhooks-{k + 1}.jsonl")
                    log.start()
                    logs.append(log)
                    day = generated_day(o.seed + k)
                shops.append(self._open_shop(app, base, SHOPS[k], day, log, clients))
            first = shops[0]
            routes = first.dispatched.routes
            disruptions, said = choose_disruptions(routes)
            for line in said.values():
                self._say(f"today: {line}")
            for shop in shops:
                self._start_fleet(app, base, shop, disruptions if shop is first else None)
            dispatcher = first.client.post("/v1/keys", json={"role": "dispatcher"}).json()["key"]
            tokens = self._tokens(
                app, first.org_id, [r["stops"][0]["order_id"] for r in routes[:3]]
            )
            self._print_links(base, dispatcher, tokens, folder)
            self.clock.run()
            result = self._watch(app, shops, mailbox)
            result.update(summary_line(app, first.org_id))
            for phone in self.phones_in_use:
                result["driver_app"] = {"vehicle": phone.vehicle_id, "taps": phone.taps}
            if o.tenants > 1:
                result["tenants"] = [
                    {"shop": shop.name, **summary_line(app, shop.org_id)} for shop in shops
                ]
            result["wall_s"] = round(time.monotonic() - started, 1)
            return result
        finally:
            for client in clients:
                client.close()
            for shop in shops:
                if shop.fleet is not None:
                    shop.fleet.stop()
            for phone in self.phones_in_use:
                phone.stop()
            server.should_exit = True
            thread.join(timeout=30)
            mailbox.stop()
            phones.stop()
            for log in logs:
                log.stop()

    def _open_shop(
        self,
        app: Any,
        base: str,
        name: str,
        problem: PlanningProblem,
        webhooks: WebhookLog,
        clients: list[httpx.Client],
    ) -> _Shop:
        """A shop's organisation, its day set up through the API, planned and dispatched."""
        o = self.options
        org_id, admin = create_organisation(app.state.sessions, name, o.timezone)
        client = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {admin}"}, timeout=60
        )
        clients.append(client)
        # The shop's signing secret comes from the API, as a real shop's would.
        webhooks.secret = demo_day.set_up(
            client,
            problem,
            timezone=o.timezone,
            webhook_url=webhooks.url,
            seed=o.seed,
            shop_name=name,
        )
        with self.console.status(f"planning {name} (solver limit {o.time_limit_s:g} s) ..."):
            dispatched = demo_day.plan_and_dispatch(client, o.time_limit_s)
        prefix = f"{name}: " if o.tenants > 1 else ""
        self._say(
            f"{prefix}plan {dispatched.plan_id[:8]}: {len(dispatched.order_ids)} orders on "
            f"{len(dispatched.routes)} vans, {len(dispatched.unassigned)} left out"
        )
        for order_id, reason in dispatched.unassigned[:3]:
            self._say(f"{prefix}left out {order_id}: {reason}")
        return _Shop(name, org_id, client, problem, dispatched, webhooks)

    def _start_fleet(
        self, app: Any, base: str, shop: _Shop, disruptions: Disruptions | None
    ) -> None:
        """The shop's vans (some as OwnTracks phones; with --driver-app, the first shop's next
        van through the drivers' app) on the road, on its own topics."""
        o = self.options
        routes = shop.dispatched.routes
        app_van = routes[-1]["vehicle_id"] if o.driver_app and disruptions is not None else None
        owntracks = {
            r["vehicle_id"]: demo_day.register_owntracks(shop.client, r["vehicle_id"], "phone")
            for r in routes[: o.owntracks_vans]
            if r["vehicle_id"] != app_van
        }
        devices: dict[str, DriverPhone] = {}
        if app_van is not None:
            van = app_van
            key = device_key(shop.client, van)
            phone = DriverPhone(base, van, key, self.clock, o.speed, self._say)
            phone.start()
            self.phones_in_use.append(phone)
            devices[van] = phone
        fleet = FleetSimulator(
            app.state.mqtt.broker,
            self.clock,
            disruptions or Disruptions(),
            FleetConfig(owntracks=owntracks, devices=devices),
            seed=o.seed,
            on_event=self._on_driver_event,
            organisation_id=shop.org_id,
        )
        shop.fleet = fleet
        fleet.start()
        _wait(lambda: len(fleet.vans) == len(routes), 30, f"{shop.name}'s vans got no routes")

    def _on_driver_event(self, event: DriverEvent) -> None:
        what = "delivered" if event.kind == "delivered" else f"FAILED ({event.reason})"
        if event.kind != "delivered":
            self._say(f"{event.vehicle_id}: {event.order_id} {what}")

    def _tokens(self, app: Any, org_id: str, order_ids: list[str]) -> list[str]:
        with app.state.sessions() as session:
            return list(
                session.scalars(
                    select(OrderRow.tracking_token).where(
                        OrderRow.organisation_id == org_id, OrderRow.external_id.in_(order_ids)
                    )
                )
            )

    def _print_links(self, base: str, key: str, tokens: list[str], folder: Path) -> None:
        self.console.print(f"Dispatcher dashboard: [link]{base}/dashboard[/]  (key {key})")
        for token in tokens:
            self.console.print(f"Tracking page:        [link]{base}/t/{token}[/]")
        self.console.print(
            f"Customers' e-mail:    {folder / 'mailbox'}/*.eml    "
            f"shop's webhooks: {folder / 'webhooks.jsonl'}    "
            f"customers' phones: {folder / 'phones.jsonl'}"
        )

    def _insert_urgent(self, client: httpx.Client, plan_id: str, problem: PlanningProblem) -> None:
        try:
            order = _urgent_order(problem, self.clock(), self.options.timezone)
            self._say("urgent order urgent-1 comes in: inserting it into the plan")
            new = demo_day.insert_urgent(client, plan_id, order)
            if "urgent-1" in new.order_ids:
                van = next(
                    r["vehicle_id"]
                    for r in new.routes
                    if any(s["order_id"] == "urgent-1" for s in r["stops"])
                )
                self._say(f"urgent-1 goes to {van}; plan {new.plan_id[:8]} dispatched")
                self.urgent = {"order": "urgent-1", "vehicle": van}
            else:
                reason = dict(new.unassigned).get("urgent-1", "")
                self._say(f"urgent-1 could not be fitted in: {reason}")
        except Exception as exc:  # the day goes on; the screen says why
            self.urgent_error = str(exc)
            self._say(f"urgent order failed: {exc}")
        finally:
            self.urgent_done.set()

    def _watch(self, app: Any, shops: list[_Shop], mailbox: Mailbox) -> dict[str, Any]:
        """Until every shop's vans are done (and the urgent order is in), the first shop's
        day on the screen; its urgent order mid-morning."""
        o = self.options
        first = shops[0]
        client, org_id, dispatched = first.client, first.org_id, first.dispatched
        problem, webhooks = first.problem, first.webhooks
        fleets = [shop.fleet for shop in shops if shop.fleet is not None]
        fleet = fleets[0]
        # Some of the first shop's late customers text anyway (issue 19).
        texting = TextingCustomers(client, self._say)
        texting.open()
        self.phones.on_message = texting.heard
        with app.state.sessions() as session:
            texting.customers = {
                order_id: (phone, language)
                for order_id, phone, language in session.execute(
                    select(OrderRow.external_id, OrderRow.contact_phone, OrderRow.language).where(
                        OrderRow.organisation_id == org_id
                    )
                )
                if phone
            }
        urgent_at = _at(self.clock().date(), DAY_START, self.zone) + URGENT_AFTER
        urgent_thread: threading.Thread | None = None
        deadline = time.monotonic() + o.duration_s if o.duration_s else None
        finished_at: float | None = None
        seen_late: set[str] = set()
        live = None
        if not o.headless:
            live = Live(console=self.console, refresh_per_second=4, transient=False)
            live.start()
        try:
            while True:
                now = self.clock()
                if urgent_thread is None and now >= urgent_at:
                    urgent_thread = threading.Thread(
                        target=self._insert_urgent,
                        args=(client, dispatched.plan_id, problem),
                        daemon=True,
                    )
                    urgent_thread.start()
                with app.state.sessions() as session:
                    state = dashboard_state(session, org_id, now)
                for vehicle in state["vehicles"]:
                    for stop in vehicle["stops"]:
                        if stop["late"] and stop["order"] not in seen_late:
                            seen_late.add(stop["order"])
                            self._say(
                                f"{vehicle['id']}: {stop['order']} running late "
                                f"({stop.get('late_min') or '?'} min)"
                            )
                            texting.running_late(stop["order"])
                if live is not None:
                    phases = {v: van.phase for v, van in fleet.vans.items()}
                    live.update(
                        render(
                            state,
                            now,
                            self.zone,
                            phases,
                            self.day.recent(),
                            mailbox.recent(6),
                            webhooks.count,
                        )
                    )
                done = all(f.done() for f in fleets)
                if done and (urgent_thread is not None and self.urgent_done.is_set()):
                    finished_at = finished_at or time.monotonic()
                    all_sent = all(settled(app, shop.org_id) for shop in shops)
                    if all_sent or time.monotonic() - finished_at > SETTLE_S:
                        break
                if deadline is not None and time.monotonic() >= deadline:
                    self._say("stopped: --duration reached")
                    break
                time.sleep(0.5)
        finally:
            if live is not None:
                live.stop()
        return {"day_finished": finished_at is not None}


def _at(day: date, at: clock_time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, zone).astimezone(UTC)


def _wait(done: Callable[[], bool], timeout_s: float, failure: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(failure)
        time.sleep(0.05)


def run_demo(options: DemoOptions, console: Console | None = None) -> dict[str, Any]:
    """Run the demo; the summary (the issue's figures, plus ``wall_s``)."""
    return Demo(options, console).run()
