"""Reading a customer's message: plain text, cue files, precedence and when it is sure."""

from __future__ import annotations

import pytest

from notify.intents import INTENTS, cue_languages, cues, plain, read_message
from notify.render import SHIPPED_LANGUAGES


def test_plain_drops_accents_and_punctuation_but_keeps_letters_of_their_own() -> None:
    assert plain("Dov'è il mio PACCO??") == " dov e il mio pacco?? "
    assert plain("Où est ma commande ?") == " ou est ma commande ? "
    assert plain("Где мой заказ, ещё едет?") == " где мой заказ еще едет? "
    assert plain("Когда привезут мой заказ") == " когда привезут мой заказ "
    assert "й" in plain("мой")


@pytest.mark.parametrize("lang", SHIPPED_LANGUAGES)
def test_every_language_has_cues_of_every_kind(lang: str) -> None:
    assert lang in cue_languages()
    compiled = cues(lang)
    for kind in INTENTS:
        assert compiled[kind], f"{lang}: no {kind} cues"


@pytest.mark.parametrize(
    ("text", "lang", "intent", "sure"),
    [
        ("Hi, where is my parcel? Thanks", "en", "where_when", True),
        ("When will my refund come?", "en", "other", False),
        (
            "It says delivered but there is nothing at my door, where is it?",
            "en",
            "not_received",
            False,
        ),
        ("Where is it? Can you leave it with the neighbour", "en", "change", False),
        ("quando arriva il corriere?", "it", "where_when", True),
        ("¿cuándo llega mi pedido?", "es", "where_when", True),
        ("bonjour, quand est-ce que mon colis arrive ?", "fr", "where_when", True),
        ("wanneer wordt mijn pakket bezorgd?", "nl", "where_when", True),
        ("когда приедет курьер?", "ru", "where_when", True),
    ],
)
def test_clear_messages_are_read_as_meant(text: str, lang: str, intent: str, sure: bool) -> None:
    reading = read_message(text, lang)
    assert (reading.intent, reading.sure) == (intent, sure), reading.cues


def test_a_long_story_goes_to_a_person_even_if_it_asks_when() -> None:
    story = "Hello, " + "I ordered a birthday present for my daughter and " * 10 + "when?"
    assert not read_message(story, "en").sure


def test_a_message_in_another_language_than_the_orders_is_still_read() -> None:
    reading = read_message("¿dónde está mi pedido?", "en")
    assert reading.intent == "where_when"
    assert reading.lang == "es"
