"""Shared fixtures: road graphs loaded once per session, a private graph cache."""

from __future__ import annotations

import atexit
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from routing.network import load_road_graph
from routing.road_graph import RoadGraph
from routing.snapping import Snapper
from telematics.mqtt import BrokerAddress

REPO = Path(__file__).resolve().parents[1]
#: The shared data folder (real OSM extracts, Solomon instances) beside the repository, or
#: where LASTMILE_SHARED_DIR says (.ci/run sets it for a checkout elsewhere).
SHARED = Path(os.environ.get("LASTMILE_SHARED_DIR") or REPO.parent / "shared")
SHARED_OSM = SHARED / "data" / "osm"


@pytest.fixture(scope="session", autouse=True)
def _private_graph_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests never read or write the user's graph cache."""
    previous = os.environ.get("LASTMILE_CACHE_DIR")
    os.environ["LASTMILE_CACHE_DIR"] = str(tmp_path_factory.mktemp("graph-cache"))
    yield
    if previous is None:
        os.environ.pop("LASTMILE_CACHE_DIR", None)
    else:
        os.environ["LASTMILE_CACHE_DIR"] = previous


def shared_file(*parts: str) -> Path:
    """A file from the shared data folder, or skip saying where it was looked for (in CI,
    where the data must be there, fail instead)."""
    path = SHARED.joinpath(*parts)
    if not path.is_file():
        message = f"shared data not found: {path} (set LASTMILE_SHARED_DIR)"
        if require_servers():
            pytest.fail(message)
        pytest.skip(message)
    return path


def shared_osm(name: str) -> Path:
    """A real extract from the shared data folder (skip, or fail in CI, when absent)."""
    return shared_file("data", "osm", name)


@pytest.fixture(scope="session")
def helsinki() -> RoadGraph:
    return load_road_graph()[0]


@pytest.fixture(scope="session")
def helsinki_snapper(helsinki: RoadGraph) -> Snapper:
    return Snapper(helsinki)


@pytest.fixture(scope="session")
def monaco() -> RoadGraph:
    return load_road_graph(shared_osm("monaco.osm.pbf"))[0]


@pytest.fixture(scope="session")
def monaco_snapper(monaco: RoadGraph) -> Snapper:
    return Snapper(monaco)


POSTGRES_URL = os.environ.get(
    "LASTMILE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def require_servers() -> bool:
    """In CI (.ci/run sets this), a missing server is a failure, not a skip."""
    return os.environ.get("LASTMILE_REQUIRE_SERVERS") == "1"


#: This pytest process's own database on the server (created on first use, dropped at
#: exit): two test runs on one machine (a developer's and a helper script's, or CI's) never
#: drop each other's tables mid-test, as they did when all shared ``test``.
_RUN_DATABASE: list[str] = []


def _run_database_url() -> str:
    """The URL of this run's database, creating it on first use."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    if _RUN_DATABASE:
        return _RUN_DATABASE[0]
    base = make_url(POSTGRES_URL)
    name = f"lastmile_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    url = base.set(database=name).render_as_string(hide_password=False)
    _RUN_DATABASE.append(url)

    def drop() -> None:
        engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception:  # the server went away: nothing left to clean
            pass
        finally:
            engine.dispose()

    atexit.register(drop)
    return url


def postgres_or_skip() -> str:
    """A clean PostgreSQL database URL (this run's own database), or skip (fail in CI)
    saying why."""
    from sqlalchemy import text

    from store.db import make_engine
    from store.schema import Base

    try:
        url = _run_database_url()
        engine = make_engine(url)
        try:
            with engine.begin() as connection:
                Base.metadata.drop_all(connection)
                connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        finally:
            engine.dispose()
    except Exception as exc:
        message = f"PostgreSQL not reachable at {POSTGRES_URL.split('@')[-1]}: {exc}"
        if require_servers():
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store and API test runs on the embedded SQLite file and on real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lastmile.db'}"
    return postgres_or_skip()


#: The machine's Mosquitto (CI runs one on the same address).
MOSQUITTO = BrokerAddress("127.0.0.1", 1883)


@pytest.fixture
def broker() -> BrokerAddress:
    """The local Mosquitto, or skip (fail in CI) saying it is not there."""
    try:
        socket.create_connection((MOSQUITTO.host, MOSQUITTO.port), timeout=1).close()
    except OSError as exc:
        message = f"Mosquitto not reachable at {MOSQUITTO.host}:{MOSQUITTO.port}: {exc}"
        if require_servers():
            pytest.fail(message)
        pytest.skip(message)
    return MOSQUITTO
