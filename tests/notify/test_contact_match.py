"""Which of the sender's orders a message is about: only ever one of theirs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from notify.contact_match import SenderOrder, named_in, order_asked_about

A = SenderOrder("row-a", "48213", customer_ref="A-10293", tracking_token="9f3c1a2b7d")
B = SenderOrder("row-b", "77812")


def test_references_and_tracking_links_are_found() -> None:
    text = "hi, order #48213 (ref A-10293) https://shop.example/t/9f3c1a2b7d where is it?"
    assert named_in(text) == ("9f3c1a2b7d", "48213", "A-10293")
    assert named_in("заказ №88123 когда?") == ("88123",)
    assert named_in("bestelling 3342-NL") == ("3342-NL",)
    # Times and short numbers are not references.
    assert named_in("it said 10-12, now it's 14:30") == ()


def test_the_only_order_is_answered_when_nothing_is_named() -> None:
    assert order_asked_about("where is my parcel?", [A]).order == A


def test_a_named_order_among_several_is_the_one() -> None:
    assert order_asked_about("where is 77812?", [A, B]).order == B
    assert order_asked_about("tracking https://shop.example/t/9f3c1a2b7d", [A, B]).order == A


def test_someone_elses_reference_is_never_answered() -> None:
    match = order_asked_about("where is order 55555?", [A])
    assert match.order is None
    assert match.why == "not_theirs"


def test_several_orders_and_none_go_to_a_person() -> None:
    assert order_asked_about("where is my order?", [A, B]).why == "several_orders"
    assert order_asked_about("where is my order?", []).why == "no_order"


_ids = st.from_regex(r"[A-Z]{0,2}-?[0-9]{3,7}", fullmatch=True)


@given(
    mine=st.lists(_ids, min_size=0, max_size=3, unique=True),
    text=st.text(max_size=80),
    named=st.lists(_ids, max_size=3),
)
def test_the_answer_is_always_about_one_of_the_senders_orders(
    mine: list[str], text: str, named: list[str]
) -> None:
    orders = [SenderOrder(f"row-{k}", ref) for k, ref in enumerate(mine)]
    message = " ".join([text, *named])
    match = order_asked_about(message, orders)
    assert match.order is None or match.order in orders
    if match.order is not None and match.named:
        # A message naming orders is answered only about one it names.
        assert {match.order.external_id.lower()} & {n.lower().lstrip("#") for n in match.named}
