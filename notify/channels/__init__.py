"""Delivery channels: thin adapters with one interface (``send(OutgoingMessage) -> SendResult``).

- :mod:`notify.channels.email`: SMTP (STARTTLS / implicit TLS), text plus HTML.
- :mod:`notify.channels.sms`: Twilio-shaped and generic HTTP SMS APIs.
- :mod:`notify.channels.webhook`: JSON webhooks signed with the tenant's own secrets
  (``docs/webhooks.md``), sent only to public addresses (:mod:`notify.channels.ssrf`).
- :mod:`notify.channels.push`: MQTT push on ``customers/{tracking_token}/updates`` (import it
  from there: it brings in paho and the telematics package, which the others do not need).

Channels make one attempt and classify the outcome (``sent`` / ``retry`` / ``failed``); the
outbox worker retries with backoff.
"""

from __future__ import annotations

from notify.channels.base import Channel, OutgoingMessage, SendResult, Status
from notify.channels.email import SmtpChannel
from notify.channels.sms import GenericSms, TwilioSms
from notify.channels.webhook import WebhookChannel, verify_signature

__all__ = [
    "Channel",
    "GenericSms",
    "OutgoingMessage",
    "SendResult",
    "SmtpChannel",
    "Status",
    "TwilioSms",
    "WebhookChannel",
    "verify_signature",
]
