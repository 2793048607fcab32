"""Mosquitto password and ACL files for the registered devices and the drivers' app's device
keys (``lastmile devices export-mosquitto``; ADR 0014).

Each device may publish only to its own vehicle's topics and read only its own route; a
device API key bound to a vehicle (the drivers' app publishing the phone's GPS,
api/driver_mqtt.py) may publish only its vehicle's position topic and read nothing; the
service account reads every device topic and publishes routes and customer pushes. Nothing
else is granted to anyone: Mosquitto denies what no ``topic`` line allows.

Passwords and keys are never known here: the store keeps only their PBKDF2-SHA512 hashes,
in Mosquitto's own ``$7$`` format, which go into the password file as they are.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from notify.channels.push import TOPIC as PUSH_TOPIC
from store.schema import ApiKey, DeviceRow, VehicleRow
from store.secrets import hash_device_password, new_device_password
from telematics.mqtt import TOPICS, BrokerAddress
from telematics.topics import (
    DEVICE_KINDS,
    ROUTES_WILDCARD,
    legacy_topic,
    route_topic,
    vehicle_topic,
)

#: What an OwnTracks device publishes (its ``external_device_id`` is ``user/device``).
OWNTRACKS_TOPIC = "owntracks/{user}/{device}"
#: The ingester's subscriptions, and what the service publishes for every vehicle/customer
#: (telematics/topics.py: every organisation's routes).
SERVICE_READ = TOPICS
SERVICE_WRITE = (ROUTES_WILDCARD, PUSH_TOPIC.format(token="+"))
DEFAULT_SERVICE_USER = "lastmile"

PASSWORDS_FILE = "passwords"
ACL_FILE = "acl"
CONFIG_FILE = "mosquitto.conf"
CREDENTIALS_FILE = "credentials.csv"

#: Mosquitto's PBKDF2-SHA512 (``$7$``) and older SHA512 (``$6$``) formats: nothing else may
#: reach a line of the password file.
_HASH = re.compile(r"\$[67]\$(\d+\$)?[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+")
#: Usernames go into ``user:hash`` lines and ``user NAME`` ACL lines.
_USERNAME = re.compile(r"[A-Za-z0-9._@-]{1,100}")


class AclError(ValueError):
    """An account that cannot be written safely (the message says why)."""


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """A registered, unrevoked device as the export sees it."""

    device_id: str
    organisation_id: str
    #: The vehicle's external id: the ``{vehicle}`` segment of its topics.
    vehicle: str
    username: str
    password_hash: str
    protocol: str
    external_device_id: str | None = None


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """A live device API key bound to a vehicle, with its Mosquitto hash: the account the
    drivers' app connects with (api/driver_mqtt.py)."""

    key_id: str
    organisation_id: str
    vehicle: str
    #: The key's lookup prefix (``lm_<prefix>_...``): the user name ``mqtt_offer`` gives the
    #: app, which it sends with the key as password.
    username: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class MqttAccount:
    username: str
    password_hash: str
    read: tuple[str, ...]
    write: tuple[str, ...]
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Skipped:
    """A device or device key left out of the files (it cannot connect until the reason is
    fixed); ``device_id`` is the key's id for a key."""

    device_id: str
    username: str
    reason: str
    kind: str = "device"


def topic_segment_problem(text: str) -> str | None:
    """Why ``text`` cannot be one level of a topic in an ACL, or None. A ``+`` or ``#`` would
    grant a wildcard (a vehicle named ``+`` would get every vehicle's topics), a ``/`` another
    level, and a control character or edge blank would break or shift the ACL line."""
    if not text:
        return "is empty"
    if any(c in "+#/" for c in text):
        return f"{text!r} contains an MQTT wildcard or level separator (+ # /)"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return f"{text!r} contains a control character"
    if text != text.strip():
        return f"{text!r} starts or ends with a blank"
    return None


def _check_segment(what: str, text: str) -> None:
    problem = topic_segment_problem(text)
    if problem is not None:
        raise AclError(f"{what} {problem}")


def check_username(username: str) -> None:
    if not _USERNAME.fullmatch(username):
        raise AclError(f"MQTT username {username!r} is not letters, digits and . _ @ -")


def check_password_hash(password_hash: str) -> None:
    if not _HASH.fullmatch(password_hash):
        raise AclError("the stored password hash is not in Mosquitto's $7$ format")


def device_account(device: DeviceEntry, *, legacy: bool = False) -> MqttAccount:
    """The device's own topics: publish its positions (fleet or OwnTracks), read its route,
    all under its organisation (telematics/topics.py). An OsmAnd device reports over HTTP, so
    over MQTT it may only read its route. ``legacy``: a fleet device may also publish on the
    deprecated un-prefixed topics (only for a vehicle id no other organisation uses)."""
    check_username(device.username)
    check_password_hash(device.password_hash)
    _check_segment("vehicle id", device.vehicle)
    _check_segment("organisation id", device.organisation_id)
    if device.protocol == "fleet":
        write = tuple(
            vehicle_topic(device.organisation_id, device.vehicle, k) for k in DEVICE_KINDS
        )
        if legacy:
            write += tuple(legacy_topic(device.vehicle, k) for k in DEVICE_KINDS)
    elif device.protocol == "owntracks":
        user, _, name = (device.external_device_id or "").partition("/")
        _check_segment("OwnTracks user", user)
        _check_segment("OwnTracks device", name)
        write = (OWNTRACKS_TOPIC.format(user=user, device=name),)
    elif device.protocol == "osmand":
        write = ()
    else:
        raise AclError(f"unknown protocol {device.protocol!r}")
    return MqttAccount(
        device.username,
        device.password_hash,
        read=(route_topic(device.organisation_id, device.vehicle),),
        write=write,
        comment=f"device {device.device_id}: vehicle {device.vehicle}, {device.protocol}",
    )


def key_account(key: KeyEntry) -> MqttAccount:
    """The drivers' app's account: publish its vehicle's positions under its organisation
    and nothing else. It reads nothing (the app gets its stops and route over HTTP) and has
    no deprecated un-prefixed topic (the app never published there)."""
    check_username(key.username)
    check_password_hash(key.password_hash)
    _check_segment("vehicle id", key.vehicle)
    _check_segment("organisation id", key.organisation_id)
    return MqttAccount(
        key.username,
        key.password_hash,
        read=(),
        write=(vehicle_topic(key.organisation_id, key.vehicle, "position"),),
        comment=f"device key {key.key_id}: vehicle {key.vehicle}, the drivers' app",
    )


def service_account(username: str, password_hash: str) -> MqttAccount:
    check_username(username)
    check_password_hash(password_hash)
    return MqttAccount(
        username,
        password_hash,
        read=SERVICE_READ,
        write=SERVICE_WRITE,
        comment="the service: ingests device topics, publishes routes and customer pushes",
    )


def plan_accounts(
    service: MqttAccount,
    devices: Sequence[DeviceEntry],
    ambiguous_vehicles: Iterable[str] = (),
    keys: Sequence[KeyEntry] = (),
) -> tuple[list[MqttAccount], list[Skipped]]:
    """The accounts to write (the service first, then devices, then device keys) and those
    left out, with why.

    Every device gets its organisation's topics. The deprecated un-prefixed topics are granted
    too, for devices set up before the organisation was in the topic, but only for a vehicle
    id no other organisation uses (the ingester refuses such a vehicle's un-prefixed fixes as
    ambiguous). An OwnTracks topic claimed by two vehicles is left out, and so is a username
    taken twice (a device key's too).
    """
    ambiguous = set(ambiguous_vehicles)
    accounts = [service]
    skipped: list[Skipped] = []
    #: (the vehicle it is for, who it is, its account)
    built: list[tuple[str, Skipped, MqttAccount]] = []
    for device in devices:
        who = Skipped(device.device_id, device.username, "")
        try:
            account = device_account(device, legacy=device.vehicle not in ambiguous)
            built.append((f"{device.organisation_id}/{device.vehicle}", who, account))
        except AclError as exc:
            skipped.append(replace(who, reason=str(exc)))
    for key in keys:
        who = Skipped(key.key_id, key.username, "", kind="api_key")
        try:
            built.append((f"{key.organisation_id}/{key.vehicle}", who, key_account(key)))
        except AclError as exc:
            skipped.append(replace(who, reason=str(exc)))
    owners: dict[str, set[str]] = {}
    names: dict[str, int] = {service.username: 1}
    for vehicle, _, account in built:
        for topic in account.write:
            owners.setdefault(topic, set()).add(vehicle)
        names[account.username] = names.get(account.username, 0) + 1
    for _, who, account in built:
        shared = [t for t in account.write if len(owners[t]) > 1]
        if shared:
            reason = f"topic {shared[0]!r} is claimed by more than one vehicle"
        elif names[account.username] > 1:
            reason = f"username {account.username!r} is taken by another account"
        else:
            accounts.append(account)
            continue
        skipped.append(replace(who, reason=reason))
    return accounts, skipped


def acl_text(accounts: Sequence[MqttAccount], header: str = "") -> str:
    """A Mosquitto ``acl_file``: one ``user`` block per account, nothing granted outside."""
    lines = [f"# {line}" for line in header.splitlines()]
    for account in accounts:
        if lines:
            lines.append("")
        if account.comment:
            lines.append(f"# {account.comment}")
        lines.append(f"user {account.username}")
        lines.extend(f"topic read {t}" for t in account.read)
        lines.extend(f"topic write {t}" for t in account.write)
    return "\n".join(lines) + "\n"


def password_file_text(accounts: Sequence[MqttAccount]) -> str:
    """A Mosquitto ``password_file``: ``username:hash`` per account."""
    return "".join(f"{a.username}:{a.password_hash}\n" for a in accounts)


def config_text(out_dir: Path) -> str:
    """The broker settings that make the two files count (include them in mosquitto.conf)."""
    where = out_dir.resolve()
    return (
        "# lastmile (ADR 0014): no anonymous clients; each account only its own topics.\n"
        "allow_anonymous false\n"
        f"password_file {where / PASSWORDS_FILE}\n"
        f"acl_file {where / ACL_FILE}\n"
    )


def mosquitto_passwd_binary() -> str | None:
    return shutil.which("mosquitto_passwd")


def mosquitto_hash(username: str, password: str) -> str:
    """Mosquitto's hash of ``password``: from ``mosquitto_passwd`` when installed, else (or if
    it fails, or writes a format this module does not know) PBKDF2-SHA512 ``$7$`` as the
    store writes for devices, which every Mosquitto 2 reads. The password goes to the
    binary's stdin, never its command line (``-b`` would show it to every local user in the
    process list)."""
    check_username(username)
    binary = mosquitto_passwd_binary()
    if binary is None or any(c in password for c in "\r\n\x00"):
        return hash_device_password(password)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "passwd"
        try:
            subprocess.run(
                [binary, "-c", str(target), username],
                input=f"{password}\n{password}\n",
                text=True,
                capture_output=True,
                timeout=30,
                check=True,
            )
            line = target.read_text().strip()
        except (OSError, subprocess.SubprocessError):
            return hash_device_password(password)
    name, _, hashed = line.partition(":")
    if name != username or not _HASH.fullmatch(hashed):
        return hash_device_password(password)
    return hashed


def load_devices(
    session: Session, organisation_id: str | None = None
) -> tuple[list[DeviceEntry], set[str]]:
    """(the unrevoked devices, of one organisation or all; the vehicle ids that more than one
    organisation uses, among all organisations: the broker and the ingester are shared)."""
    query = (
        select(DeviceRow, VehicleRow.external_id)
        .join(VehicleRow, VehicleRow.id == DeviceRow.vehicle_id)
        .where(DeviceRow.revoked_at.is_(None))
        .order_by(DeviceRow.organisation_id, VehicleRow.external_id, DeviceRow.mqtt_username)
    )
    if organisation_id is not None:
        query = query.where(DeviceRow.organisation_id == organisation_id)
    devices = [
        DeviceEntry(
            device_id=row.id,
            organisation_id=row.organisation_id,
            vehicle=vehicle,
            username=row.mqtt_username,
            password_hash=row.password_hash,
            protocol=row.protocol,
            external_device_id=row.external_device_id,
        )
        for row, vehicle in session.execute(query)
    ]
    ambiguous = set(
        session.scalars(
            select(VehicleRow.external_id)
            .group_by(VehicleRow.external_id)
            .having(func.count(func.distinct(VehicleRow.organisation_id)) > 1)
        )
    )
    return devices, ambiguous


def load_device_keys(session: Session, organisation_id: str | None = None) -> list[KeyEntry]:
    """The unrevoked device keys bound to a vehicle whose Mosquitto hash is stored, of one
    organisation or all (keys made before revision 0014 have none: they stay on HTTP)."""
    query = (
        select(ApiKey, VehicleRow.external_id)
        .join(VehicleRow, VehicleRow.id == ApiKey.vehicle_id)
        .where(
            ApiKey.role == "device",
            ApiKey.revoked_at.is_(None),
            ApiKey.mqtt_hash.is_not(None),
            VehicleRow.organisation_id == ApiKey.organisation_id,
        )
        .order_by(ApiKey.organisation_id, VehicleRow.external_id, ApiKey.prefix)
    )
    if organisation_id is not None:
        query = query.where(ApiKey.organisation_id == organisation_id)
    return [
        KeyEntry(row.id, row.organisation_id, vehicle, row.prefix, row.mqtt_hash or "")
        for row, vehicle in session.execute(query)
    ]


def _write_private(path: Path, text: str, mode: int) -> None:
    """Write through a temporary file created with ``mode`` and renamed over ``path``: never
    readable by others even for a moment, and a broker reloading (SIGHUP) never reads half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True, slots=True)
class Written:
    passwords: Path
    acl: Path
    config: Path
    credentials: Path | None


def write_export(
    out_dir: Path,
    accounts: Sequence[MqttAccount],
    *,
    header: str = "",
    new_credentials: Sequence[tuple[str, str]] = (),
) -> Written:
    """Write the password file (0600), the ACL (0644), the config lines (0644) and, only
    when passwords were generated now, ``credentials.csv`` (0600; the only plaintext copy)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = Written(
        out_dir / PASSWORDS_FILE,
        out_dir / ACL_FILE,
        out_dir / CONFIG_FILE,
        out_dir / CREDENTIALS_FILE if new_credentials else None,
    )
    _write_private(written.passwords, password_file_text(accounts), 0o600)
    _write_private(written.acl, acl_text(accounts, header), 0o644)
    _write_private(written.config, config_text(out_dir), 0o644)
    if written.credentials is not None:
        buffer = io.StringIO()
        table = csv.writer(buffer, lineterminator="\n")
        table.writerow(["username", "password"])
        table.writerows(new_credentials)
        _write_private(written.credentials, buffer.getvalue(), 0o600)
    return written


@dataclass(frozen=True, slots=True)
class Export:
    written: Written
    service_user: str
    devices: int
    device_keys: int
    skipped: list[Skipped]

    def summary(self) -> dict[str, object]:
        return {
            "passwords": str(self.written.passwords),
            "acl": str(self.written.acl),
            "config": str(self.written.config),
            "credentials": str(self.written.credentials) if self.written.credentials else None,
            "service_user": self.service_user,
            "devices": self.devices,
            "device_keys": self.device_keys,
            "skipped": [
                {"device_id": s.device_id, "username": s.username, "reason": s.reason}
                | ({"kind": s.kind} if s.kind != "device" else {})
                for s in self.skipped
            ],
        }


def export_mosquitto(
    sessions: sessionmaker[Session],
    out_dir: Path,
    organisation_id: str | None = None,
    mqtt_url: str | None = None,
) -> Export:
    """Read the devices and device keys and write the files. The service account is
    ``mqtt_url``'s user and password (the ones the service connects with); without a password
    one is generated and written to ``credentials.csv``, the only place it appears."""
    address = BrokerAddress.parse(mqtt_url) if mqtt_url else None
    user = (address.username if address else None) or DEFAULT_SERVICE_USER
    password = address.password if address is not None and address.password else None
    new_credentials: list[tuple[str, str]] = []
    if password is None:
        password = new_device_password()
        new_credentials.append((user, password))
    service = service_account(user, mosquitto_hash(user, password))
    with sessions() as session:
        devices, ambiguous = load_devices(session, organisation_id)
        keys = load_device_keys(session, organisation_id)
    accounts, skipped = plan_accounts(service, devices, ambiguous, keys)
    key_accounts = len(keys) - sum(s.kind == "api_key" for s in skipped)
    device_accounts = len(accounts) - 1 - key_accounts
    header = (
        "Written by `lastmile devices export-mosquitto`: export again rather than edit.\n"
        f"Organisation: {organisation_id or 'all'}. Devices: {device_accounts}. "
        f"Device keys: {key_accounts}."
    )
    written = write_export(out_dir, accounts, header=header, new_credentials=new_credentials)
    return Export(written, user, device_accounts, key_accounts, skipped)
