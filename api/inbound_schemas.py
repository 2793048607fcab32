"""A customer's own message as a messaging gateway passes it on (``POST /v1/support/inbound``),
what the service did with it, and the support queue of messages waiting for a person."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.schemas import Strict


class InboundIn(Strict):
    channel: Literal["sms", "whatsapp", "email", "chat"]
    sender: str = Field(
        min_length=3,
        max_length=200,
        description="The phone number (any common form) or e-mail address it came from.",
    )
    text: str = Field(min_length=1, max_length=4000, description="The message as written.")


class InboundOut(BaseModel):
    """Nothing about any order unless ``answered_by`` is ``auto``: the answer then names only
    the sender's own order."""

    contact_id: str
    answered_by: Literal["auto"] | None = Field(
        description="auto: answer it with `answer` now, on the same channel; null: a person "
        "will (the message waits in GET /v1/support/queue)."
    )
    answer: str | None = Field(description="The text to send back (auto only).")
    intent: str = Field(examples=["where_when"])


class QueuedContactOut(BaseModel):
    contact_id: str
    channel: str
    sender: str
    message: str
    at: datetime
    intent: str | None
    handover: str | None = Field(
        description="Why a person answers: no_order, several_orders, not_theirs (the text "
        "names an order that is not the sender's), not_sure, answer_budget (the service "
        "answered this order's customer enough), no_address, automatic (an autoresponder "
        "or a bounce)."
    )
    order_id: str | None = Field(description="The sender's order it is about, if one is.")
    suggested_answer: str = Field(description="The ready answer for that order, or empty.")
    sent_at: datetime | None = Field(
        None, description="When the answer leaves (send: true): now, or after quiet hours."
    )


class AnsweredIn(Strict):
    answer: str = Field("", max_length=4000, description="What the person answered, if kept.")
    send: bool = Field(
        False,
        description="Send `answer` to the customer on the channel they wrote on (SMS, "
        "WhatsApp, e-mail), through the outbox: quiet hours and the answer budget apply. "
        "False: the person answered elsewhere (by phone, say).",
    )
