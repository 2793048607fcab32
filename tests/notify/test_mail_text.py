"""How a customer's e-mail is read, without a server (issue 19): quotes, "On ... wrote:" lines
and signatures cut off, auto-replies and bounces told apart, a message with no Message-ID or
no plain-text part still read, and the id it is recorded under fitting the store."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from notify.mail_text import InboundMail, parse_mail, provider_message_id, strip_quoted
from tests.notify.dovecot_server import mail


@pytest.mark.parametrize(
    ("reply", "own"),
    [
        (
            "When will it come?\n\nOn Mon, 1 Jun 2026 at 10:00, Acme <consegne@acme.example>\n"
            "wrote:\n> Your order is on its way\n>\n> https://lm.to/t/abc123\n",
            "When will it come?",
        ),
        (
            "Wann kommt es?\n\nAm 01.06.2026 um 10:00 schrieb Acme:\n> Ihre Bestellung\n",
            "Wann kommt es?",
        ),
        ("Et alors ?\nLe lun. 1 juin 2026, Acme a écrit :\n> Votre commande", "Et alors ?"),
        ("¿Y?\nEl lun, 1 jun 2026, Acme escribió:\n> Su pedido", "¿Y?"),
        ("Ну и где?\n\n1 июня 2026 г., Acme пишет:\n> Ваш заказ в пути", "Ну и где?"),  # noqa: RUF001
        (
            "Where is it?\n\n-----Original Message-----\nFrom: Acme\nSubject: Your order",
            "Where is it?",
        ),
        ("> quoted first\nmy answer below\n> more quote\nand more", "my answer below\nand more"),
        (
            "It says I wrote: nothing. Where is order 12345?",
            "It says I wrote: nothing. Where is order 12345?",
        ),
    ],
)
def test_only_the_customers_own_words_are_read(reply: str, own: str) -> None:
    assert strip_quoted(reply) == own


def test_auto_replies_and_bounces_are_marked_automatic() -> None:
    def parsed(message: EmailMessage) -> InboundMail:
        return parse_mail(message.as_bytes(), "fallback")

    person = mail("anna@example.com", "where?", "?")
    assert not parsed(person).automatic
    out_of_office = mail(
        "anna@example.com",
        "Out of office",
        "Back Monday",
        headers={"Auto-Submitted": "auto-replied"},
    )
    assert parsed(out_of_office).automatic
    bounce = mail("MAILER-DAEMON@mx.example", "Undelivered Mail", "...")
    assert parsed(bounce).automatic
    listed = mail("news@shop.example", "Offers", "...", headers={"Precedence": "bulk"})
    assert parsed(listed).automatic


def test_a_message_without_message_id_or_plain_part_is_still_read() -> None:
    raw = (
        b"From: =?utf-8?q?Zo=C3=AB?= <zoe@example.com>\r\nSubject: =?utf-8?q?O=C3=B9_est?=\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b"<div>O\xc3\xb9 est ma commande\x00 ?</div><blockquote>Votre commande</blockquote>"
    )
    got = parse_mail(raw, "fallback-id")
    assert got == InboundMail("fallback-id", "zoe@example.com", "Où est", "Où est ma commande ?")


def test_provider_message_ids_fit_the_store() -> None:
    assert provider_message_id("<abc@mail.example>") == "email:abc@mail.example"
    long_id = provider_message_id("<" + "x" * 200 + "@mail.example>")
    assert long_id.startswith("email:sha256:")
    assert len(long_id) <= 100
