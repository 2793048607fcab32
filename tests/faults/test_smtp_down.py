"""The SMTP server down for a while, then back: each mail delivered once, in order."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.api.live_state import osmand_id
from tests.api.smtp_server import SmtpServer
from tests.fault_procs import ServiceProcess, wait_until
from tests.faults.figures import report
from tests.faults.service_day import (
    DEPOT,
    as_service,
    dispatched_day,
    new_store,
    service_env,
    smtp_env,
    sqlite_url,
)
from tests.faults.store_reads import mail_key, outbox, settled

pytestmark = pytest.mark.faults


def test_smtp_down_then_back_delivers_each_mail_once_in_order(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    """Notifications queued while the SMTP server is down are retried with backoff, and all
    delivered once it is back: each exactly once, and each customer's in the order they
    were queued (out for delivery before delivered)."""
    url = sqlite_url(tmp_path)
    admin = new_store(url)
    service = ServiceProcess(
        tmp_path / "service",
        service_env(
            url,
            LASTMILE_MQTT="false",
            LASTMILE_SENDER_BACKOFF_S="0.1",
            LASTMILE_SENDER_MAX_ATTEMPTS="30",
            **smtp_env(smtp),
        ),
        admin,
    )
    try:
        service.start()
        orders = ("a", "b", "c")
        dispatched_day(service, url, orders)
        down_at = time.monotonic()  # the SMTP server has not started yet
        at = datetime.now(UTC) - timedelta(seconds=30)
        fix: dict[str, str | float] = {
            "id": osmand_id(as_service(service, url)),
            "lat": DEPOT[0],
            "lon": DEPOT[1],
            "timestamp": int(at.timestamp()),
        }
        r = service.client.get("/osmand", params=fix)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "applied", r.text
        wait_until(
            "first messages for every order, retried while SMTP is down",
            lambda: {row.order for row in outbox(url) if row.attempts >= 5} == set(orders),
        )
        for order, kind in (("a", "delivered"), ("b", "failed"), ("c", "delivered")):
            r = service.client.post(
                "/v1/vehicles/v1/events",
                json={"order_id": order, "kind": kind, "reason": "not at home"},
                headers=service.headers(),
            )
            assert r.status_code == 201, r.text
        wait_until(
            "the outcomes queued",
            lambda: (
                {row.order for row in outbox(url) if row.trigger in ("delivered", "failed")}
                == set(orders)
            ),
        )
        queued = outbox(url)
        assert all(row.status in ("pending", "sending") for row in queued), queued
        assert not smtp.inbox.messages

        smtp.start()
        up_at = time.monotonic()
        delivered_s = wait_until(
            f"all {len(queued)} messages delivered",
            lambda: len(smtp.inbox.messages) >= len(queued) and settled(url),
            30,
        )
        rows = outbox(url)
        mails = [mail_key(m) for m in smtp.inbox.messages]
        report(
            f"SMTP down: {up_at - down_at:.1f} s; {len(queued)} messages for {len(orders)} "
            f"orders queued meanwhile, {sum(row.attempts for row in queued)} failed attempts "
            f"(backoff 0.1 s doubling); all delivered {delivered_s:.1f} s after it was back; "
            f"{len(mails)} mails received for {len(rows)} messages, "
            f"statuses {dict(Counter(row.status for row in rows))}"
        )
        assert all(row.status == "sent" for row in rows), rows
        assert sorted(mails) == sorted(row.key for row in rows), "not each message once"
        for order in orders:
            queued_order = [row.key for row in rows if row.order == order]
            mailed_order = [key for key in mails if key in queued_order]
            assert mailed_order == queued_order, (order, mailed_order, queued_order)
    finally:
        service.close()
