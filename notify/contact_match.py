"""Which order a customer's message is about, among the sender's own (issue 19).

The sender is known by the phone or e-mail the message came from; the service looks up that
tenant's open orders with that contact (never another tenant's, never another customer's).
The text may name an order (its id, the customer's reference) or carry a tracking link. An
answer goes out only about exactly one of the sender's own orders: a reference that names
none of them, or a message that could be about several, goes to a person.

Pure: the sender's orders and the text in, the order (or why none) out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

#: A tracking link's token: ``/t/<token>`` (the tracking page's path).
_TOKEN = re.compile(r"/t/([A-Za-z0-9_-]{6,64})")
#: Something that looks like an order number or reference: at least 3 digits, maybe with
#: letters and dashes around them (``#48213``, ``A-10293``, ``3342-NL``, ``№88123``).
_REFERENCE = re.compile(r"(?<![\w/])#?№?\s?([A-Za-z]{0,4}-?\d{3,}(?:-[A-Za-z0-9]{1,6})?)(?![\w/])")

Why = Literal["no_order", "several_orders", "not_theirs"]


@dataclass(frozen=True, slots=True)
class SenderOrder:
    """One of the sender's open orders, as the text might name it."""

    order_id: str
    external_id: str
    customer_ref: str | None = None
    tracking_token: str | None = None


@dataclass(frozen=True, slots=True)
class Match:
    #: The order to answer about, or None (then ``why``).
    order: SenderOrder | None
    why: Why | None
    #: What the text named (references and tracking tokens), as written.
    named: tuple[str, ...]


def named_in(text: str) -> tuple[str, ...]:
    """Tracking tokens and order references in the text, in order, each once."""
    found = [m.group(1) for m in _TOKEN.finditer(text)]
    without_links = _TOKEN.sub(" ", text)
    found += [m.group(1) for m in _REFERENCE.finditer(without_links)]
    return tuple(dict.fromkeys(found))


def _names(order: SenderOrder) -> set[str]:
    names = {order.external_id, order.customer_ref or "", order.tracking_token or ""}
    return {n.lower().lstrip("#") for n in names if n}


def words_in(text: str) -> tuple[str, ...]:
    """Every word that could be an order id or reference of any shape (``B-2``, ``X7``):
    the caller checks them against the organisation's orders, since short ids do not look
    like references."""
    return tuple(dict.fromkeys(re.findall(r"[A-Za-z0-9][A-Za-z0-9_-]*[A-Za-z0-9]|\d", text)))


def order_asked_about(text: str, orders: Sequence[SenderOrder], known: Sequence[str] = ()) -> Match:
    """The sender's order the message is about: the one it names, else their only one.
    ``known``: words of the text that are ids or references of the organisation's orders
    (anyone's), named as surely as what looks like a reference."""
    named = tuple(dict.fromkeys([*named_in(text), *known]))
    if named:
        wanted = {n.lower().lstrip("#") for n in named}
        hits = [o for o in orders if _names(o) & wanted]
        if len(hits) == 1:
            return Match(hits[0], None, named)
        if len(hits) > 1:
            return Match(None, "several_orders", named)
        if len(orders) != 1:
            return Match(None, "not_theirs" if orders else "no_order", named)
        # Their only order, and a number that names none of theirs (a phone number, a house
        # number, a typo'd reference): a person checks.
        return Match(None, "not_theirs", named)
    if len(orders) == 1:
        return Match(orders[0], None, named)
    return Match(None, "several_orders" if orders else "no_order", named)
