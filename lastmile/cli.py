"""The ``lastmile`` command line: the app, its command groups, and the commands that run things
(demo, serve, worker).

The other commands live by group: ``plan`` in :mod:`lastmile.cli_plan`, ``eval-eta`` and
``report`` in :mod:`lastmile.cli_evaluate`, ``network`` in :mod:`lastmile.cli_network`, ``db``,
``org`` and ``devices`` in :mod:`lastmile.cli_admin`; what they share in
:mod:`lastmile.cli_common`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.settings import Settings
from domain.errors import ValidationError
from lastmile.cli_admin import db_app, devices_app, org_app
from lastmile.cli_common import OsmOption, err, print_error
from lastmile.cli_evaluate import eval_eta, report
from lastmile.cli_network import network_app
from lastmile.cli_plan import plan_file
from routing.osm_reader import NetworkLoadError

app = typer.Typer(
    help="Route planning and live ETAs for last-mile delivery fleets.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(network_app, name="network")
app.add_typer(db_app, name="db")
app.add_typer(org_app, name="org")
app.add_typer(devices_app, name="devices")


@app.command("demo")
def demo(
    osm: OsmOption = None,
    orders: Annotated[int, typer.Option(min=1, help="Orders in the day.")] = 120,
    vehicles: Annotated[int, typer.Option(min=1, help="Vans available.")] = 6,
    speed: Annotated[
        float, typer.Option(min=1.0, help="Simulated seconds per wall-clock second.")
    ] = 30.0,
    seed: Annotated[int, typer.Option(help="Seed of the generated day and its events.")] = 1,
    headless: Annotated[
        bool, typer.Option(help="No live screen; the summary as JSON on the last line.")
    ] = False,
    duration: Annotated[
        float | None, typer.Option(min=1.0, help="Stop after this many wall-clock seconds.")
    ] = None,
    time_limit: Annotated[float, typer.Option(min=0.1, help="Solver time limit (s).")] = 5.0,
    port: Annotated[int, typer.Option(help="HTTP port (another one if taken).")] = 8000,
    data_dir: Annotated[
        Path, typer.Option(help="Where the demo's database, mailbox and webhook log go.")
    ] = Path("var/demo"),
    timezone: Annotated[
        str, typer.Option(help="The fleet's and customers' time zone.")
    ] = "Europe/Helsinki",
    tenants: Annotated[
        int,
        typer.Option(
            min=1,
            max=2,
            help="Shops on one broker and database, each with the same van and order ids; "
            "the summary's `tenants` holds each shop's figures.",
        ),
    ] = 1,
    driver_app: Annotated[
        bool,
        typer.Option(
            "--driver-app",
            help="One van's driver uses the drivers' web app (/driver) in a headless Chromium "
            "instead of a simulated device (needs Playwright and Chromium).",
        ),
    ] = False,
) -> None:
    """A live delivery day, end to end: plan, drive, ETAs, customers told, pages live.

    Generates a day on the road network, plans it with the solver, runs the whole service on
    its embedded defaults (SQLite, its own MQTT broker) on a sped-up clock, and drives a
    simulated fleet over MQTT (some vans as OwnTracks) through a jam, a slow stop, a failed
    delivery and an urgent order. Customers' e-mails land as .eml files in DATA_DIR/mailbox,
    the shop's webhooks in DATA_DIR/webhooks.jsonl.
    """
    import logging

    from lastmile.demo.options import DemoOptions
    from lastmile.demo.run import run_demo
    from lastmile.demo.summary import summary_json

    # The live screen is the demo's log; warnings still show.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = DemoOptions(
        osm=osm,
        orders=orders,
        vehicles=vehicles,
        speed=speed,
        seed=seed,
        headless=headless,
        duration_s=duration,
        time_limit_s=time_limit,
        port=port,
        data_dir=data_dir,
        timezone=timezone,
        tenants=tenants,
        driver_app=driver_app,
    )
    try:
        result = run_demo(options, err)
    except (ValidationError, NetworkLoadError, RuntimeError) as exc:
        print_error(exc)
        raise typer.Exit(2) from exc
    if not headless:
        ended = "day done" if result["day_finished"] else "stopped before the day ended"
        err.print(
            f"{ended} in {result['wall_s']:.0f} s: {result['delivered']} delivered, "
            f"{result['failed']} failed, {result['messages_sent']} messages, "
            f"{result['late_stops_notified']}/{result['late_stops']} late stops told in time"
        )
    print(summary_json(result))


# Registered in this order so that `lastmile --help` lists them as it always has.
app.command("plan")(plan_file)
app.command("eval-eta")(eval_eta)
app.command("report")(report)


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            help="Reverse proxies whose X-Forwarded-For is believed (comma-separated, or '*'): "
            "the client address behind them is what the tracking page's rate limit counts."
        ),
    ] = "127.0.0.1",
) -> None:
    """Run the HTTP service (settings from LASTMILE_* variables; SQLite in ./var by default)."""
    import uvicorn

    from api.app import create_app

    uvicorn.run(
        create_app(Settings()),
        host=host,
        port=port,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
    )


@app.command("worker")
def worker(
    threads: Annotated[
        int, typer.Option(min=1, help="Jobs run at once (solving is CPU-bound: one per core).")
    ] = 1,
) -> None:
    """Run planning jobs from the task queue (LASTMILE_TASK_QUEUE_URL, redis:// or amqp://)
    until stopped, on the service's database and road network (same LASTMILE_* settings)."""
    import logging

    from jobs.task_queue import serve as serve_queue

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings()
    if not settings.task_queue_url:
        print_error(
            ValueError("no task queue: set LASTMILE_TASK_QUEUE_URL (redis://... or amqp://...)")
        )
        raise typer.Exit(2)
    queue = f"{settings.task_queue_url.split('@')[-1]} queue {settings.task_queue_name}"
    serve_queue(settings, threads=threads, ready=lambda: err.print(f"worker ready on {queue}"))


if __name__ == "__main__":
    app()
