"""The notification policy's rules, one by one."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest

from domain.errors import ValidationError
from notify.policy import Decision, OrderNotifyState, decide
from notify.settings import Branding, Channel, NotifySettings, Recipient
from notify.triggers import DeliveryEvent, Trigger
from tests.notify.conftest import ORDER, ROME, T0, event, window

S = NotifySettings()
FRESH = OrderNotifyState(ORDER)
MIN = timedelta(minutes=1)


def run(
    events: list[DeliveryEvent],
    state: OrderNotifyState = FRESH,
    now: datetime = T0,
    settings: NotifySettings = S,
    recipient: Recipient = ROME,
) -> Decision:
    return decide(state, events, settings, recipient, now)


def reasons(d: Decision) -> list[str]:
    return [x.reason for x in d.dropped]


def test_plan_confirmed_goes_out_on_every_reachable_channel() -> None:
    """The first window is told at once, on SMS and e-mail, under one idempotency key."""
    d = run([event(Trigger.PLAN_CONFIRMED)])
    assert [m.channel for m in d.send] == [Channel.SMS, Channel.EMAIL]
    assert {m.key for m in d.send} == {"o1:plan_confirmed:1"}
    assert [m.outbox_key for m in d.send] == [
        "o1:plan_confirmed:1:sms",
        "o1:plan_confirmed:1:email",
    ]
    assert d.state.sent_count == 1
    assert d.state.told_window == window(120)
    assert d.state.last_told_at == T0
    assert d.deferred == ()
    assert d.send[0].locale == "it"
    assert d.send[0].timezone == "Europe/Rome"


def test_replaying_events_sends_nothing_twice() -> None:
    """The same events handed in again (a retried batch) produce no message."""
    first = run([event(Trigger.PLAN_CONFIRMED), event(Trigger.OUT_FOR_DELIVERY, version=2)])
    again = run(
        [event(Trigger.PLAN_CONFIRMED), event(Trigger.OUT_FOR_DELIVERY, version=2)],
        first.state,
        T0 + MIN,
    )
    assert again.send == ()
    assert reasons(again) == ["duplicate", "duplicate"]


def test_decide_is_deterministic() -> None:
    """Same inputs, same decision."""
    events = [event(Trigger.PLAN_CONFIRMED), event(Trigger.ETA_CHANGED, version=2, win=window(150))]
    assert run(events) == run(events)


def test_disabled_trigger_is_dropped_but_still_changes_state() -> None:
    """A disabled "delivered" sends nothing, yet nothing is sent after it either."""
    settings = replace(S, enabled=frozenset(Trigger) - {Trigger.DELIVERED})
    d = run([event(Trigger.DELIVERED)], settings=settings)
    assert d.send == ()
    assert reasons(d) == ["disabled"]
    later = run([event(Trigger.ARRIVED, at=T0 + MIN)], d.state, T0 + MIN, settings)
    assert reasons(later) == ["after_delivered"]


def test_stops_away_threshold_and_nearby_once() -> None:
    """5 stops away is too far for N=3; 3 stops is told; then "minutes away" is not."""
    far = run([event(Trigger.STOPS_AWAY, stops_before=5)])
    assert reasons(far) == ["threshold"]
    near = run([event(Trigger.STOPS_AWAY, stops_before=3)], far.state)
    assert [m.trigger for m in near.send] == [Trigger.STOPS_AWAY, Trigger.STOPS_AWAY]
    assert near.send[0].stops_before == 3
    minutes = run(
        [event(Trigger.MINUTES_AWAY, at=T0 + MIN, eta=T0 + 10 * MIN)], near.state, T0 + MIN
    )
    assert reasons(minutes) == ["nearby_already_told"]


def test_minutes_away_uses_the_eta() -> None:
    """ETA 20 minutes out is beyond M=15; 12 minutes out is told with its minute count."""
    far = run([event(Trigger.MINUTES_AWAY, eta=T0 + 20 * MIN)])
    assert reasons(far) == ["threshold"]
    near = run([event(Trigger.MINUTES_AWAY, eta=T0 + 12 * MIN)])
    assert near.send[0].minutes_away == 12


def test_eta_change_within_min_interval_is_deferred_then_sent() -> None:
    """An ETA change 5 minutes after the last message waits for the 15-minute interval."""
    told = run([event(Trigger.OUT_FOR_DELIVERY)])
    at = T0 + 5 * MIN
    d = run([event(Trigger.ETA_CHANGED, at=at, version=2, win=window(140))], told.state, at)
    assert d.send == ()
    assert {m.not_before for m in d.deferred} == {T0 + 15 * MIN}
    assert d.state.committed == 2
    due = run([], d.state, T0 + 15 * MIN)
    assert [m.key for m in due.send] == ["o1:eta_changed:2", "o1:eta_changed:2"]
    assert due.state.told_window == window(140)
    assert due.state.pending == ()


def test_newer_eta_supersedes_a_deferred_one() -> None:
    """A queued ETA message is cancelled by a newer version, which is queued instead."""
    told = run([event(Trigger.OUT_FOR_DELIVERY)])
    v2 = run(
        [event(Trigger.ETA_CHANGED, at=T0 + 2 * MIN, version=2, win=window(140))],
        told.state,
        T0 + 2 * MIN,
    )
    v3 = run(
        [event(Trigger.WINDOW_BROKEN, at=T0 + 4 * MIN, version=3, win=window(170))],
        v2.state,
        T0 + 4 * MIN,
    )
    assert set(v3.superseded) == {m.outbox_key for m in v2.deferred}
    assert {m.key for m in v3.deferred} == {"o1:window_broken:3"}
    assert v3.state.committed == 2
    sent = run([], v3.state, T0 + 15 * MIN)
    assert {m.window for m in sent.send} == {window(170)}


def test_wobbling_eta_sends_nothing() -> None:
    """ETA moves and moves back to the told window before the interval: no message at all."""
    told = run([event(Trigger.OUT_FOR_DELIVERY)])
    away = run(
        [event(Trigger.ETA_CHANGED, at=T0 + 2 * MIN, version=2, win=window(140))],
        told.state,
        T0 + 2 * MIN,
    )
    back = run(
        [event(Trigger.ETA_CHANGED, at=T0 + 4 * MIN, version=3, win=window(120))],
        away.state,
        T0 + 4 * MIN,
    )
    assert reasons(back) == ["unchanged"]
    later = run([], back.state, T0 + 30 * MIN)
    assert later.send == ()
    assert reasons(later) == ["unchanged"]
    assert later.state.sent_count == 1


def test_older_or_same_version_is_outdated() -> None:
    """An ETA event not newer than what the customer was told is dropped."""
    told = run([event(Trigger.OUT_FOR_DELIVERY, version=4)])
    d = run(
        [event(Trigger.ETA_CHANGED, at=T0 + 20 * MIN, version=3, win=window(200))],
        told.state,
        T0 + 20 * MIN,
    )
    assert reasons(d) == ["outdated"]


def test_only_the_newest_eta_in_a_batch_is_told() -> None:
    """Two ETA versions in one batch (even out of order): only the newest is sent."""
    events = [
        event(Trigger.ETA_CHANGED, at=T0 + MIN, version=3, win=window(160)),
        event(Trigger.ETA_CHANGED, at=T0, version=2, win=window(140)),
    ]
    d = run(events, now=T0 + MIN)
    assert {m.key for m in d.send} == {"o1:eta_changed:3"}
    assert reasons(d) == ["outdated"]


def test_quiet_hours_defer_to_their_end_in_the_customers_zone() -> None:
    """Delivered at 22:30 in Rome is told at 08:00 Rome time the next morning."""
    at = datetime(2026, 6, 10, 20, 30, tzinfo=UTC)  # 22:30 CEST
    d = run([event(Trigger.DELIVERED, at=at)], now=at)
    assert d.send == ()
    assert {m.not_before for m in d.deferred} == {datetime(2026, 6, 11, 6, 0, tzinfo=UTC)}
    morning = run([], d.state, datetime(2026, 6, 11, 6, 0, tzinfo=UTC))
    assert {m.trigger for m in morning.send} == {Trigger.DELIVERED}


def test_message_stale_by_the_end_of_quiet_hours_is_dropped() -> None:
    """ "Arrived" at 22:30 would be 9.5 hours old at 08:00: dropped, budget untouched."""
    at = datetime(2026, 6, 10, 20, 30, tzinfo=UTC)
    d = run([event(Trigger.ARRIVED, at=at)], now=at)
    assert d.send == ()
    assert d.deferred == ()
    assert reasons(d) == ["stale_by_quiet_end"]
    assert d.state.committed == 0


def test_plan_confirmed_in_quiet_hours_waits_for_the_morning() -> None:
    """A plan confirmed at 23:00 for tomorrow afternoon is still news at 08:00."""
    at = datetime(2026, 6, 10, 21, 0, tzinfo=UTC)  # 23:00 CEST
    win = window(24 * 60 + 120)
    d = run([event(Trigger.PLAN_CONFIRMED, at=at, win=win)], now=at)
    assert {m.not_before for m in d.deferred} == {datetime(2026, 6, 11, 6, 0, tzinfo=UTC)}


def test_old_events_are_stale() -> None:
    """An ETA change two hours old is not sent now."""
    d = run([event(Trigger.ETA_CHANGED, at=T0 - 120 * MIN, version=2)])
    assert reasons(d) == ["stale"]


def test_budget_keeps_the_last_slot_for_the_outcome() -> None:
    """Budget 3: two updates, the third is refused, and "delivered" still goes out."""
    settings = replace(S, budget_per_order=3, min_interval_s=0)
    state = FRESH
    sent: list[str] = []
    refused: list[str] = []
    for i, trigger in enumerate(
        [Trigger.PLAN_CONFIRMED, Trigger.OUT_FOR_DELIVERY, Trigger.ETA_CHANGED, Trigger.DELIVERED]
    ):
        now = T0 + i * MIN
        d = run(
            [event(trigger, at=now, version=i + 1, win=window(120 + 10 * i))], state, now, settings
        )
        sent += [m.key for m in d.send if m.channel is Channel.SMS]
        refused += reasons(d)
        state = d.state
    assert sent == ["o1:plan_confirmed:1", "o1:out_for_delivery:2", "o1:delivered:4"]
    assert refused == ["budget"]
    assert state.sent_count == 3


def test_budget_of_one_is_only_the_outcome() -> None:
    """With one message allowed, only the outcome is told."""
    settings = replace(S, budget_per_order=1)
    d = run([event(Trigger.PLAN_CONFIRMED)], settings=settings)
    assert reasons(d) == ["budget"]
    done = run([event(Trigger.FAILED)], d.state, settings=settings)
    assert {m.trigger for m in done.send} == {Trigger.FAILED}


def test_no_reserved_slot_when_outcomes_are_disabled() -> None:
    """If delivered and failed are off, updates may use the whole budget."""
    settings = replace(
        S,
        budget_per_order=1,
        enabled=frozenset(Trigger) - {Trigger.DELIVERED, Trigger.FAILED},
    )
    assert run([event(Trigger.PLAN_CONFIRMED)], settings=settings).send


def test_outcome_cancels_queued_updates() -> None:
    """A queued ETA change is cancelled when the order is delivered."""
    told = run([event(Trigger.OUT_FOR_DELIVERY)])
    queued = run(
        [event(Trigger.ETA_CHANGED, at=T0 + MIN, version=2, win=window(150))], told.state, T0 + MIN
    )
    assert queued.deferred
    done = run([event(Trigger.DELIVERED, at=T0 + 2 * MIN, version=2)], queued.state, T0 + 2 * MIN)
    assert set(done.superseded) == {m.outbox_key for m in queued.deferred}
    assert {m.trigger for m in done.send} == {Trigger.DELIVERED}
    assert done.deferred == ()
    after = run([event(Trigger.ETA_CHANGED, at=T0 + 3 * MIN, version=3)], done.state, T0 + 3 * MIN)
    assert reasons(after) == ["after_delivered"]


def test_failed_then_rescheduled_starts_a_new_attempt() -> None:
    """After failed only a reschedule is told; then the next attempt is told afresh."""
    settings = replace(S, min_interval_s=0)
    out = run([event(Trigger.OUT_FOR_DELIVERY)], settings=settings)
    failed = run([event(Trigger.FAILED, at=T0 + MIN)], out.state, T0 + MIN, settings)
    assert {m.trigger for m in failed.send} == {Trigger.FAILED}
    blocked = run([event(Trigger.ARRIVED, at=T0 + 2 * MIN)], failed.state, T0 + 2 * MIN, settings)
    assert reasons(blocked) == ["after_failed"]
    tomorrow = window(24 * 60)
    moved = run(
        [event(Trigger.RESCHEDULED, at=T0 + 3 * MIN, version=2, win=tomorrow)],
        blocked.state,
        T0 + 3 * MIN,
        settings,
    )
    assert {m.key for m in moved.send} == {"o1:rescheduled:2"}
    next_day = T0 + timedelta(hours=22)
    again = run(
        [event(Trigger.OUT_FOR_DELIVERY, at=next_day, version=3, win=tomorrow)],
        moved.state,
        next_day,
        settings,
    )
    assert {m.key for m in again.send} == {"o1:out_for_delivery:3"}


def test_second_reschedule_replaces_a_queued_one_instead_of_doubling_it() -> None:
    """Regression (hypothesis): a queued reschedule re-issued under v2 was sent twice."""
    at = datetime(2026, 6, 11, 5, 10, tzinfo=UTC)  # 07:10 CEST, quiet until 08:00
    win = window(24 * 60 + 120)
    first = run([event(Trigger.RESCHEDULED, at=at, win=win, reason="closed")], now=at)
    assert {m.key for m in first.deferred} == {"o1:rescheduled:1"}
    second = run(
        [event(Trigger.RESCHEDULED, at=at, version=2, win=win, reason="no access")],
        first.state,
        at,
    )
    assert set(second.superseded) == {m.outbox_key for m in first.deferred}
    assert [m.outbox_key for m in second.deferred] == [
        "o1:rescheduled:2:sms",
        "o1:rescheduled:2:email",
    ]
    assert {m.reason for m in second.deferred} == {"no access"}
    assert second.state.committed == 1
    morning = run([], second.state, datetime(2026, 6, 11, 6, 0, tzinfo=UTC))
    assert [m.outbox_key for m in morning.send] == [
        "o1:rescheduled:2:sms",
        "o1:rescheduled:2:email",
    ]
    assert morning.state.sent_count == 1


def test_opted_out_customer_gets_nothing_and_spends_no_budget() -> None:
    """Opted out entirely: dropped; the budget is untouched."""
    d = run([event(Trigger.PLAN_CONFIRMED)], recipient=replace(ROME, opted_out=True))
    assert reasons(d) == ["opted_out"]
    assert d.state.committed == 0


def test_channel_preferences_opt_outs_and_addresses() -> None:
    """Preferred channels in order, minus opted-out ones and ones without an address."""
    who = replace(
        ROME,
        channels=(Channel.PUSH, Channel.EMAIL, Channel.SMS, Channel.WEBHOOK),
        push_topic="customers/42/push",
        opted_out_channels=frozenset({Channel.SMS}),
    )
    d = run([event(Trigger.PLAN_CONFIRMED)], recipient=who)
    assert [m.channel for m in d.send] == [Channel.PUSH, Channel.EMAIL]
    nobody = replace(ROME, email=None, phone=None)
    assert reasons(run([event(Trigger.PLAN_CONFIRMED)], recipient=nobody)) == ["no_channel"]


def test_opting_out_cancels_queued_messages() -> None:
    """A message queued for the morning is not sent to a customer who opted out overnight."""
    at = datetime(2026, 6, 10, 20, 30, tzinfo=UTC)
    d = run([event(Trigger.DELIVERED, at=at)], now=at)
    morning = run(
        [],
        d.state,
        datetime(2026, 6, 11, 6, 0, tzinfo=UTC),
        recipient=replace(ROME, opted_out=True),
    )
    assert morning.send == ()
    assert set(morning.superseded) == {m.outbox_key for m in d.deferred}
    assert morning.state.committed == 0


def test_eta_change_merges_into_a_queued_message() -> None:
    """Out for delivery queued until 08:00; a new ETA re-issues it with the new window."""
    at = datetime(2026, 6, 11, 5, 10, tzinfo=UTC)  # 07:10 CEST, quiet until 08:00
    win = window(24 * 60 + 60)
    queued = run([event(Trigger.OUT_FOR_DELIVERY, at=at, win=win)], now=at)
    assert queued.deferred
    later_win = window(24 * 60 + 90)
    changed = run(
        [event(Trigger.ETA_CHANGED, at=at + 20 * MIN, version=2, win=later_win)],
        queued.state,
        at + 20 * MIN,
    )
    assert reasons(changed) == ["merged"]
    assert set(changed.superseded) == {m.outbox_key for m in queued.deferred}
    assert {(m.key, m.window) for m in changed.deferred} == {("o1:out_for_delivery:2", later_win)}
    assert changed.state.committed == 1
    sent = run([], changed.state, datetime(2026, 6, 11, 6, 0, tzinfo=UTC))
    assert {m.window for m in sent.send} == {later_win}


def test_milestones_are_not_paced() -> None:
    """ "Arrived" one minute after an ETA message goes out at once."""
    told = run([event(Trigger.OUT_FOR_DELIVERY)])
    d = run([event(Trigger.ARRIVED, at=T0 + MIN)], told.state, T0 + MIN)
    assert {m.trigger for m in d.send} == {Trigger.ARRIVED}
    assert d.send[0].window == window(120)


def test_wrong_order_and_naive_times_are_refused() -> None:
    """Events of another order and a naive ``now`` are programming errors."""
    other = DeliveryEvent("o2", Trigger.ARRIVED, T0, 1)
    with pytest.raises(ValueError, match="o2"):
        run([other])
    with pytest.raises(ValueError, match="time zone"):
        run([], now=T0.replace(tzinfo=None))
    with pytest.raises(ValueError, match="window"):
        DeliveryEvent(ORDER, Trigger.ETA_CHANGED, T0, 1)


def test_settings_and_branding_are_validated() -> None:
    """Bad settings and branding list every problem, each naming its field."""
    with pytest.raises(ValidationError) as bad:
        NotifySettings(budget_per_order=-1, stale_after_s=0, quiet_start=time(21), quiet_end=None)
    assert {p.field for p in bad.value.problems} == {
        "budget_per_order",
        "stale_after_s",
        "quiet_start",
    }
    with pytest.raises(ValidationError) as brand:
        Branding("Acme", primary_colour="red;}", logo_url="javascript:alert(1)")
    assert {p.field for p in brand.value.problems} == {"primary_colour", "logo_url"}
    with pytest.raises(ValidationError):
        Recipient(timezone="Mars/Olympus")
