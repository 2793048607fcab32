"""Per-tenant notification settings and branding, and one customer's preferences."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.errors import Problem, ValidationError
from notify.triggers import Trigger

#: The narrowest and widest first window an organisation may promise, minutes: under a
#: quarter of an hour is a promise no ETA keeps hours ahead; over four hours is no promise.
FIRST_WINDOW_CAP_MIN = (15, 240)


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    WEBHOOK = "webhook"
    #: MQTT push to the customer's app.
    PUSH = "push"
    #: WhatsApp Business (Cloud API): template messages, and answers inside the 24-hour window.
    WHATSAPP = "whatsapp"


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """One tenant's policy. Durations in whole seconds; quiet hours in the customer's zone.

    ``quiet_start``/``quiet_end`` may span midnight (21:00-08:00); equal or None means no quiet
    hours. ``budget_per_order`` counts notifications (one trigger at one ETA version), however
    many channels each goes out on.
    """

    enabled: frozenset[Trigger] = frozenset(Trigger)
    stops_away_n: int = 3
    minutes_away_m: int = 15
    budget_per_order: int = 6
    min_interval_s: int = 900
    quiet_start: time | None = time(21, 0)
    quiet_end: time | None = time(8, 0)
    #: A message not sent this long after its event is dropped, not sent late.
    stale_after_s: int = 3_600
    #: Same for the outcome (delivered / failed): still worth telling the next morning.
    final_stale_after_s: int = 43_200
    default_channels: tuple[Channel, ...] = (Channel.SMS, Channel.EMAIL)
    #: The shop's own endpoint: every customer's messages on the webhook channel go there
    #: (signed), so its systems (CRM, chat bot, help desk) hear what customers are told.
    webhook_url: str | None = None
    #: The first window a customer is told (at dispatch, or on the route's first fix) is at
    #: most this wide, minutes (docs/adr/0020): what the shop promises its customers.
    first_window_cap_min: int = 60
    #: Answers the service sends by itself to one order's customer (their own questions, on
    #: their channel); past it a person answers, so a confused exchange never loops.
    answers_per_order: int = 5

    def __post_init__(self) -> None:
        problems: list[Problem] = []
        if self.webhook_url is not None and not self.webhook_url.startswith(
            ("https://", "http://")
        ):
            problems.append(Problem("webhook_url", "must be an http(s):// URL"))
        for name in (
            "stops_away_n",
            "minutes_away_m",
            "budget_per_order",
            "min_interval_s",
            "answers_per_order",
        ):
            if getattr(self, name) < 0:
                problems.append(Problem(name, "must be >= 0"))
        for name in ("stale_after_s", "final_stale_after_s"):
            if getattr(self, name) <= 0:
                problems.append(Problem(name, "must be > 0"))
        low, high = FIRST_WINDOW_CAP_MIN
        if not low <= self.first_window_cap_min <= high:
            problems.append(Problem("first_window_cap_min", f"must be {low}-{high} (minutes)"))
        if (self.quiet_start is None) != (self.quiet_end is None):
            problems.append(Problem("quiet_start", "quiet_start and quiet_end come together"))
        for name in ("quiet_start", "quiet_end"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is not None:
                problems.append(Problem(name, "is a wall-clock time: no time zone"))
        if len(set(self.default_channels)) != len(self.default_channels):
            problems.append(Problem("default_channels", "lists a channel twice"))
        if problems:
            raise ValidationError(problems)

    @property
    def has_quiet_hours(self) -> bool:
        return (
            self.quiet_start is not None
            and self.quiet_end is not None
            and self.quiet_start != self.quiet_end
        )


_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_SMS_SENDER = re.compile(r"^(?:[A-Za-z0-9 ]{1,11}|\+?[0-9]{3,15})$")


@dataclass(frozen=True, slots=True)
class Branding:
    """How a tenant's messages look and who they come from.

    Colours are ``#RRGGBB`` (they go into CSS); the logo is an https URL; the SMS sender is an
    alphanumeric sender id (at most 11 characters) or a number.
    """

    name: str
    primary_colour: str = "#1f6feb"
    secondary_colour: str = "#f6f8fa"
    logo_url: str | None = None
    sender_email: str = ""
    sender_name: str = ""
    sms_sender: str = ""

    def __post_init__(self) -> None:
        problems: list[Problem] = []
        if not self.name.strip():
            problems.append(Problem("name", "must not be empty"))
        for name in ("primary_colour", "secondary_colour"):
            if not _COLOUR.match(getattr(self, name)):
                problems.append(Problem(name, "must be #RRGGBB"))
        if self.logo_url is not None and not self.logo_url.startswith("https://"):
            problems.append(Problem("logo_url", "must be an https:// URL"))
        if self.sender_email and "@" not in self.sender_email:
            problems.append(Problem("sender_email", "is not an e-mail address"))
        if self.sms_sender and not _SMS_SENDER.match(self.sms_sender):
            problems.append(Problem("sms_sender", "must be <= 11 letters/digits or a number"))
        if problems:
            raise ValidationError(problems)


@dataclass(frozen=True, slots=True)
class Recipient:
    """One customer: where to reach them, in which language and time zone, and consent.

    ``locale`` is a CLDR locale (``"it"``, ``"en_GB"``, ``"pt-BR"``); its language picks the
    message catalogue (English when not shipped) and the full locale formats dates and times.
    ``channels`` None means the tenant's defaults. A channel is used only if its address is set.
    """

    locale: str = "en"
    timezone: str = "UTC"
    email: str | None = None
    phone: str | None = None
    webhook_url: str | None = None
    push_topic: str | None = None
    channels: tuple[Channel, ...] | None = None
    opted_out_channels: frozenset[Channel] = field(default_factory=frozenset)
    opted_out: bool = False

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationError([Problem("timezone", f"unknown zone {self.timezone!r}")]) from exc

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def address(self, channel: Channel) -> str | None:
        return {
            Channel.EMAIL: self.email,
            Channel.SMS: self.phone,
            Channel.WEBHOOK: self.webhook_url,
            Channel.PUSH: self.push_topic,
            Channel.WHATSAPP: self.phone,
        }[channel]

    def reachable_channels(self, defaults: tuple[Channel, ...]) -> tuple[Channel, ...]:
        """Channels a message goes out on: preferred (or defaults), consented, addressable."""
        if self.opted_out:
            return ()
        wanted = self.channels if self.channels is not None else defaults
        return tuple(
            c for c in wanted if c not in self.opted_out_channels and self.address(c) is not None
        )
