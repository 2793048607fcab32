"""WhatsApp's webhook through the running service (issue 19): Meta's verification challenge;
signed messages answered by the service in the order's language, the answer leaving through
the outbox to a stand-in Graph API as a text message, once however often Meta delivers; a bad
or foreign signature, or an organisation without WhatsApp, learns nothing; a tap on the
notification's "leave with a neighbour" button changes the order's delivery instructions."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.app import build_channels
from api.settings import Settings
from notify.channels.whatsapp import NEIGHBOUR_PREFIX, TEMPLATE_NEIGHBOUR, WhatsAppChannel
from notify.outbox import Outbox
from notify.sender import OutboxSender
from notify.settings import Channel
from notify.triggers import DeliveryEvent, Trigger
from store.db import make_engine, session_factory, transaction
from store.repo import create_organisation
from store.schema import EventRow, OrderRow, OutboxRow, SupportContactRow
from tests.api.graph_api_server import GraphApiServer, graph_api
from tests.api.live_state import put_on_route
from tests.api.service import Service
from tests.api.test_inbound_api import QUESTIONS, _queue
from tests.api.test_support_api import _order

pytestmark = pytest.mark.integration

APP_SECRET = "meta-app-secret-0123456789abcdef"
VERIFY_TOKEN = "verify-me-0123456789"
PHONE_ID = "106540352242922"
ACCESS_TOKEN = "EAAGm0PX4ZCpsBA-tenant-token"
#: The customer's phone as the shop typed it, and as WhatsApp writes it.
PHONE = "+39 02 1234 5678"
WA_ID = "390212345678"
T = TypeVar("T")


@pytest.fixture
def graph() -> Iterator[GraphApiServer]:
    with graph_api() as server:
        server.allow(PHONE_ID, ACCESS_TOKEN)
        yield server


def _channel(s: Service, key: str | None = None) -> str:
    """Set WhatsApp up for the organisation (and no quiet hours: the test may run at night
    in Rome); the webhook's path."""
    r = s.client.put(
        "/v1/inbound/channels/whatsapp",
        json={
            "secret": APP_SECRET,
            "config": {
                "verify_token": VERIFY_TOKEN,
                "phone_number_id": PHONE_ID,
                "access_token": ACCESS_TOKEN,
            },
        },
        headers=s.headers(key),
    )
    assert r.status_code == 200, r.text
    url: str = r.json()["webhook_url"]
    assert url.endswith("/v1/inbound/whatsapp/" + url.rsplit("/", 1)[1])
    r = s.client.patch(
        "/v1/organisation",
        json={"notification_policy": {"quiet_start": None, "quiet_end": None}},
        headers=s.headers(key),
    )
    assert r.status_code == 200, r.text
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def _sign(raw: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def _post(
    s: Service, path: str, update: dict[str, Any], *, secret: str = APP_SECRET, signed: bool = True
) -> Any:
    raw = json.dumps(update).encode()
    headers = {"Content-Type": "application/json"}
    if signed:
        headers["X-Hub-Signature-256"] = _sign(raw, secret)
    return s.client.post(path, content=raw, headers=headers)


def _update(*messages: dict[str, Any], statuses: list[Any] | None = None) -> dict[str, Any]:
    """A Cloud API webhook payload as Meta sends it."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
    }
    if messages:
        value["contacts"] = [{"profile": {"name": "Anna"}, "wa_id": messages[0]["from"]}]
        value["messages"] = list(messages)
    if statuses is not None:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    }


def _text(message_id: str, body: str, sender: str = WA_ID) -> dict[str, Any]:
    return {
        "from": sender,
        "id": f"wamid.{message_id}",
        "timestamp": "1718000000",
        "type": "text",
        "text": {"body": body},
    }


def _tap(message_id: str, payload: str, text: str, sender: str = WA_ID) -> dict[str, Any]:
    """A tap on a template's quick-reply button."""
    return {
        "context": {"from": "15550783881", "id": "wamid.template1"},
        "from": sender,
        "id": f"wamid.{message_id}",
        "timestamp": "1718000100",
        "type": "button",
        "button": {"payload": payload, "text": text},
    }


def _deliver(s: Service, graph: GraphApiServer) -> int:
    """One pass of an outbox sender whose WhatsApp channel talks to ``graph``."""
    engine = make_engine(s.url)
    channel = WhatsAppChannel(graph.url, timeout_s=5)
    try:
        sender = OutboxSender(
            session_factory(engine),
            {Channel.WHATSAPP: channel},
            Outbox(),
            tracking_url=lambda token: f"https://track.example/t/{token}",
        )
        return sender.run_once(datetime.now(UTC))
    finally:
        channel.close()
        engine.dispose()


def _read(s: Service, query: Callable[[Session], T]) -> T:
    """``query`` on the service's database, in a session of its own."""
    engine = make_engine(s.url)
    try:
        with session_factory(engine)() as session:
            return query(session)
    finally:
        engine.dispose()


def _outbox(s: Service) -> list[tuple[str, str, str]]:
    """(trigger, status, last error) of every outbox row, oldest first."""
    columns = (OutboxRow.trigger, OutboxRow.status, OutboxRow.last_error)
    rows = _read(s, lambda db: db.execute(select(*columns).order_by(OutboxRow.id)).all())
    return [(t, status, error) for t, status, error in rows]


def _order_row(s: Service, order_id: str) -> OrderRow:
    row = _read(s, lambda db: db.scalar(select(OrderRow).where(OrderRow.external_id == order_id)))
    assert row is not None
    return row


def _contacts(s: Service) -> list[SupportContactRow]:
    return _read(s, lambda db: list(db.scalars(select(SupportContactRow))))


def _report(s: Service) -> dict[str, Any]:
    r = s.client.get("/v1/reports/wismo", headers=s.headers())
    assert r.status_code == 200, r.text
    day: dict[str, Any] = r.json()["days"][-1]
    return day


# -- verification ---------------------------------------------------------------------------------


def test_the_challenge_is_answered_only_for_the_verify_token(service: Service) -> None:
    s = service
    path = _channel(s)
    ok = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    r = s.client.get(path, params=ok)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text == "1158201444"
    engine = make_engine(s.url)
    try:
        other, _ = create_organisation(session_factory(engine), "Other carrier", "UTC")
    finally:
        engine.dispose()
    refusals = [
        s.client.get(path, params={**ok, "hub.verify_token": "verify-me-wrong"}),
        s.client.get(path, params={**ok, "hub.verify_token": ""}),
        s.client.get(path, params={**ok, "hub.mode": "unsubscribe"}),
        s.client.get(path, params={k: v for k, v in ok.items() if k != "hub.challenge"}),
        s.client.get(path.rsplit("/", 1)[0] + "/nosuchorganisation", params=ok),
        # An organisation without WhatsApp: the same answer as a wrong token.
        s.client.get(path.rsplit("/", 1)[0] + f"/{other}", params=ok),
    ]
    for r in refusals:
        assert r.status_code == 403, r.text
        assert "1158201444" not in r.text


# -- messages -------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", sorted(QUESTIONS))
def test_a_signed_message_is_answered_through_the_outbox_once(
    service: Service, graph: GraphApiServer, lang: str
) -> None:
    s = service
    path = _channel(s)
    _order(s, "W-1", language=lang, timezone="Europe/Rome", phone=PHONE)
    put_on_route(s.url, "W-1", datetime.now(UTC))
    update = _update(_text(f"HBgM{lang}01", QUESTIONS[lang][0]))
    r = _post(s, path, update)
    assert r.status_code == 200, r.text
    assert r.json() == {"ok": True}
    # Meta delivers again (a slow answer, a retry): the same contact, nothing queued twice.
    assert _post(s, path, update).status_code == 200
    assert _deliver(s, graph) == 1
    [message] = graph.messages()
    assert message["type"] == "text"
    assert message["to"] == WA_ID
    assert message["text"]["body"].startswith(QUESTIONS[lang][1])
    assert "/t/" in message["text"]["body"]
    [request] = graph.requests
    assert request.path.endswith(f"/{PHONE_ID}/messages")
    assert request.token == ACCESS_TOKEN
    assert _post(s, path, update).status_code == 200
    assert _deliver(s, graph) == 0
    assert len(graph.messages()) == 1
    day = _report(s)
    assert (day["contacts"], day["answered_auto"]) == (1, 1)
    [contact] = _contacts(s)
    assert (contact.channel, contact.sender) == ("whatsapp", "+" + WA_ID)
    assert contact.provider_message_id == f"whatsapp:wamid.HBgM{lang}01"


def test_bad_signatures_and_unknown_organisations_learn_nothing(
    service: Service, graph: GraphApiServer
) -> None:
    s = service
    path = _channel(s)
    _order(s, "W-2", phone=PHONE)
    put_on_route(s.url, "W-2", datetime.now(UTC))
    update = _update(_text("HBgMbad1", "where is my parcel?"))
    raw = json.dumps(update).encode()
    tampered = json.dumps(_update(_text("HBgMbad1", "where is order W-9?"))).encode()
    refusals = [
        _post(s, path, update, signed=False),
        _post(s, path, update, secret="another-app-secret-0123456789"),
        # Signed right, then changed on the way.
        s.client.post(path, content=tampered, headers={"X-Hub-Signature-256": _sign(raw)}),
        s.client.post(path, content=raw, headers={"X-Hub-Signature-256": _sign(raw)[7:]}),
        s.client.post(path, content=raw, headers={"X-Hub-Signature-256": "sha256=zzz"}),
        # Not ASCII: no signature at all (and no crash comparing it).
        s.client.post(
            path, content=raw, headers=[(b"X-Hub-Signature-256", "sha256=é".encode("latin-1"))]
        ),
        _post(s, path.rsplit("/", 1)[0] + "/nosuchorganisation", update),
    ]
    for r in refusals:
        assert r.status_code == 403, r.text
        assert "W-2" not in r.text
        assert "/t/" not in r.text
    assert len({r.text for r in refusals}) == 1
    assert _contacts(s) == []
    assert _deliver(s, graph) == 0
    assert graph.requests == []


def test_an_organisation_without_whatsapp_refuses(service: Service) -> None:
    s = service
    path = _channel(s)  # ours has WhatsApp; the other organisation has none
    engine = make_engine(s.url)
    try:
        org, other = create_organisation(session_factory(engine), "Other carrier", "UTC")
    finally:
        engine.dispose()
    r = _post(s, path.rsplit("/", 1)[0] + f"/{org}", _update(_text("HBgMx", "where?")))
    assert r.status_code == 403
    assert _queue(s, other) == []


def test_an_unknown_sender_learns_nothing_and_a_person_gets_the_message(
    service: Service, graph: GraphApiServer
) -> None:
    s = service
    path = _channel(s)
    _order(s, "W-3", phone=PHONE)
    put_on_route(s.url, "W-3", datetime.now(UTC))
    r = _post(s, path, _update(_text("HBgMu1", "hello, where is order W-3?", "447700900123")))
    assert r.status_code == 200, r.text
    assert r.json() == {"ok": True}
    assert _deliver(s, graph) == 0
    assert graph.requests == []
    [queued] = _queue(s)
    assert queued["sender"] == "+447700900123"
    assert queued["channel"] == "whatsapp"
    assert queued["handover"] in ("no_order", "not_theirs")


def test_statuses_and_unread_kinds_are_taken_and_ignored(service: Service) -> None:
    s = service
    path = _channel(s)
    status = {
        "id": "wamid.sent1",
        "status": "delivered",
        "timestamp": "1718000000",
        "recipient_id": WA_ID,
    }
    image = {
        "from": WA_ID,
        "id": "wamid.img1",
        "timestamp": "1718000000",
        "type": "image",
        "image": {"id": "1234", "mime_type": "image/jpeg"},
    }
    for update in (_update(statuses=[status]), _update(image)):
        r = _post(s, path, update)
        assert r.status_code == 200, r.text
    # A message to another number of the same Meta app is not this organisation's.
    elsewhere = _update(_text("HBgMelse", "where is my parcel?"))
    elsewhere["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"
    assert _post(s, path, elsewhere).status_code == 200
    assert _contacts(s) == []


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"object": "whatsapp_business_account"}, "entry"),
        ({"entry": {"changes": []}}, "entry"),
        (
            _update(_text("HBgMn1", "hi") | {"from": None}),
            "entry[0].changes[0].value.messages[0].from",
        ),
        (
            _update({"from": WA_ID, "id": "wamid.n2", "type": "text", "text": {}}),
            "entry[0].changes[0].value.messages[0].text.body",
        ),
        (_update(_text("HBgMn3", "x" * 5000)), "entry[0].changes[0].value.messages[0].text.body"),
    ],
)
def test_signed_json_not_of_the_cloud_apis_shape_is_422(
    service: Service, update: dict[str, Any], field: str
) -> None:
    s = service
    path = _channel(s)
    r = _post(s, path, update)
    assert r.status_code == 422, r.text
    assert [p["field"] for p in r.json()["error"]["problems"]] == [field]
    raw = b"not json"
    r = s.client.post(path, content=raw, headers={"X-Hub-Signature-256": _sign(raw)})
    assert r.status_code == 422
    assert r.json()["error"]["problems"][0]["field"] == "body"


def test_an_oversized_body_is_refused_unread(service: Service) -> None:
    s = service
    path = _channel(s)
    big = json.dumps(_update(_text("HBgMbig", "x" * 70_000))).encode()
    r = s.client.post(path, content=big, headers={"X-Hub-Signature-256": _sign(big)})
    assert r.status_code == 413, r.text

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it comes
        for _ in range(100):
            yield b" " * 4096

    r = s.client.post(path, content=chunks(), headers={"X-Hub-Signature-256": _sign(b"")})
    assert r.status_code == 413, r.text
    assert _contacts(s) == []


# -- "leave with a neighbour" ---------------------------------------------------------------------


def _notify(s: Service, order_id: str) -> None:
    """A window-broken notification for the order on WhatsApp, queued as the ingester does."""
    now = datetime.now(UTC)
    engine = make_engine(s.url)
    try:
        with transaction(session_factory(engine)) as session:
            row = session.scalar(select(OrderRow).where(OrderRow.external_id == order_id))
            assert row is not None
            row.channels = ["whatsapp"]
            window = now + timedelta(hours=1)
            event = DeliveryEvent(
                row.id, Trigger.WINDOW_BROKEN, now, 7, window, window + timedelta(minutes=30)
            )
            assert Outbox().enqueue(session, {row.id: [event]}, now) == 1
    finally:
        engine.dispose()


def test_a_tap_on_leave_with_a_neighbour_changes_the_instructions(
    service: Service, graph: GraphApiServer
) -> None:
    s = service
    path = _channel(s)
    _order(s, "W-4", language="it", timezone="Europe/Rome", phone=PHONE)
    _order(s, "W-5", language="it", phone="+39 333 000 0000")  # another customer's
    r = s.client.post(
        "/t/" + _order_row(s, "W-4").tracking_token + "/instructions",
        data={"notes": "Citofono rotto", "access_code": "", "safe_place": ""},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    put_on_route(s.url, "W-4", datetime.now(UTC))
    # The notification goes out as the template with the button ...
    _notify(s, "W-4")
    assert _deliver(s, graph) == 1
    assert _outbox(s) == [("window_broken", "sent", "")]
    [template] = graph.messages()
    assert template["template"]["name"] == TEMPLATE_NEIGHBOUR
    [payload] = [
        p["payload"]
        for c in template["template"]["components"]
        if c["type"] == "button"
        for p in c["parameters"]
    ]
    assert payload == NEIGHBOUR_PREFIX + _order_row(s, "W-4").id
    # ... and the customer taps it (the words are the template's, in their language).
    tap = _update(_tap("HBgMtap1", payload, "Lascia a un vicino"))
    assert _post(s, path, tap).status_code == 200
    assert _order_row(s, "W-4").delivery_instructions == {
        "notes": "Citofono rotto",
        "safe_place": "Lascia a un vicino",
    }
    [contact] = _contacts(s)
    assert (contact.intent, contact.answered_by, contact.channel) == ("change", "auto", "whatsapp")
    assert contact.order_id == _order_row(s, "W-4").id
    assert _report(s)["contacts"] == 1
    # Told it is noted, in Italian, through the outbox (at once, or after quiet hours).
    assert contact.answer == "Grazie: se non è in casa, lasceremo l'ordine a un vicino."
    assert _outbox(s)[-1][:2] in (("answer", "pending"), ("answer", "deferred"))
    events = select(EventRow.kind).where(EventRow.order_id == contact.order_id)
    kinds = _read(s, lambda db: list(db.scalars(events)))
    assert kinds.count("instructions_changed") == 1  # the form's save was before dispatch
    # Delivered again: nothing more.
    assert _post(s, path, tap).status_code == 200
    assert len(_contacts(s)) == 1

    # The same payload from another phone, or naming another customer's order: a person
    # reads it, and no instructions change.
    other = _order_row(s, "W-5")
    for message in (
        _tap("HBgMtap2", payload, "Lascia a un vicino", sender="393330000001"),
        _tap("HBgMtap3", NEIGHBOUR_PREFIX + other.id, "Lascia a un vicino"),
        _tap("HBgMtap4", NEIGHBOUR_PREFIX + "no-such-order", ""),
    ):
        assert _post(s, path, _update(message)).status_code == 200
    assert _order_row(s, "W-5").delivery_instructions is None
    assert _order_row(s, "W-4").delivery_instructions == {
        "notes": "Citofono rotto",
        "safe_place": "Lascia a un vicino",
    }
    queued = _queue(s)
    assert len(queued) == 3
    assert {q["channel"] for q in queued} == {"whatsapp"}


def test_the_service_builds_the_whatsapp_channel_with_its_graph_url() -> None:
    channels = build_channels(Settings(whatsapp_graph_url="http://127.0.0.1:9"))
    channel = channels[Channel.WHATSAPP]
    assert isinstance(channel, WhatsAppChannel)
    assert channel.graph_url == "http://127.0.0.1:9"
    channel.close()
    default = build_channels(Settings())[Channel.WHATSAPP]
    assert isinstance(default, WhatsAppChannel)
    assert default.graph_url is None
    default.close()
