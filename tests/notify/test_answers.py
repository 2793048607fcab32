"""The service's answers to customers' own messages: when they may leave (quiet hours, their
own budget), and how the outbox and the sender carry them (made again when they leave, on
the channel the customer wrote on, WhatsApp only with the tenant's own number set up)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from notify.answers import decide_answer
from notify.outbox import Outbox
from notify.quiet import in_quiet_hours
from notify.sender import NO_WHATSAPP, OutboxSender
from notify.settings import Channel, NotifySettings
from store.db import transaction
from store.schema import InboundChannelRow, OrderRow, Organisation, OutboxRow
from tests.notify.conftest import Store
from tests.notify.test_sender import T0, FakeChannel, rows

ROME = "Europe/Rome"
#: 23:30 in Rome (CEST): inside the default quiet hours (21:00-08:00).
NIGHT = datetime(2026, 6, 10, 21, 30, tzinfo=UTC)


def test_an_answer_leaves_now_outside_quiet_hours() -> None:
    decision = decide_answer(NotifySettings(), ROME, "+393331234567", 0, T0)
    assert decision.send_at == T0
    assert decision.handover is None


def test_an_answer_written_at_night_waits_for_eight_in_the_customers_zone() -> None:
    decision = decide_answer(NotifySettings(), ROME, "+393331234567", 0, NIGHT)
    assert decision.send_at is not None
    assert decision.send_at.astimezone(ZoneInfo(ROME)).time() == time(8, 0)
    no_quiet = NotifySettings(quiet_start=None, quiet_end=None)
    assert decide_answer(no_quiet, ROME, "+393331234567", 0, NIGHT).send_at == NIGHT


def test_past_its_budget_or_with_no_address_a_person_answers() -> None:
    settings = NotifySettings(answers_per_order=2)
    assert decide_answer(settings, ROME, "+393331234567", 2, T0).handover == "answer_budget"
    assert decide_answer(settings, ROME, "+393331234567", 1, T0).send_at == T0
    assert decide_answer(settings, ROME, "", 0, T0).handover == "no_address"


@given(
    st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    st.sampled_from(["Europe/Rome", "America/New_York", "Asia/Tokyo", "UTC"]),
)
def test_an_answer_never_leaves_inside_quiet_hours(now: datetime, zone: str) -> None:
    settings = NotifySettings()
    decision = decide_answer(settings, zone, "a@example.com", 0, now)
    assert decision.send_at is not None
    assert decision.send_at >= now
    assert settings.quiet_start is not None
    assert settings.quiet_end is not None
    quiet = in_quiet_hours(
        decision.send_at, settings.quiet_start, settings.quiet_end, ZoneInfo(zone)
    )
    assert not quiet


def _answer(store: Store, at: datetime, channel: str = "email", contact: str = "c1") -> None:
    with transaction(store.sessions) as session:
        order = session.get(OrderRow, store.order_id)
        assert order is not None
        to = "anna@example.com" if channel == "email" else "+393331234567"
        Outbox().enqueue_answer(
            session,
            order,
            contact,
            channel,
            to,
            "Arriva tra le 12:00 e le 12:30.",
            "Re: ordine",
            at,
        )


def _sender(store: Store, channel: Channel, fake: FakeChannel, clock: datetime) -> OutboxSender:
    return OutboxSender(
        store.sessions,
        {channel: fake},
        Outbox(),
        clock=lambda: clock,
        answer_text=lambda _session, order, now: f"{order.external_id} at {now:%H:%M}",
    )


def test_an_answer_is_sent_once_to_the_address_it_came_from_made_again_as_it_leaves(
    store: Store,
) -> None:
    _answer(store, T0)
    fake = FakeChannel()
    assert _sender(store, Channel.EMAIL, fake, T0).run_once(T0) == 1
    [sent] = fake.received
    assert sent.email == "anna@example.com"
    assert sent.answer is True
    assert sent.subject == "Re: ordine"
    assert sent.text == "A-17 at 10:00"  # the live answer when it left
    assert _sender(store, Channel.EMAIL, fake, T0).run_once(T0) == 0
    assert [r.status for r in rows(store)] == ["sent"]


def test_a_night_answer_is_deferred_then_released_at_eight(store: Store) -> None:
    _answer(store, NIGHT)
    [row] = rows(store)
    assert row.status == "deferred"
    fake = FakeChannel()
    assert _sender(store, Channel.EMAIL, fake, NIGHT).run_once(NIGHT) == 0
    morning = row.due_at
    assert _sender(store, Channel.EMAIL, fake, morning).run_once(morning) == 1
    assert fake.received[0].text == f"A-17 at {morning:%H:%M}"


def test_whatsapp_needs_the_tenants_own_number(store: Store) -> None:
    _answer(store, T0, channel="whatsapp")
    fake = FakeChannel()
    _sender(store, Channel.WHATSAPP, fake, T0).run_once(T0)
    [row] = rows(store)
    assert row.status == "dead"
    assert row.last_error == NO_WHATSAPP
    with transaction(store.sessions) as session:
        org = session.scalars(select(Organisation)).one()
        session.add(
            InboundChannelRow(
                organisation_id=org.id,
                provider="whatsapp",
                secret="app-secret-0123456789",
                config={
                    "phone_number_id": "1055",
                    "access_token": "EAAG-secret-token",
                    "verify_token": "v",
                },
            )
        )
    _answer(store, T0, channel="whatsapp", contact="c2")
    _sender(store, Channel.WHATSAPP, fake, T0).run_once(T0)
    [sent] = fake.received
    assert sent.phone == "+393331234567"
    assert sent.credentials["phone_number_id"] == "1055"
    assert "EAAG-secret-token" not in repr(sent)


def test_the_budget_counts_answers_not_cancelled(store: Store) -> None:
    with transaction(store.sessions) as session:
        org = session.scalars(select(Organisation)).one()
        org.notification_policy = {"answers_per_order": 1}
    _answer(store, T0)
    with transaction(store.sessions) as session:
        order = session.get(OrderRow, store.order_id)
        assert order is not None
        second = Outbox().enqueue_answer(
            session, order, "c2", "sms", "+393331234567", "x", "", T0 + timedelta(minutes=1)
        )
        assert second.handover == "answer_budget"
        assert session.scalars(select(OutboxRow)).all()[0].trigger == "answer"
