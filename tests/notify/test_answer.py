"""The ready answer to "where is my order?" in every shipped language and for every status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notify.answer import ready_answer

#: 12:00 in Rome.
NOW = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)
WINDOW = (NOW + timedelta(hours=2, minutes=10), NOW + timedelta(hours=2, minutes=40))
URL = "https://track.example/t/abc"

ON_THE_WAY = {
    "en": "Your order is on its way: 3 stops before you, expected between 2:10\u202fPM and "
    "2:40\u202fPM (running about 12 minutes late). Follow it live: " + URL,
    "it": "Il tuo ordine è in viaggio: ancora 3 fermate prima della tua, arrivo previsto tra le "
    "14:10 e le 14:40 (con circa 12 minuti di ritardo). Seguilo in tempo reale: " + URL,
    "es": "Tu pedido está en camino: 3 paradas antes de la tuya, llegada prevista entre las "
    "14:10 y las 14:40 (con unos 12 minutos de retraso). Síguelo en directo: " + URL,
    "fr": "Votre commande est en route : encore 3 livraisons avant la vôtre, arrivée prévue "
    "entre 14:10 et 14:40 (avec environ 12 minutes de retard). Suivez-la en direct : " + URL,
    "nl": "Je bestelling is onderweg: nog 3 stops vóór jou, verwacht tussen 14:10 en 14:40 "
    "(ongeveer 12 minuten later dan gepland). Volg je bestelling live: " + URL,
    "ru": "Ваш заказ в пути: до вас курьер сделает ещё 3 остановки, доставка ожидается с 14:10 "  # noqa: RUF001
    "до 14:40 (опоздание примерно на 12 минут). Следите за доставкой онлайн: " + URL,
}
DELIVERED = {
    "en": "Your order has been delivered.",
    "it": "Il tuo ordine è stato consegnato.",
    "es": "Tu pedido ha sido entregado.",
    "fr": "Votre commande a été livrée.",
    "nl": "Je bestelling is bezorgd.",
    "ru": "Ваш заказ доставлен.",
}
FAILED_WORD = {
    "en": "could not deliver",
    "it": "Non siamo riusciti a consegnare",
    "es": "No hemos podido entregar",
    "fr": "Nous n'avons pas pu livrer",
    "nl": "konden je bestelling niet bezorgen",
    "ru": "не удалось доставить",
}
NOT_PLANNED_WORD = {
    "en": "not scheduled yet",
    "it": "non è ancora stata programmata",
    "es": "aún no está programada",
    "fr": "pas encore planifiée",
    "nl": "nog niet ingepland",
    "ru": "ещё не запланирована",
}
SCHEDULED_WORD = {
    "en": "scheduled for delivery between",
    "it": "è prevista tra le",
    "es": "está prevista entre las",
    "fr": "est prévue entre",
    "nl": "staat gepland tussen",
    "ru": "запланирована с",  # noqa: RUF001
}
LANGUAGES = sorted(ON_THE_WAY)


def _answer(status: str, language: str, **changes: object) -> str:
    args: dict[str, object] = {
        "status": status,
        "window": WINDOW,
        "eta": WINDOW[0] + timedelta(minutes=15),
        "stops_before": 3,
        "delay_minutes": 12,
        "locale": language,
        "timezone": "Europe/Rome",
        "now": NOW,
        "tracking_url": URL,
    }
    args.update(changes)
    return ready_answer(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("language", LANGUAGES)
def test_on_the_way(language: str) -> None:
    """On its way: stops before, the window in the customer's zone, lateness and the link."""
    assert _answer("dispatched", language) == ON_THE_WAY[language]


@pytest.mark.parametrize("language", LANGUAGES)
def test_scheduled_not_yet_driving(language: str) -> None:
    """Dispatched without a live ETA: the plan's window, and the link."""
    text = _answer("dispatched", language, eta=None, stops_before=None, delay_minutes=None)
    assert SCHEDULED_WORD[language] in text
    assert "14:10" in text or "2:10" in text
    assert text.endswith(URL)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("status", ["open", "planned"])
def test_not_planned(language: str, status: str) -> None:
    """Not yet dispatched: no time is promised and no link given."""
    text = _answer(status, language, window=None, eta=None)
    assert NOT_PLANNED_WORD[language] in text
    assert URL not in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_delivered(language: str) -> None:
    """Delivered: just that."""
    assert _answer("delivered", language) == DELIVERED[language]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("status", ["failed", "skipped"])
def test_failed(language: str, status: str) -> None:
    """Failed or skipped: said plainly, with no window."""
    text = _answer(status, language)
    assert FAILED_WORD[language] in text
    assert "14:10" not in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_cancelled(language: str) -> None:
    """Cancelled: no window, no link."""
    text = _answer("cancelled", language)
    assert URL not in text
    assert "14:10" not in text


def test_small_delay_not_mentioned_and_next_stop() -> None:
    """A delay under five minutes is noise; no stops before means the next stop."""
    text = _answer("dispatched", "en", delay_minutes=3, stops_before=0)
    assert "late" not in text
    assert "you are the driver's next stop" in text


def test_other_day_has_the_date_and_unknown_language_falls_back() -> None:
    """A window on another day names the day; an unshipped language gets English."""
    text = _answer("dispatched", "de-DE", now=NOW - timedelta(days=1), eta=None)
    assert "on Wednesday, June 10 between" in text


def test_russian_plural_forms() -> None:
    """Stops and minutes follow Russian plural rules."""
    text = _answer("dispatched", "ru", stops_before=1, delay_minutes=21)
    assert "ещё 1 остановку" in text
    assert "на 21 минуту" in text
