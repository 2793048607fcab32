"""When the service may send its own answer to a customer's message: pure, like the policy.

An answer is a reply the customer asked for, not a notification: it does not spend the
order's notification budget and it is not paced. Two of the tenant's rules still hold:

* Quiet hours (the customer's zone): an answer written inside them waits for their end. The
  text is made again when it leaves, so the customer reads what is true then, not what was
  true at night.
* A budget of its own (``answers_per_order``): past it the message goes to a person, so a
  customer who keeps asking, or an exchange the rules misread, never gets an endless series
  of the same automatic text.

A customer who opted out of notifications still gets the answer to a question they asked
(they wrote to us); a channel with no address for them cannot carry it and a person answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from notify.quiet import quiet_end_after
from notify.settings import Channel, NotifySettings

#: Contact channels whose answer leaves through the outbox (the chat answers in place, the
#: generic API returns it to the gateway that asked).
REPLY_CHANNELS: dict[str, Channel] = {
    "sms": Channel.SMS,
    "whatsapp": Channel.WHATSAPP,
    "email": Channel.EMAIL,
}
ANSWER_TRIGGER = "answer"


@dataclass(frozen=True, slots=True)
class AnswerDecision:
    """``send_at`` is when the answer leaves (now, or the end of quiet hours); None when a
    person must answer instead, and ``handover`` says why."""

    send_at: datetime | None
    handover: str | None = None


def decide_answer(
    settings: NotifySettings,
    timezone: str,
    address: str | None,
    answers_already: int,
    now: datetime,
) -> AnswerDecision:
    """When an automatic answer may leave, given the tenant's policy, the customer's zone, the
    address it goes to and how many answers this order's customer already got."""
    if not address:
        return AnswerDecision(None, "no_address")
    if answers_already >= settings.answers_per_order:
        return AnswerDecision(None, "answer_budget")
    if settings.quiet_start is not None and settings.quiet_end is not None:
        return AnswerDecision(
            quiet_end_after(now, settings.quiet_start, settings.quiet_end, ZoneInfo(timezone))
        )
    return AnswerDecision(now)
