"""The notification policy: (order state, events, settings, recipient, now) -> Decision.

Pure and deterministic: no clock, no I/O; the caller stores :class:`OrderNotifyState`, hands it
back with the next events, sends ``Decision.send``, queues ``Decision.deferred`` (each not
before its ``not_before``; call again then with no events to release them) and cancels
``Decision.superseded`` outbox keys.

Rules, in the order they are applied to each event (events are taken in time order):

* Knowledge first: a newer ETA version updates the order's current window, and every queued
  message carrying an older window is superseded -- an ETA message is cancelled when the new
  event will itself tell the customer, and so is a queued message of the event's own trigger
  (a second *rescheduled*, say); otherwise any queued message is re-issued under the new
  version with the new window (same trigger, same ``not_before``). An outcome (delivered,
  failed) cancels every queued message that is not an outcome.
* Nothing after *delivered*; after *failed* only *rescheduled* (or a late *delivered*).
  *Rescheduled* starts a new attempt: out for delivery, nearby, arrived and failed may be told
  again (under new keys).
* A message is not sent if its trigger is disabled, if its ``(trigger, eta_version)`` key was
  ever issued (sent, queued or cancelled), if a once-per-attempt/order trigger already went out,
  if the nearby threshold (``stops_before <= N``, ``eta - at <= M`` minutes) is not met, if an
  ETA message's version is older than what the customer knows or its window is what they were
  told, if it is stale (``now - at`` beyond ``stale_after_s``, ``final_stale_after_s`` for
  outcomes; a plan or a reschedule is stale once its window has closed), if the customer
  opted out or has no usable channel, or if the budget is spent.
* Budget: ``sent + queued`` notifications never exceed ``budget_per_order``; the last slot is
  kept for the outcome (delivered / failed) whenever one of them is enabled, so "delivered" is
  never lost to a chatty ETA. Channels do not count separately.
* Pacing: ETA messages wait ``min_interval_s`` after the last message that told a window, and
  are superseded by a newer version while they wait, so a wobbling ETA sends at most one message
  per interval, always the latest. Milestones (arrived, delivered, failed) are never paced.
* Quiet hours (customer's zone): a message due inside them waits for their end, or is dropped if
  it would be stale by then. An ETA message whose newer window is already on its way in a queued
  message is merged into it (dropped).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from notify.quiet import quiet_end_after
from notify.settings import Channel, NotifySettings, Recipient
from notify.triggers import (
    ETA_TRIGGERS,
    FINAL_TRIGGERS,
    MILESTONES,
    NEARBY,
    ONCE_PER_ATTEMPT,
    ONCE_PER_ORDER,
    DeliveryEvent,
    Trigger,
    Window,
)

#: Still news until the window they announce closes.
LASTS_UNTIL_WINDOW = frozenset({Trigger.PLAN_CONFIRMED, Trigger.RESCHEDULED})


def notification_key(order_id: str, trigger: Trigger, eta_version: int) -> str:
    """The idempotency key of one notification (channels add ``:channel``)."""
    return f"{order_id}:{trigger}:{eta_version}"


@dataclass(frozen=True, slots=True)
class Message:
    """One notification on one channel. ``not_before``: now if sent now, else when it is due."""

    order_id: str
    trigger: Trigger
    eta_version: int
    channel: Channel
    locale: str
    timezone: str
    not_before: datetime
    event_at: datetime
    window: Window | None
    stops_before: int | None = None
    minutes_away: int | None = None
    reason: str = ""

    @property
    def key(self) -> str:
        """Idempotency key of the notification, shared by its channels."""
        return notification_key(self.order_id, self.trigger, self.eta_version)

    @property
    def outbox_key(self) -> str:
        """Unique per channel: the outbox's dedupe key."""
        return f"{self.key}:{self.channel}"


@dataclass(frozen=True, slots=True)
class Dropped:
    """An event that produced no message, and why (for logs and the dashboard)."""

    trigger: Trigger
    eta_version: int
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class OrderNotifyState:
    """What was already told (or queued) for one order; the policy's only memory."""

    order_id: str
    #: Every notification key ever issued: sent, queued or cancelled. Never issued twice.
    issued: frozenset[str] = frozenset()
    #: Once-per-attempt and once-per-order triggers already issued.
    fired: frozenset[Trigger] = frozenset()
    #: Notifications sent (not counting channels).
    sent_count: int = 0
    #: When a message last told the customer a window, which one, at which version.
    last_told_at: datetime | None = None
    told_window: Window | None = None
    told_version: int = -1
    #: The newest window known (from any event), told or not.
    known_window: Window | None = None
    known_version: int = -1
    #: Deferred messages, one per channel.
    pending: tuple[Message, ...] = ()
    delivered: bool = False
    failed: bool = False

    @property
    def pending_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.key for m in self.pending))

    @property
    def committed(self) -> int:
        """Notifications that count against the budget: sent plus queued."""
        return self.sent_count + len(self.pending_keys)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do now. ``deferred`` is the whole queue after this call (new, kept and re-timed
    messages: upsert them by ``outbox_key``); ``superseded`` the queued rows to cancel."""

    send: tuple[Message, ...]
    deferred: tuple[Message, ...]
    #: Outbox keys (``Message.outbox_key``) of queued messages to cancel.
    superseded: tuple[str, ...]
    dropped: tuple[Dropped, ...]
    state: OrderNotifyState


@dataclass(slots=True)
class _Work:
    """The call's scratch state; never escapes :func:`decide`."""

    state: OrderNotifyState
    settings: NotifySettings
    recipient: Recipient
    now: datetime
    send: list[Message] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)

    # -- helpers -------------------------------------------------------------------------------

    def drop(self, event: DeliveryEvent, reason: str) -> None:
        self.dropped.append(Dropped(event.trigger, event.eta_version, event.at, reason))

    def stale(
        self, trigger: Trigger, event_at: datetime, window: Window | None, at: datetime
    ) -> bool:
        """Whether a message about an event at ``event_at`` is no use if sent at ``at``.

        A plan or a new date stays news until its window closes (a plan dispatched while
        its first stops' windows are already open is still worth telling); an outcome for
        ``final_stale_after_s``; anything else for ``stale_after_s``.
        """
        s = self.settings
        if trigger in LASTS_UNTIL_WINDOW and window is not None:
            return at >= window.end
        seconds = s.final_stale_after_s if trigger in FINAL_TRIGGERS else s.stale_after_s
        return at - event_at > timedelta(seconds=seconds)

    def after_quiet(self, at: datetime) -> datetime:
        s = self.settings
        if not s.has_quiet_hours or s.quiet_start is None or s.quiet_end is None:
            return at
        return quiet_end_after(at, s.quiet_start, s.quiet_end, self.recipient.zone)

    def budget_limit(self, trigger: Trigger) -> int:
        budget = self.settings.budget_per_order
        if trigger in FINAL_TRIGGERS or not (self.settings.enabled & FINAL_TRIGGERS):
            return budget
        return budget - 1

    def cancel(self, keep: Iterable[Message]) -> None:
        """Keep only ``keep`` of the queued messages; the others' outbox rows are cancelled."""
        kept = tuple(keep)
        kept_keys = {m.outbox_key for m in kept}
        self.superseded.extend(
            m.outbox_key for m in self.state.pending if m.outbox_key not in kept_keys
        )
        self.state = replace(self.state, pending=kept)

    def told(self, messages: Sequence[Message]) -> None:
        """Bookkeeping for a notification going out now (its channel copies)."""
        first = messages[0]
        st = self.state
        self.send.extend(messages)
        if first.window is not None:
            st = replace(
                st,
                last_told_at=self.now,
                told_window=first.window,
                told_version=max(st.told_version, first.eta_version),
            )
        self.state = replace(st, sent_count=st.sent_count + 1)

    # -- superseding ---------------------------------------------------------------------------

    def supersede(self, event: DeliveryEvent, window: Window, event_tells: bool) -> None:
        """Queued messages with an older window: cancel or re-issue under the new version.

        A queued message the event's own message replaces is cancelled, not re-issued: an ETA
        message when the event is an ETA message, and any message of the event's own trigger,
        whose re-issued key would be the very key the event is about to issue.
        """
        st = self.state
        kept: list[Message] = []
        issued = set(st.issued)
        for key in st.pending_keys:
            group = [m for m in st.pending if m.key == key]
            head = group[0]
            if head.window is None or head.eta_version >= event.eta_version:
                kept.extend(group)
                continue
            if head.trigger in MILESTONES:
                kept.extend(group)
                continue
            if event_tells and (
                head.trigger is event.trigger
                or (head.trigger in ETA_TRIGGERS and event.trigger in ETA_TRIGGERS)
            ):
                continue  # the new event's own message replaces it (same key, or same news)
            new_key = notification_key(st.order_id, head.trigger, event.eta_version)
            if new_key in issued:
                continue
            issued.add(new_key)
            kept.extend(replace(m, eta_version=event.eta_version, window=window) for m in group)
        self.state = replace(self.state, issued=frozenset(issued))
        self.cancel(kept)

    # -- one event -----------------------------------------------------------------------------

    def gate(self, e: DeliveryEvent, batch_version: int) -> str | None:
        """Why this event cannot produce a message (before budget and timing), or None."""
        st, s = self.state, self.settings
        if e.trigger not in s.enabled:
            return "disabled"
        if notification_key(st.order_id, e.trigger, e.eta_version) in st.issued:
            return "duplicate"
        if e.trigger in ONCE_PER_ATTEMPT | ONCE_PER_ORDER and e.trigger in st.fired:
            return "duplicate"
        if e.trigger in NEARBY and st.fired & NEARBY:
            return "nearby_already_told"
        if e.trigger is Trigger.STOPS_AWAY and (
            e.stops_before is None or e.stops_before > s.stops_away_n
        ):
            return "threshold"
        if e.trigger is Trigger.MINUTES_AWAY:
            minutes = _minutes_away(e)
            if minutes is None or minutes > s.minutes_away_m:
                return "threshold"
        if e.trigger in ETA_TRIGGERS:
            if e.eta_version < batch_version or e.eta_version <= st.told_version:
                return "outdated"
            if e.window == st.told_window:
                return "unchanged"
        if self.stale(e.trigger, e.at, e.window, self.now):
            return "stale"
        if not self.recipient.reachable_channels(s.default_channels):
            return "opted_out" if self.recipient.opted_out else "no_channel"
        return None

    def on_event(self, e: DeliveryEvent, batch_version: int) -> None:
        st = self.state
        if e.order_id != st.order_id:
            raise ValueError(f"event for order {e.order_id!r} given to {st.order_id!r}")
        window = e.window
        newer = window is not None and e.eta_version > st.known_version
        if newer:
            self.state = replace(st, known_window=window, known_version=e.eta_version)
        if st.delivered:
            self.drop(e, "after_delivered")
            return
        if st.failed and e.trigger not in {Trigger.RESCHEDULED, Trigger.DELIVERED}:
            self.drop(e, "after_failed")
            return
        self.transition(e)
        blocked = self.gate(e, batch_version)
        if newer and window is not None:
            self.supersede(e, window, event_tells=blocked is None)
        if blocked is not None:
            self.drop(e, blocked)
            return
        if self.state.committed >= self.budget_limit(e.trigger):
            self.drop(e, "budget")
            return
        due = self.due(e.trigger)
        if self.stale(e.trigger, e.at, e.window, due):
            self.drop(e, "stale_by_quiet_end")
            return
        if e.trigger in ETA_TRIGGERS and any(
            m.eta_version >= e.eta_version and m.window is not None and m.not_before <= due
            for m in self.state.pending
        ):
            self.drop(e, "merged")
            return
        self.issue(e, due)

    def transition(self, e: DeliveryEvent) -> None:
        """State changes every event makes, told or not."""
        st = self.state
        if e.trigger is Trigger.DELIVERED:
            self.state = replace(st, delivered=True, failed=False)
            self.cancel(m for m in st.pending if m.trigger in FINAL_TRIGGERS)
        elif e.trigger is Trigger.FAILED:
            self.state = replace(st, failed=True)
            self.cancel(m for m in st.pending if m.trigger in FINAL_TRIGGERS)
        elif e.trigger is Trigger.RESCHEDULED:
            self.state = replace(st, failed=False, fired=st.fired - ONCE_PER_ATTEMPT)

    def due(self, trigger: Trigger) -> datetime:
        """The earliest a message for ``trigger`` may go: pacing, then quiet hours."""
        st = self.state
        due = self.now
        if trigger in ETA_TRIGGERS and st.last_told_at is not None:
            due = max(due, st.last_told_at + timedelta(seconds=self.settings.min_interval_s))
        return self.after_quiet(due)

    def issue(self, e: DeliveryEvent, due: datetime) -> None:
        st = self.state
        channels = self.recipient.reachable_channels(self.settings.default_channels)
        window = e.window if e.window is not None else st.known_window
        messages = [
            Message(
                order_id=st.order_id,
                trigger=e.trigger,
                eta_version=e.eta_version,
                channel=c,
                locale=self.recipient.locale,
                timezone=self.recipient.timezone,
                not_before=due,
                event_at=e.at,
                window=window,
                stops_before=e.stops_before,
                minutes_away=_minutes_away(e),
                reason=e.reason,
            )
            for c in channels
        ]
        fired = st.fired | ({e.trigger} & (ONCE_PER_ATTEMPT | ONCE_PER_ORDER))
        self.state = replace(st, issued=st.issued | {messages[0].key}, fired=fired)
        if due <= self.now:
            self.told(messages)
        else:
            self.state = replace(self.state, pending=self.state.pending + tuple(messages))

    # -- queued messages falling due -----------------------------------------------------------

    def release_due(self) -> None:
        st = self.state
        kept: list[Message] = []
        for key in st.pending_keys:
            group = [m for m in self.state.pending if m.key == key]
            head = group[0]
            if head.not_before > self.now:
                kept.extend(group)
                continue
            channels = set(self.recipient.reachable_channels(self.settings.default_channels))
            reachable = [m for m in group if m.channel in channels]
            self.superseded.extend(m.outbox_key for m in group if m.channel not in channels)
            group = reachable
            if not group:
                self.dropped.append(
                    Dropped(head.trigger, head.eta_version, head.event_at, "opted_out")
                )
                continue
            reason = self.release_blocker(head)
            if reason == "wait":
                due = self.due(head.trigger)
                if self.stale(head.trigger, head.event_at, head.window, due):
                    reason = "stale_by_quiet_end"
                else:
                    kept.extend(replace(m, not_before=due) for m in group)
                    continue
            if reason is not None:
                self.superseded.extend(m.outbox_key for m in group)
                self.dropped.append(Dropped(head.trigger, head.eta_version, head.event_at, reason))
                continue
            self.told(group)
        self.state = replace(self.state, pending=tuple(kept))

    def release_blocker(self, m: Message) -> str | None:
        """Why a due message is not sent now: "wait", a drop reason, or None to send."""
        st = self.state
        if self.stale(m.trigger, m.event_at, m.window, self.now):
            return "stale"
        if m.trigger in ETA_TRIGGERS and (
            m.window == st.told_window or m.eta_version <= st.told_version
        ):
            return "unchanged"
        if self.due(m.trigger) > self.now:
            return "wait"
        return None


def _minutes_away(e: DeliveryEvent) -> int | None:
    if e.trigger is not Trigger.MINUTES_AWAY:
        return None
    eta = e.eta if e.eta is not None else e.window_start
    if eta is None:
        return None
    return max(0, round((eta - e.at).total_seconds() / 60))


def decide(
    state: OrderNotifyState,
    events: Sequence[DeliveryEvent],
    settings: NotifySettings,
    recipient: Recipient,
    now: datetime,
) -> Decision:
    """Turn new events (and queued messages now due) into messages; see the module rules."""
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    work = _Work(state, settings, recipient, now)
    ordered = sorted(events, key=lambda e: e.at)
    batch_version = max((e.eta_version for e in ordered if e.window is not None), default=-1)
    for event in ordered:
        work.on_event(event, batch_version)
    work.release_due()
    final = work.state
    return Decision(
        send=tuple(work.send),
        deferred=final.pending,
        superseded=tuple(dict.fromkeys(work.superseded)),
        dropped=tuple(work.dropped),
        state=final,
    )
