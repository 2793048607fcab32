"""Invariants of the policy over random days of events (hypothesis).

Whatever the events, settings, zone and timing: never more than the budget, never during quiet
hours, never two messages for the same trigger and ETA version, ETA messages paced by the
minimum interval, nothing after "delivered", cancelled messages never sent, and the same inputs
always give the same decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import event, given, settings
from hypothesis import strategies as st

from notify.policy import Message, OrderNotifyState, decide
from notify.quiet import in_quiet_hours
from notify.settings import Channel, NotifySettings, Recipient
from notify.triggers import ETA_TRIGGERS, FINAL_TRIGGERS, DeliveryEvent, Trigger

ZONES = ["Europe/Rome", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"]
#: Days around DST changes in Europe, America and Australia, and an ordinary one.
STARTS = [
    datetime(2026, 3, 28, 12, 0, tzinfo=UTC),
    datetime(2026, 10, 24, 12, 0, tzinfo=UTC),
    datetime(2026, 3, 7, 12, 0, tzinfo=UTC),
    datetime(2026, 4, 4, 6, 0, tzinfo=UTC),
    datetime(2026, 6, 10, 6, 0, tzinfo=UTC),
]


#: Outcomes end the story, so they are drawn less often than updates.
WEIGHTED = [
    *list(Trigger),
    *[Trigger.ETA_CHANGED] * 4,
    *[Trigger.WINDOW_BROKEN] * 2,
    *[Trigger.OUT_FOR_DELIVERY, Trigger.STOPS_AWAY, Trigger.MINUTES_AWAY, Trigger.RESCHEDULED],
]


@dataclass(frozen=True)
class Step:
    advance_min: int
    trigger: Trigger | None  # None: time passes, nothing happens
    bump_version: bool
    window_in_min: int
    stops_before: int
    eta_in_min: int
    lag_min: int


steps = st.builds(
    Step,
    advance_min=st.sampled_from([0, 1, 2, 5, 10, 20, 45, 90, 240]),
    trigger=st.sampled_from([*WEIGHTED, None, None, None]),
    bump_version=st.booleans(),
    window_in_min=st.integers(-30, 24 * 60),
    stops_before=st.integers(0, 8),
    eta_in_min=st.integers(0, 60),
    lag_min=st.sampled_from([0, 0, 0, 1, 5, 90]),
)
quarter_hours = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


@st.composite
def policies(draw: st.DrawFn) -> NotifySettings:
    quiet = draw(st.none() | st.tuples(quarter_hours, quarter_hours))
    return NotifySettings(
        enabled=frozenset(draw(st.sets(st.sampled_from(list(Trigger)))))
        if draw(st.integers(0, 3)) == 0
        else frozenset(Trigger),
        stops_away_n=draw(st.integers(0, 5)),
        minutes_away_m=draw(st.integers(5, 30)),
        budget_per_order=draw(st.sampled_from([6, 3, 4, 1, 0, 8, 2])),
        min_interval_s=draw(st.sampled_from([0, 60, 600, 900, 3600])),
        quiet_start=quiet[0] if quiet else None,
        quiet_end=quiet[1] if quiet else None,
        stale_after_s=draw(st.sampled_from([300, 1800, 3600, 7200])),
        final_stale_after_s=draw(st.sampled_from([3600, 43_200, 86_400])),
    )


def quiet_at(at: datetime, s: NotifySettings, zone: ZoneInfo) -> bool:
    if not s.has_quiet_hours or s.quiet_start is None or s.quiet_end is None:
        return False
    return in_quiet_hours(at, s.quiet_start, s.quiet_end, zone)


@settings(max_examples=600, deadline=None)
@given(
    policy=policies(),
    zone=st.sampled_from(ZONES),
    start=st.sampled_from(STARTS),
    offset_min=st.integers(0, 24 * 60),
    plan=st.lists(steps, min_size=3, max_size=40),
)
def test_policy_invariants(
    policy: NotifySettings, zone: str, start: datetime, offset_min: int, plan: list[Step]
) -> None:
    """Budget, quiet hours, uniqueness, pacing, finality and determinism always hold."""
    recipient = Recipient(
        locale="it",
        timezone=zone,
        email="a@example.com",
        phone="+390000000",
        channels=(Channel.SMS, Channel.EMAIL),
    )
    tz = ZoneInfo(zone)
    state = OrderNotifyState("o1")
    now = start + timedelta(minutes=offset_min)
    version = 1
    sent: list[tuple[datetime, Message]] = []
    cancelled: set[str] = set()

    def step(events: list[DeliveryEvent]) -> None:
        nonlocal state
        decision = decide(state, events, policy, recipient, now)
        assert decision == decide(state, events, policy, recipient, now)
        for m in decision.send:
            assert not quiet_at(now, policy, tz), (now, m)
            assert m.outbox_key not in cancelled
        for m in decision.deferred:
            assert m.not_before > now
            assert not quiet_at(m.not_before, policy, tz)
        assert decision.state.committed <= policy.budget_per_order
        sent.extend((now, m) for m in decision.send)
        cancelled.update(decision.superseded)
        state = decision.state

    for s in plan:
        now += timedelta(minutes=s.advance_min)
        events: list[DeliveryEvent] = []
        if s.trigger is not None:
            version += s.bump_version
            win_start = now + timedelta(minutes=s.window_in_min)
            events.append(
                DeliveryEvent(
                    "o1",
                    s.trigger,
                    now - timedelta(minutes=s.lag_min),
                    version,
                    win_start,
                    win_start + timedelta(minutes=30),
                    stops_before=s.stops_before,
                    eta=now + timedelta(minutes=s.eta_in_min),
                )
            )
        step(events)
    for _ in range(10):  # let everything queued fall due
        if not state.pending:
            break
        now = max(now, min(m.not_before for m in state.pending))
        step([])
    assert not state.pending

    # Never two messages for the same trigger, ETA version and channel.
    outbox_keys = [m.outbox_key for _, m in sent]
    assert len(outbox_keys) == len(set(outbox_keys))
    # Never more notifications than the budget; the last slot only for an outcome.
    notifications = {m.key: (at, m) for at, m in sent}
    assert len(notifications) == state.sent_count <= policy.budget_per_order
    updates = [m for _, m in notifications.values() if m.trigger not in FINAL_TRIGGERS]
    if policy.enabled & FINAL_TRIGGERS:
        assert len(updates) <= max(0, policy.budget_per_order - 1)
    # ETA messages wait the minimum interval after the last message that told a window.
    told = sorted(
        ((at, m) for at, m in notifications.values() if m.window is not None),
        key=lambda pair: pair[0],
    )
    for (before, _), (at, m) in pairwise(told):
        if m.trigger in ETA_TRIGGERS:
            assert at - before >= timedelta(seconds=policy.min_interval_s)
    event(f"notifications sent: {min(len(notifications), 3)}+")
    event(f"deferred at some point: {any(m.not_before < at for at, m in sent)}")
    # Nothing after "delivered".
    delivered = [at for at, m in sent if m.trigger is Trigger.DELIVERED]
    if delivered:
        assert all(at <= delivered[0] for at, _ in sent)
