"""Looking back at a day: ``lastmile eval-eta`` scores the live ETAs on a recorded scenario,
``lastmile report`` plots a plan from the store."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from api.settings import Settings
from domain.errors import ValidationError
from evaluation.learning import learn_all, scenario_timezone
from evaluation.noise import PROFILES
from evaluation.replay import replay
from evaluation.scenario import find_osm, load_scenario
from evaluation.scores import score, write_predictions
from lastmile.cli_common import OsmOption, console, err, load_graph, print_error
from routing.network import load_road_graph
from routing.osm_reader import NetworkLoadError
from store.db import make_engine, session_factory


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
            help="Completed scenario folders of the same fleet, days before this one "
            "(repeatable): the fleet's prior, service per customer and the window's "
            "calibration are learned from them; default: none (cold start: the plan's own "
            "travel and service times, the hand-set window)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write predictions.csv (default: the scenario).")
    ] = None,
) -> None:
    """Replay a scenario's GPS through the live pipeline and score the ETAs against the
    actual arrivals. The last line printed is one JSON object."""
    if noise not in PROFILES:
        print_error(ValueError(f"--noise must be one of {', '.join(PROFILES)}, got {noise!r}"))
        raise typer.Exit(2)
    try:
        scenario = load_scenario(scenario_dir)
        osm_path = find_osm(scenario, osm, Path(__file__).resolve().parents[1])
        past = [load_scenario(p) for p in history or []]
    except ValidationError as exc:
        print_error(exc)
        raise typer.Exit(2) from exc
    graph = load_graph(osm_path)
    started = time.perf_counter()
    learned = learn_all(past, graph, scenario_timezone(scenario), PROFILES[noise])
    params = learned.params()
    result = replay(
        scenario,
        graph,
        PROFILES[noise],
        seed=seed,
        params=params,
        service_of=learned.service_of(),
    )
    target = (out or scenario_dir) / "predictions.csv"
    write_predictions(result, target)
    err.print(
        f"{result.fixes:,} fixes, {len(result.predictions):,} predictions in "
        f"{time.perf_counter() - started:.1f} s; prior {params.prior}; "
        f"calibrated window: {learned.calibration is not None}; wrote {target}"
    )
    print(json.dumps(score(result)))


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
    actual arrival per stop, ETA error by horizon, messages per order, and the promise: first-window
    hits, late-notice lead times and the live window's coverage by horizon."""
    # Imported here: matplotlib would slow every other command's start.
    from lastmile.report import ReportError, select_plan, write_report

    settings = Settings() if database_url is None else Settings(database_url=database_url)
    url = settings.url
    sqlite_file = make_url(url).database if url.startswith("sqlite") else None
    if sqlite_file and sqlite_file != ":memory:" and not Path(sqlite_file).is_file():
        # Connecting would quietly create an empty database file where none was meant to be.
        print_error(FileNotFoundError(f"no database at {sqlite_file} (set --database-url)"))
        raise typer.Exit(2)
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            try:
                row = select_plan(session, plan)
            except ReportError as exc:
                print_error(exc)
                raise typer.Exit(2) from exc
            graph = None
            if row.geojson:
                try:
                    graph = load_road_graph(osm or settings.osm_path)[0]
                except NetworkLoadError as exc:
                    err.print(f"[yellow]warning:[/yellow] {escape(str(exc))}; routes drawn alone")
            written = write_report(session, row, out, graph)
    except SQLAlchemyError as exc:
        print_error(ValueError(f"cannot read the store at {url.split('@')[-1]}: {exc}"))
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    for path in written.paths:
        console.print(str(path), markup=False, highlight=False)
    console.print(written.summary, markup=False, highlight=False)
