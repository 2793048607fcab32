"""The demo's stand-ins for the outside world, over real HTTP on loopback: the shop's webhook
endpoint checks signatures and logs deliveries; the customers' phones take the SMS API's and
the WhatsApp Cloud API's requests and log every message."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lastmile.demo.phones import ACCOUNT_SID, Phones
from lastmile.demo.webhooks import MAX_BODY_BYTES, WebhookLog
from notify.channels.webhook import signature_header

SECRET = "whsec_demo_receiver_test"


@pytest.fixture
def hooks(tmp_path: Path) -> Iterator[WebhookLog]:
    log = WebhookLog(tmp_path / "webhooks.jsonl", SECRET)
    log.start()
    yield log
    log.stop()


@pytest.fixture
def phones(tmp_path: Path) -> Iterator[tuple[Phones, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    receiver = Phones(tmp_path / "phones.jsonl", seen.append)
    receiver.start()
    yield receiver, seen
    receiver.stop()


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_the_shop_endpoint_takes_signed_deliveries_only(hooks: WebhookLog) -> None:
    body = json.dumps({"event": "eta_changed", "order": "A-1"}).encode()
    signed = {
        "X-Lastmile-Signature": signature_header(SECRET, int(time.time()), body),
        "Idempotency-Key": "k-1",
        "Content-Type": "application/json",
    }
    assert httpx.post(hooks.url, content=body, headers=signed).status_code == 200
    forged = {**signed, "X-Lastmile-Signature": signature_header("other", int(time.time()), body)}
    assert httpx.post(hooks.url, content=body, headers=forged).status_code == 401
    too_big = b"x" * (MAX_BODY_BYTES + 1)
    assert httpx.post(hooks.url, content=too_big, headers=signed).status_code == 413
    assert (hooks.count, hooks.bad_signatures) == (1, 1)
    first, second = _lines(hooks.path)
    assert first == {
        "idempotency_key": "k-1",
        "signature_ok": True,
        "body": {"event": "eta_changed", "order": "A-1"},
    }
    assert second["signature_ok"] is False


def test_the_phones_take_sms_and_whatsapp(phones: tuple[Phones, list[dict[str, Any]]]) -> None:
    receiver, seen = phones
    sms = httpx.post(
        f"{receiver.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        data={"To": "+358401234567", "From": "+358400000000", "Body": "Your order is late"},
    )
    assert sms.status_code == 201
    assert sms.json() == {"sid": "SMdemo00000001", "status": "queued"}
    template = {
        "messaging_product": "whatsapp",
        "to": "358401234568",
        "type": "template",
        "template": {
            "name": "delivery_update",
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "10:40"}]}],
        },
    }
    wa = httpx.post(f"{receiver.url}/v21.0/123/messages", json=template)
    assert wa.status_code == 200
    assert wa.json()["messages"] == [{"id": "wamid.demo00000002"}]
    assert httpx.post(f"{receiver.url}/elsewhere", content=b"{}").status_code == 404
    assert seen == _lines(receiver.path)
    assert seen == [
        {"channel": "sms", "to": "+358401234567", "text": "Your order is late"},
        {
            "channel": "whatsapp",
            "to": "+358401234568",
            "text": "10:40",
            "template": "delivery_update",
        },
    ]
