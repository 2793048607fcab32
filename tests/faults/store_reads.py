"""The store read from the test's side, to count what survived a fault: positions, dead
letters, the outbox and its interrupted sends, orders, SQLite's integrity; and the key of each
mail received."""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from store.db import make_engine, session_factory
from store.schema import (
    DeadLetterRow,
    NotificationAttemptRow,
    OrderRow,
    OutboxRow,
    PositionRow,
    VehicleRow,
)

#: Outbox states in which the sender has nothing more to do.
FINAL = ("sent", "dead", "cancelled", "failed")


def read(url: str, statement: Any) -> list[Any]:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            return list(session.execute(statement).all())
    finally:
        engine.dispose()


def stored_fixes(url: str) -> Counter[tuple[str, float]]:
    """(vehicle id, fix time in epoch seconds) -> how many position rows hold it."""
    rows = read(
        url,
        select(VehicleRow.external_id, PositionRow.fix_time).join(
            VehicleRow, VehicleRow.id == PositionRow.vehicle_id
        ),
    )
    return Counter((vehicle, fix_time.timestamp()) for vehicle, fix_time in rows)


def stored_count(url: str) -> int:
    [(count,)] = read(url, select(func.count()).select_from(PositionRow))
    return int(count)


def dead_letters(url: str) -> Counter[str]:
    return Counter(reason for (reason,) in read(url, select(DeadLetterRow.reason)))


def check_exactly_once(
    published: set[tuple[str, float]], stored: Counter[tuple[str, float]]
) -> None:
    missing = published - set(stored)
    twice = {fix: n for fix, n in stored.items() if n > 1}
    extra = set(stored) - published
    assert not missing, f"{len(missing)} of {len(published)} fixes lost, e.g. {sorted(missing)[:3]}"
    assert not twice, f"{len(twice)} fixes stored more than once, e.g. {sorted(twice)[:3]}"
    assert not extra, f"{len(extra)} fixes stored that were never sent"


@dataclass(frozen=True)
class Outboxed:
    id: int
    order: str
    trigger: str
    key: str
    status: str
    attempts: int
    due_at: datetime


def outbox(url: str) -> list[Outboxed]:
    """The outbox rows, oldest first (each with its order's external id)."""
    rows = read(
        url,
        select(OutboxRow, OrderRow.external_id)
        .join(OrderRow, OrderRow.id == OutboxRow.order_id)
        .order_by(OutboxRow.id),
    )
    return [
        Outboxed(r.id, order, r.trigger, r.dedupe_key, r.status, r.attempts, r.due_at)
        for r, order in rows
    ]


def interrupted(url: str) -> set[int]:
    """Outbox ids with an attempt cut short by a crash (the documented at-least-once window)."""
    rows = read(
        url,
        select(NotificationAttemptRow.outbox_id).where(
            NotificationAttemptRow.status == "interrupted"
        ),
    )
    return {outbox_id for (outbox_id,) in rows}


def settled(url: str) -> bool:
    """The sender has nothing left to do now."""
    now = datetime.now(UTC)
    return all(
        row.status in FINAL or (row.status == "deferred" and row.due_at > now)
        for row in outbox(url)
    )


def mail_key(mail: EmailMessage) -> str:
    return str(mail["X-Lastmile-Idempotency-Key"]).strip()


def stored_orders(url: str) -> set[str]:
    return {external_id for (external_id,) in read(url, select(OrderRow.external_id))}


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as connection:
        result: str = connection.execute("PRAGMA integrity_check").fetchone()[0]
    connection.close()
    return result
