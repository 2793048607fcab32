"""Customers who write anyway: during the jam, some of the customers whose delivery runs late
write, by SMS through the shop's Twilio webhook (signed as Twilio signs it) or by WhatsApp
through the WhatsApp Business Cloud API's webhook (signed with the app secret), every other
one (issue 19).

The shop sets up both channels through the API as a real shop would (WhatsApp's verification
challenge included); each message goes to the running service over HTTP. The answers come
back as real messages through the service's outbox, to the demo's phones (``phones.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from twilio.request_validator import RequestValidator

#: A where/when question in each of the demo's languages (what a late customer asks).
WHERE = {
    "en": "hi, where is my parcel? when will it come?",
    "it": "ciao, quando arriva il mio pacco?",
    "es": "hola, ¿cuándo llega mi pedido?",
    "fr": "bonjour, quand est-ce que mon colis arrive ?",
    "nl": "hoi, wanneer wordt mijn pakket bezorgd?",
    "ru": "здравствуйте, когда привезут мой заказ?",
}
#: A request a person must handle (the service answers nothing by itself).
CHANGE = {
    "en": "I'm out now, can the driver leave it with my neighbour?",
    "it": "non sono in casa, può lasciarlo al vicino?",
    "es": "no estoy en casa, ¿puede dejarlo con el vecino?",
    "fr": "je ne suis pas là, il peut le laisser chez le voisin ?",
    "nl": "ik ben niet thuis, kan hij het bij de buren afgeven?",
    "ru": "меня нет дома, можно оставить соседям?",
}
#: Every this many late stops, the customer asks where it is; every CHANGE_EVERY-th, asks for
#: a change instead.
WRITE_EVERY = 2
CHANGE_EVERY = 3
#: The shop's WhatsApp Business number, as the Cloud API knows it.
WHATSAPP = {
    "verify_token": "demo-verify-token",
    "phone_number_id": "100200300400500",
    "access_token": "demo-whatsapp-access-token",
}


@dataclass
class TextingCustomers:
    """The shop's SMS and WhatsApp channels, and its late customers' messages."""

    client: httpx.Client
    say: Callable[[str], None]
    auth_token: str = "demo-twilio-auth-token-0000000000"
    app_secret: str = "demo-whatsapp-app-secret-000000"
    urls: dict[str, str] = field(default_factory=dict)
    late_seen: int = 0
    sent: int = 0
    #: Order id -> (its customer's phone, language), from the shop's day.
    customers: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Phones that wrote -> the order they wrote about (their phone's messages are shown).
    wrote: dict[str, str] = field(default_factory=dict)

    def open(self) -> None:
        """Set up both channels; answer WhatsApp's verification challenge as Meta checks it."""
        r = self.client.put("/v1/inbound/channels/twilio", json={"secret": self.auth_token})
        r.raise_for_status()
        self.urls["sms"] = r.json()["webhook_url"]
        r = self.client.put(
            "/v1/inbound/channels/whatsapp", json={"secret": self.app_secret, "config": WHATSAPP}
        )
        r.raise_for_status()
        self.urls["whatsapp"] = r.json()["webhook_url"]
        challenge = self.client.get(
            urlsplit(self.urls["whatsapp"]).path,
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": WHATSAPP["verify_token"],
                "hub.challenge": "1158201444",
            },
        )
        if challenge.text != "1158201444":
            raise RuntimeError(f"WhatsApp's verification challenge failed: {challenge.text!r}")

    def running_late(self, order_id: str) -> None:
        """A stop just showed late on the dashboard: maybe its customer writes."""
        self.late_seen += 1
        if order_id not in self.customers or self.late_seen % WRITE_EVERY:
            return
        phone, language = self.customers[order_id]
        asks_change = (self.late_seen // WRITE_EVERY) % CHANGE_EVERY == 0
        text = (CHANGE if asks_change else WHERE).get(language, WHERE["en"])
        channel = "whatsapp" if (self.late_seen // WRITE_EVERY) % 2 else "sms"
        self.wrote[phone] = order_id
        waits = self.send(channel, phone, text)
        self.say(
            f'{order_id}: customer writes by {channel} "{text}" -> '
            + ("for a person (support queue)" if waits else "answered by the service")
        )

    def heard(self, message: dict[str, Any]) -> None:
        """A message reached a phone: shown when its customer wrote today."""
        order_id = self.wrote.get(str(message.get("to", "")))
        if order_id is not None:
            self.say(
                f'{order_id}: customer\'s phone gets ({message["channel"]}) "{message["text"]}"'
            )

    def send(self, channel: str, phone: str, text: str) -> bool:
        """Post one message as the provider would; whether it waits for a person."""
        self.sent += 1
        if channel == "sms":
            self._sms(phone, text)
        else:
            self._whatsapp(phone, text)
        queue = self.client.get("/v1/support/queue")
        queue.raise_for_status()
        return any(c["message"] == text and c["sender"] == phone for c in queue.json())

    def _sms(self, phone: str, text: str) -> None:
        url = self.urls["sms"]
        form = {
            "MessageSid": f"SMdemo{self.sent:06d}",
            "From": phone,
            "To": "+358400000000",
            "Body": text,
        }
        signature = RequestValidator(self.auth_token).compute_signature(url, form)
        r = self.client.post(
            urlsplit(url).path,
            content=urlencode(form),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            },
        )
        r.raise_for_status()

    def _whatsapp(self, phone: str, text: str) -> None:
        number = phone.lstrip("+")
        update = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "demo-waba",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "358400000000",
                                    "phone_number_id": WHATSAPP["phone_number_id"],
                                },
                                "contacts": [{"profile": {"name": "Customer"}, "wa_id": number}],
                                "messages": [
                                    {
                                        "from": number,
                                        "id": f"wamid.demo{self.sent:06d}",
                                        "timestamp": str(int(time.time())),
                                        "type": "text",
                                        "text": {"body": text},
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
        raw = json.dumps(update).encode()
        signature = hmac.new(self.app_secret.encode(), raw, hashlib.sha256).hexdigest()
        r = self.client.post(
            urlsplit(self.urls["whatsapp"]).path,
            content=raw,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": f"sha256={signature}",
            },
        )
        r.raise_for_status()
