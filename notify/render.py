"""Rendering a message for every channel: e-mail (subject, text, HTML), SMS, webhook, push.

Wording lives in one TOML catalogue per language (``templates/locales/<lang>.toml``): a few
sentences per trigger, each a small Jinja2 expression over ``brand``, ``name``, ``reference``,
``window``, ``stops``, ``minutes``, ``time`` and ``url``. The e-mail layout is a Jinja2
template with autoescape on (``templates/email.html.j2``) and a plain-text twin. Times and dates
are formatted by Babel in the recipient's locale and time zone; plural forms ("1 stop",
"3 остановки", "5 остановок") follow CLDR plural rules.

Every rendering carries the tracking link and, when the order has one, its current window.
SMS texts are counted in segments (:mod:`notify.sms`); narrow and non-breaking spaces that CLDR
puts in times ("2:10\u202fPM") are replaced by plain spaces so they stay GSM-7.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time
from jinja2 import Environment, PackageLoader, StrictUndefined, Template, select_autoescape

from notify.policy import Message
from notify.settings import Branding, Recipient
from notify.sms import SmsCount, segments
from notify.triggers import Trigger, Window

SHIPPED_LANGUAGES = ("en", "it", "es", "fr", "nl", "ru")
FALLBACK_LANGUAGE = "en"
#: Sentences each trigger needs in every catalogue.
PARTS = ("subject", "headline", "body", "sms")
#: Triggers whose SMS states an outcome or a presence instead of the window.
SMS_WITHOUT_WINDOW = frozenset({Trigger.ARRIVED, Trigger.DELIVERED, Trigger.FAILED})

_pages = Environment(
    loader=PackageLoader("notify", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_phrases = Environment(autoescape=False, undefined=StrictUndefined)

_SPACES = str.maketrans({"\u202f": " ", "\u00a0": " ", "\u2009": " "})


@dataclass(frozen=True, slots=True)
class OrderView:
    """What the customer may see of their order."""

    order_id: str
    reference: str
    customer_name: str = ""


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str
    sms: str
    sms_count: SmsCount
    #: Webhook body (JSON-serialisable).
    payload: dict[str, Any]
    #: MQTT push body (JSON-serialisable).
    push: dict[str, Any]


@cache
def catalogue(language: str) -> dict[str, Any]:
    """The parsed catalogue of a shipped language."""
    if language not in SHIPPED_LANGUAGES:
        raise KeyError(f"no catalogue for {language!r}")
    path = resources.files("notify").joinpath("templates", "locales", f"{language}.toml")
    return tomllib.loads(path.read_text(encoding="utf-8"))


@cache
def _phrase(source: str) -> Template:
    return _phrases.from_string(source)


def _say(source: str, **context: object) -> str:
    return _phrase(source).render(**context)


def resolve_locale(tag: str) -> tuple[str, Locale]:
    """Catalogue language and formatting locale for a tag; English when not shipped."""
    try:
        locale = Locale.parse(tag.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return FALLBACK_LANGUAGE, Locale.parse(FALLBACK_LANGUAGE)
    if locale.language not in SHIPPED_LANGUAGES:
        return FALLBACK_LANGUAGE, Locale.parse(FALLBACK_LANGUAGE)
    return locale.language, locale


def _time(at: datetime, zone: ZoneInfo, locale: Locale) -> str:
    return format_time(at, "short", tzinfo=zone, locale=locale)


def window_text(
    window: Window | None,
    sent_at: datetime,
    zone: ZoneInfo,
    locale: Locale,
    cat: dict[str, Any],
    *,
    short: bool,
) -> str:
    """ "between 14:10 and 14:40", with the date when it is not the day the message is sent."""
    if window is None:
        return str(cat["window_unknown"])
    start, end = _time(window.start, zone, locale), _time(window.end, zone, locale)
    local_day = window.start.astimezone(zone).date()
    if local_day == sent_at.astimezone(zone).date():
        return _say(cat["window_same_day"], start=start, end=end)
    pattern = cat["date_sms" if short else "date_email"]
    date = format_date(local_day, pattern, locale=locale)
    return _say(cat["window_other_day"], date=date, start=start, end=end)


def _plural(cat: dict[str, Any], name: str, n: int | None, locale: Locale) -> str:
    if n is None:
        return ""
    forms: dict[str, str] = cat["plural"][name]
    form = forms.get(locale.plural_form(n), forms["other"])
    return _say(form, n=n)


def _iso(at: datetime) -> str:
    return at.isoformat()


def render(
    message: Message,
    order: OrderView,
    recipient: Recipient,
    branding: Branding,
    tracking_url: str,
) -> Rendered:
    """Everything every channel needs for one message, in the recipient's language and zone."""
    if not tracking_url.startswith(("https://", "http://")):
        raise ValueError(f"tracking_url must be an http(s) URL, got {tracking_url!r}")
    language, locale = resolve_locale(message.locale or recipient.locale)
    cat = catalogue(language)
    zone = ZoneInfo(message.timezone or recipient.timezone)
    texts = cat["trigger"][str(message.trigger)]
    window = window_text(message.window, message.not_before, zone, locale, cat, short=False)
    window_sms = window_text(message.window, message.not_before, zone, locale, cat, short=True)
    context: dict[str, object] = {
        "brand": branding.name,
        "name": order.customer_name,
        "reference": order.reference,
        "window": window,
        "stops": _plural(cat, "stops", message.stops_before, locale),
        "minutes": _plural(cat, "minutes", message.minutes_away, locale),
        "time": _time(message.event_at, zone, locale),
        "url": tracking_url,
    }
    subject = _say(texts["subject"], **context)
    headline = _say(texts["headline"], **context)
    body = _say(texts["body"], **context)
    sms = _say(texts["sms"], **{**context, "window": window_sms}).translate(_SPACES)
    greeting = (
        _say(cat["greeting"], name=order.customer_name)
        if order.customer_name
        else str(cat["greeting_anonymous"])
    )
    page: dict[str, object] = {
        "lang": language,
        "subject": subject,
        "headline": headline,
        "greeting": greeting,
        "body": body,
        "window_line": _say(cat["window_line"], window=window) if message.window else "",
        "track_button": cat["track_button"],
        "track_text": _say(cat["track_text"], url=tracking_url),
        "order_line": _say(cat["order_line"], reference=order.reference),
        "footer": _say(cat["footer"], brand=branding.name),
        "url": tracking_url,
        "branding": branding,
    }
    html = _pages.get_template("email.html.j2").render(page)
    text = _pages.get_template("email.txt.j2").render(page)
    window_json: dict[str, str] | None = (
        None
        if message.window is None
        else {
            "start": _iso(message.window.start),
            "end": _iso(message.window.end),
            "text": window,
        }
    )
    payload: dict[str, Any] = {
        "type": "delivery_notification",
        "idempotency_key": message.key,
        "order_id": order.order_id,
        "reference": order.reference,
        "trigger": str(message.trigger),
        "eta_version": message.eta_version,
        "event_at": _iso(message.event_at),
        "window": window_json,
        "reason": message.reason,
        "locale": str(locale),
        "tracking_url": tracking_url,
        "subject": subject,
        "text": body,
    }
    push: dict[str, Any] = {
        "title": headline,
        "body": body,
        "url": tracking_url,
        "order_id": order.order_id,
        "trigger": str(message.trigger),
        "eta_version": message.eta_version,
        "window": window_json,
    }
    return Rendered(subject, text, html, sms, segments(sms), payload, push)
