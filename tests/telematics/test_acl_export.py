"""The command that writes the Mosquitto ACL export from the store (ADR 0014): every usable
device of every organisation (or of one), the devices left out and why, the service account's
credentials, and the files' permissions."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from lastmile.cli import app
from store.secrets import check_device_password
from tests.telematics.acl_store import Store, export, make_store, password_lines, runner

pytestmark = pytest.mark.security


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    made = make_store(tmp_path)
    yield made
    made.engine.dispose()


def test_export_writes_every_usable_device_and_says_what_it_left_out(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All organisations: the revoked device is absent, the rest get their stored hashes (the
    two organisations' van-x devices too: their topics name their organisation, and neither
    gets the deprecated un-prefixed van-x topics); without LASTMILE_MQTT_URL the service's
    new password is in credentials.csv (0600) only, and it matches the password file."""
    out = tmp_path / "export"
    summary = export(store, out, monkeypatch)
    assert summary["devices"] == 6
    assert summary["service_user"] == "lastmile"
    assert summary["skipped"] == []
    lines = password_lines(out)
    assert set(lines) == {"lastmile", "dev-a", "dev-b", "dev-c", "dev-x1", "dev-x2", "dev-z"}
    for name in ("dev-a", "dev-b", "dev-c", "dev-x1", "dev-x2", "dev-z"):
        assert check_device_password(store.passwords[name], lines[name])
    acl = (out / "acl").read_text()
    assert "dev-a-old" not in acl
    assert f"topic write {store.org1}/fleet/van-x/position" in acl
    assert f"topic write {store.org2}/fleet/van-x/position" in acl
    assert "topic write fleet/van-x/" not in acl
    assert "topic write fleet/van-a/position" in acl
    assert (out / "passwords").stat().st_mode & 0o777 == 0o600
    assert (out / "acl").stat().st_mode & 0o777 == 0o644
    credentials = out / "credentials.csv"
    assert credentials.stat().st_mode & 0o777 == 0o600
    [row] = list(csv.DictReader(credentials.read_text().splitlines()))
    assert row["username"] == "lastmile"
    assert check_device_password(row["password"], lines["lastmile"])
    config = (out / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in config
    assert f"acl_file {(out / 'acl').resolve()}" in config


def test_export_uses_the_services_own_mqtt_credentials(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With LASTMILE_MQTT_URL carrying a user and password, that is the service account, and
    no plaintext file is written."""
    out = tmp_path / "export"
    summary = export(store, out, monkeypatch, mqtt_url="mqtt://ingest:t0p-secret@broker:1883")
    assert summary["service_user"] == "ingest"
    assert summary["credentials"] is None
    assert not (out / "credentials.csv").exists()
    assert check_device_password("t0p-secret", password_lines(out)["ingest"])
    assert "t0p-secret" not in (out / "passwords").read_text() + (out / "acl").read_text()


def test_export_of_one_organisation(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--organisation: only its devices; its van-x, which the other tenant uses too, gets its
    organisation's topics and not the deprecated un-prefixed ones."""
    out = tmp_path / "export"
    summary = export(store, out, monkeypatch, "--organisation", store.org2, mqtt_url="mqtt://s:p@h")
    assert summary["devices"] == 2
    assert set(password_lines(out)) == {"s", "dev-x2", "dev-z"}
    assert summary["skipped"] == []
    acl = (out / "acl").read_text()
    assert f"topic write {store.org2}/fleet/van-x/position" in acl
    assert "topic write fleet/van-x/position" not in acl
    assert "topic write fleet/van-z/position" in acl


def test_export_help() -> None:
    result = runner.invoke(app, ["devices", "export-mosquitto", "--help"])
    assert result.exit_code == 0
    assert "--organisation" in result.output
