"""Customers who write anyway: during the jam, some of the customers whose delivery runs late
send an SMS, through the shop's Twilio webhook, signed as Twilio signs it (issue 19).

The shop sets its Twilio channel through the API as a real shop would; each message goes to
the running service over HTTP, and the TwiML reply is what the customer's phone would show.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html import unescape
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
_MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.S)


@dataclass
class TextingCustomers:
    """The shop's Twilio channel, and its late customers' SMS."""

    client: httpx.Client
    say: Callable[[str], None]
    auth_token: str = "demo-twilio-auth-token-0000000000"
    webhook_url: str = ""
    late_seen: int = 0
    sent: int = 0
    #: Order id -> (its customer's phone, language), from the shop's day.
    customers: dict[str, tuple[str, str]] = field(default_factory=dict)

    def open(self) -> None:
        r = self.client.put("/v1/inbound/channels/twilio", json={"secret": self.auth_token})
        r.raise_for_status()
        self.webhook_url = r.json()["webhook_url"]

    def running_late(self, order_id: str) -> None:
        """A stop just showed late on the dashboard: maybe its customer writes."""
        self.late_seen += 1
        if order_id not in self.customers or self.late_seen % WRITE_EVERY:
            return
        phone, language = self.customers[order_id]
        asks_change = (self.late_seen // WRITE_EVERY) % CHANGE_EVERY == 0
        text = (CHANGE if asks_change else WHERE).get(language, WHERE["en"])
        answer = self.send(phone, text)
        self.say(
            f'{order_id}: customer texts "{text}" -> '
            + (f'answered by itself: "{answer}"' if answer else "for a person (support queue)")
        )

    def send(self, phone: str, text: str) -> str | None:
        """Post one SMS as Twilio would; the reply's text, or None (a person will answer)."""
        self.sent += 1
        form = {
            "MessageSid": f"SMdemo{self.sent:06d}",
            "From": phone,
            "To": "+358400000000",
            "Body": text,
        }
        signature = RequestValidator(self.auth_token).compute_signature(self.webhook_url, form)
        r = self.client.post(
            urlsplit(self.webhook_url).path,
            content=urlencode(form),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            },
        )
        r.raise_for_status()
        found = _MESSAGE.search(r.text)
        return unescape(found.group(1)) if found else None
