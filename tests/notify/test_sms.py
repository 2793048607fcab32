"""SMS segment counting: GSM-7 basic and extension table, UCS-2 and surrogate pairs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notify.policy import Message
from notify.render import SHIPPED_LANGUAGES, OrderView, render
from notify.settings import Branding, Channel, Recipient
from notify.sms import Encoding, SmsCount, segments
from notify.triggers import Trigger, Window
from tests.notify.conftest import ACME, URL


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SmsCount(Encoding.GSM7, 0, 1)),
        ("a" * 160, SmsCount(Encoding.GSM7, 160, 1)),
        ("a" * 161, SmsCount(Encoding.GSM7, 161, 2)),
        ("a" * 306, SmsCount(Encoding.GSM7, 306, 2)),
        ("a" * 307, SmsCount(Encoding.GSM7, 307, 3)),
        ("€" * 80, SmsCount(Encoding.GSM7, 160, 1)),
        ("€" * 81, SmsCount(Encoding.GSM7, 162, 2)),
        ("{[~]}|^\\", SmsCount(Encoding.GSM7, 16, 1)),
        ("àèéìòù ÄÖÑÜ äöñü ß ΔΩ", SmsCount(Encoding.GSM7, 21, 1)),
        ("ç", SmsCount(Encoding.UCS2, 1, 1)),
        ("я" * 70, SmsCount(Encoding.UCS2, 70, 1)),
        ("я" * 71, SmsCount(Encoding.UCS2, 71, 2)),
        ("я" * 134, SmsCount(Encoding.UCS2, 134, 2)),
        ("я" * 135, SmsCount(Encoding.UCS2, 135, 3)),
        ("😀" * 35, SmsCount(Encoding.UCS2, 70, 1)),
        ("😀" * 36, SmsCount(Encoding.UCS2, 72, 2)),
    ],
)
def test_segment_counts(text: str, expected: SmsCount) -> None:
    """Limits 160/153 septets and 70/67 UCS-2 units; extension chars and emoji count 2."""
    assert segments(text) == expected


def test_escape_pairs_and_surrogates_are_never_split() -> None:
    """152 septets then a €: the pair moves whole into the next segment."""
    assert segments("a" * 152 + "€" + "a" * 153).segments == 3
    assert segments("a" * 151 + "€" + "a" * 153).segments == 2
    assert segments("я" * 66 + "😀" + "я" * 67).segments == 3
    assert segments("я" * 65 + "😀" + "я" * 67).segments == 2


NOW = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
TODAY = Window(datetime(2026, 3, 10, 13, 10, tzinfo=UTC), datetime(2026, 3, 10, 13, 40, tzinfo=UTC))
LATER = Window(TODAY.start + timedelta(days=2), TODAY.end + timedelta(days=2))


def _sms(language: str, trigger: Trigger) -> str:
    later = trigger in {Trigger.PLAN_CONFIRMED, Trigger.RESCHEDULED}
    message = Message(
        "o1",
        trigger,
        3,
        Channel.SMS,
        language,
        "Europe/Rome",
        NOW,
        NOW,
        LATER if later else TODAY,
        stops_before=12,
        minutes_away=15,
    )
    who = Recipient(locale=language, timezone="Europe/Rome", phone="+390000000")
    return render(message, OrderView("o1", "A-1042"), who, ACME, URL).sms


@pytest.mark.parametrize("language", SHIPPED_LANGUAGES)
def test_every_language_fits_one_segment(language: str) -> None:
    """With brand "Acme" and a 20-character link every SMS is one segment in every language.

    Counts (encoding, units) per trigger are printed with ``pytest -s``: GSM-7 for English,
    Italian, Spanish, French and Dutch (no character outside GSM-7), UCS-2 for Russian, whose
    longest text is 70 units -- a brand or link longer by even one character makes it two.
    """
    expected = Encoding.UCS2 if language == "ru" else Encoding.GSM7
    for trigger in Trigger:
        text = _sms(language, trigger)
        count = segments(text)
        print(f"{language} {trigger:<17} {count.encoding} {count.units:>3} {text}")
        assert count.encoding is expected, text
        assert count.segments == 1, text
        if language == "ru":
            assert count.units <= 70
        else:
            assert count.units <= 160


def test_non_gsm_brand_turns_the_sms_into_ucs2() -> None:
    """A brand name outside GSM-7 changes the encoding: the count says so."""
    message = Message("o1", Trigger.ARRIVED, 1, Channel.SMS, "en", "UTC", NOW, NOW, TODAY)
    who = Recipient(phone="+390000000")
    out = render(message, OrderView("o1", "A-1"), who, Branding("Crêperie Anaïs"), URL)
    assert out.sms_count.encoding is Encoding.UCS2
