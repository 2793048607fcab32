"""Engines, sessions and migrations. SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, *, busy_timeout_s: float = 30.0) -> Engine:
    """An engine for ``url``; SQLite files get WAL, foreign keys and a busy timeout (how long
    a write waits for another writer's lock before failing with "database is locked").

    Statement parameters are hidden from SQLAlchemy's log and from its exception messages:
    they are customers' names, phones, e-mails and addresses, and a database error logged
    with its traceback (a failed plan job, an ingester batch) would otherwise carry them.
    """
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_s},
            hide_parameters=True,
            json_serializer=json_text,
            json_deserializer=orjson.loads,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL: readers never block the writer (the API reads while a solve writes).
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        hide_parameters=True,
        json_serializer=json_text,
        json_deserializer=orjson.loads,
    )


def json_text(value: Any) -> str:
    """JSON columns through orjson: the ingester writes each van's state (its ETAs and what
    its customers were told) every batch, and reads a plan's routes once per batch; the
    standard library's encoder was a fifth of the ingester's time (ADR 0027). Non-string
    keys become strings, as the standard library does."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def upgrade(url: str) -> None:
    """Run every migration up to the newest (``lastmile db upgrade``)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with factory() as session, session.begin():
        yield session


def ping(engine: Engine) -> None:
    """Raises if the database cannot answer."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
