"""A store with one organisation and one vehicle, for ingestion tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from store.db import make_engine, session_factory, transaction, upgrade
from store.schema import Organisation, VehicleRow


def store_with_vehicle(
    tmp_path: Path, vehicle_id: str
) -> tuple[sessionmaker[Session], str, Engine]:
    """(sessions, organisation id, engine) of a fresh SQLite store holding one vehicle."""
    url = f"sqlite:///{tmp_path / 'lastmile.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        org = Organisation(name="Test")
        session.add(org)
        session.flush()
        session.add(
            VehicleRow(
                organisation_id=org.id,
                external_id=vehicle_id,
                start_lat=60.17,
                start_lon=24.94,
                shift_start=datetime(2026, 1, 1, tzinfo=UTC),
                shift_end=datetime(2027, 1, 1, tzinfo=UTC),
            )
        )
        org_id = org.id
    return sessions, org_id, engine
