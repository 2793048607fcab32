"""A store holding two organisations' vehicles and devices, and the ``lastmile devices
export-mosquitto`` command run against it (ADR 0014)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from lastmile.cli import app
from store.db import make_engine, session_factory, transaction, upgrade
from store.schema import DeviceRow, Organisation, VehicleRow
from store.secrets import hash_device_password

runner = CliRunner()


@dataclass
class Store:
    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    org1: str
    org2: str
    #: username -> password of every device created
    passwords: dict[str, str]


def _vehicle(session: Session, org: str, external_id: str) -> VehicleRow:
    now = datetime.now(UTC)
    row = VehicleRow(
        organisation_id=org,
        external_id=external_id,
        start_lat=60.17,
        start_lon=24.94,
        shift_start=now - timedelta(hours=2),
        shift_end=now + timedelta(hours=8),
    )
    session.add(row)
    session.flush()
    return row


def make_store(path: Path) -> Store:
    """Organisation 1: van-a (a fleet device, and a revoked one), van-b (fleet), van-c
    (OwnTracks anna/phone), van-x. Organisation 2: its own van-x (a clash) and van-z."""
    url = f"sqlite:///{path / 'lastmile.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    passwords: dict[str, str] = {}
    with transaction(sessions) as session:
        org1, org2 = Organisation(name="One"), Organisation(name="Two")
        session.add_all([org1, org2])
        session.flush()
        vehicles = {
            (org, v): _vehicle(session, org.id, v)
            for org, names in ((org1, ("van-a", "van-b", "van-c", "van-x")), (org2, ("van-x",)))
            for v in names
        }
        vehicles[(org2, "van-z")] = _vehicle(session, org2.id, "van-z")
        for username, org, vehicle, protocol, external, revoked in (
            ("dev-a", org1, "van-a", "fleet", None, False),
            ("dev-a-old", org1, "van-a", "fleet", None, True),
            ("dev-b", org1, "van-b", "fleet", None, False),
            ("dev-c", org1, "van-c", "owntracks", "anna/phone", False),
            ("dev-x1", org1, "van-x", "fleet", None, False),
            ("dev-x2", org2, "van-x", "fleet", None, False),
            ("dev-z", org2, "van-z", "fleet", None, False),
        ):
            passwords[username] = f"pw-{username}-{uuid.uuid4().hex[:6]}"
            session.add(
                DeviceRow(
                    organisation_id=org.id,
                    vehicle_id=vehicles[(org, vehicle)].id,
                    mqtt_username=username,
                    password_hash=hash_device_password(passwords[username]),
                    protocol=protocol,
                    external_device_id=external,
                    revoked_at=datetime.now(UTC) if revoked else None,
                )
            )
        ids = org1.id, org2.id
    return Store(url, engine, sessions, ids[0], ids[1], passwords)


def export(
    store: Store, out: Path, monkeypatch: pytest.MonkeyPatch, *args: str, mqtt_url: str = ""
) -> dict[str, Any]:
    monkeypatch.setenv("LASTMILE_DATABASE_URL", store.url)
    if mqtt_url:
        monkeypatch.setenv("LASTMILE_MQTT_URL", mqtt_url)
    else:
        monkeypatch.delenv("LASTMILE_MQTT_URL", raising=False)
    result = runner.invoke(app, ["devices", "export-mosquitto", "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout[result.stdout.index("{") :])
    return summary


def password_lines(out: Path) -> dict[str, str]:
    lines = (out / "passwords").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines)
