"""Rendering every message in every shipped language: window, link, escaping, plurals."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from notify.policy import Message
from notify.render import PARTS, SHIPPED_LANGUAGES, OrderView, Rendered, catalogue, render
from notify.settings import Branding, Channel, Recipient
from notify.triggers import Trigger, Window
from tests.notify.conftest import ACME, URL

NOW = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)  # 09:00 in Rome
TODAY = Window(datetime(2026, 3, 10, 13, 10, tzinfo=UTC), datetime(2026, 3, 10, 13, 40, tzinfo=UTC))
THURSDAY = Window(TODAY.start + timedelta(days=2), TODAY.end + timedelta(days=2))

#: The window 14:10-14:40 in Rome, as each language says it.
WINDOW_TEXT = {
    "en": "between 2:10\u202fPM and 2:40\u202fPM",
    "it": "tra le 14:10 e le 14:40",
    "es": "entre las 14:10 y las 14:40",
    "fr": "entre 14:10 et 14:40",
    "nl": "tussen 14:10 en 14:40",
    "ru": "с 14:10 до 14:40",  # noqa: RUF001 (Cyrillic "s", not Latin "c")
}
SMS_WITHOUT_WINDOW = {Trigger.ARRIVED, Trigger.DELIVERED, Trigger.FAILED}


def message(
    trigger: Trigger,
    language: str,
    window: Window | None = TODAY,
    zone: str = "Europe/Rome",
    stops: int | None = 3,
) -> Message:
    return Message(
        "o1",
        trigger,
        2,
        Channel.EMAIL,
        language,
        zone,
        NOW,
        NOW,
        window,
        stops_before=stops,
        minutes_away=15,
    )


def rendered(
    m: Message,
    name: str = "Anna",
    branding: Branding = ACME,
    language: str | None = None,
) -> Rendered:
    who = Recipient(locale=language or m.locale, timezone=m.timezone, email="a@example.com")
    return render(m, OrderView("o1", "A-1042", name), who, branding, URL)


@pytest.mark.parametrize("language", SHIPPED_LANGUAGES)
@pytest.mark.parametrize("trigger", list(Trigger))
def test_every_message_carries_window_and_link(language: str, trigger: Trigger) -> None:
    """Subject, text, HTML, SMS, webhook and push all render; window and link are in them."""
    out = rendered(message(trigger, language))
    window = WINDOW_TEXT[language]
    assert out.subject
    assert "{{" not in out.subject + out.text + out.html + out.sms
    assert window in out.text
    assert window in out.html
    assert window.replace("\u202f", " ") in out.sms or trigger in SMS_WITHOUT_WINDOW
    for body in (out.text, out.sms, out.push["url"], out.payload["tracking_url"]):
        assert URL in body
    assert f'href="{URL}"' in out.html
    assert "A-1042" in out.text
    assert out.payload["window"]["text"] == window
    assert out.payload["idempotency_key"] == f"o1:{trigger}:2"
    json.dumps(out.payload)
    json.dumps(out.push)


def test_html_is_escaped_and_text_is_not() -> None:
    """A hostile name and an ampersand brand are escaped in HTML, verbatim in plain text."""
    evil = "<script>alert('x')</script>"
    brand = Branding("Fish & Chips", primary_colour="#aa0000", logo_url="https://cdn.example/l.png")
    out = rendered(message(Trigger.OUT_FOR_DELIVERY, "en"), name=evil, branding=brand)
    assert "<script>" not in out.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in out.html
    assert "Fish &amp; Chips" in out.html
    assert evil in out.text
    assert "Fish & Chips" in out.subject
    assert "#aa0000" in out.html
    assert 'src="https://cdn.example/l.png"' in out.html


def test_other_day_windows_carry_the_date() -> None:
    """A window on another day names the day: in full by e-mail, short by SMS."""
    out = rendered(message(Trigger.PLAN_CONFIRMED, "it", THURSDAY))
    assert "giovedì 12 marzo tra le 14:10 e le 14:40" in out.text
    assert "il 12 mar tra le 14:10 e le 14:40" in out.sms
    ru = rendered(message(Trigger.RESCHEDULED, "ru", THURSDAY))
    assert "12 марта с 14:10 до 14:40" in ru.text  # noqa: RUF001
    assert "12.03 с 14:10 до 14:40" in ru.sms  # noqa: RUF001
    en = rendered(message(Trigger.PLAN_CONFIRMED, "en", THURSDAY))
    assert "on Thursday, March 12 between" in en.text


def test_times_follow_the_recipients_zone_and_locale() -> None:
    """New York sees 9:10 AM; en_GB uses a 24-hour clock."""
    ny = rendered(message(Trigger.ETA_CHANGED, "en", zone="America/New_York"))
    assert "between 9:10 AM and 9:40 AM" in ny.sms
    gb = rendered(message(Trigger.ETA_CHANGED, "en_GB"))
    assert "between 14:10 and 14:40" in gb.sms


@pytest.mark.parametrize(
    ("n", "words"),
    [(1, "1 остановку"), (3, "3 остановки"), (5, "5 остановок"), (21, "21 остановку")],
)
def test_russian_plural_forms(n: int, words: str) -> None:
    """CLDR plural rules pick the right Russian form (accusative after «через»)."""
    out = rendered(message(Trigger.STOPS_AWAY, "ru", stops=n))
    assert f"через {words}" in out.sms


def test_unshipped_language_falls_back_to_english() -> None:
    """Portuguese is not shipped: English throughout, dates and times included."""
    out = rendered(message(Trigger.ETA_CHANGED, "pt_BR"))
    assert out.subject.startswith("New delivery time")
    assert "between 2:10 PM and 2:40 PM" in out.sms
    assert out.payload["locale"] == "en"
    assert rendered(message(Trigger.ETA_CHANGED, "xx-nonsense")).subject.startswith("New")


def test_missing_window_says_soon() -> None:
    """Without a window the sentence still reads ("arriverà a breve") and no window line."""
    out = rendered(message(Trigger.OUT_FOR_DELIVERY, "it", window=None))
    assert "arriverà a breve" in out.sms
    assert "Fascia oraria" not in out.text
    assert out.payload["window"] is None


def test_tracking_url_must_be_http() -> None:
    """A javascript: link never reaches an e-mail."""
    m = message(Trigger.ARRIVED, "en")
    with pytest.raises(ValueError, match="tracking_url"):
        render(m, OrderView("o1", "A"), Recipient(), ACME, "javascript:alert(1)")


@pytest.mark.parametrize("language", SHIPPED_LANGUAGES)
def test_catalogues_are_complete(language: str) -> None:
    """Every catalogue has every key English has, and every SMS ends with the link."""
    english, cat = catalogue("en"), catalogue(language)
    assert set(cat) == set(english)
    for trigger in Trigger:
        assert set(cat["trigger"][str(trigger)]) == set(PARTS)
        assert cat["trigger"][str(trigger)]["sms"].endswith("{{ url }}")
    assert {"one", "other"} <= set(cat["plural"]["stops"])
