"""Administering the service: ``lastmile db``, ``lastmile org`` and ``lastmile devices``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from api.settings import Settings
from lastmile.cli_common import console, err, print_error
from store.db import make_engine, session_factory, upgrade
from store.repo import create_organisation

db_app = typer.Typer(help="The service's database.", no_args_is_help=True)
org_app = typer.Typer(help="Organisations (tenants) and their keys.", no_args_is_help=True)
devices_app = typer.Typer(help="GPS devices and their MQTT access.", no_args_is_help=True)


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
        print_error(exc)
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
