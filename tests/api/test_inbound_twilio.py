"""Twilio's incoming-SMS webhook through the running service (issue 19): a signed question is
answered by SMS through the outbox (read at a Twilio-shaped SMS API), in the order's
language, once; at night the answer waits for the end of quiet hours; a bad, missing or
foreign signature, or an organisation without a Twilio channel, learns nothing; a replayed
message is one contact. The generic SMS gateway's signed JSON webhook likewise."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from notify.channels.webhook import SIGNATURE_HEADER, signature_header
from store.db import make_engine, session_factory
from store.repo import create_organisation
from store.schema import OutboxRow
from tests.api.live_state import put_on_route
from tests.api.service import Service, running
from tests.api.sms_api_server import SmsApi, sms_api
from tests.api.test_inbound_api import QUESTIONS, _queue
from tests.api.test_support_api import _order

pytestmark = pytest.mark.integration

TOKEN = "twilio-auth-token-0123456789abcdef"
PHONE = "+39 02 1234 5678"


@pytest.fixture
def texting(database_url: str, tmp_path: Path) -> Iterator[tuple[Service, SmsApi]]:
    """The service with its sender on, texting through a Twilio-shaped SMS API."""
    with (
        sms_api() as api,
        running(
            database_url,
            tmp_path,
            sender_enabled=True,
            sms_twilio_base_url=api.url,
            sms_twilio_account_sid=api.account_sid,
            sms_twilio_auth_token=api.auth_token,
            sms_from="+15005550006",
        ) as s,
    ):
        yield s, api


def _texts(api: SmsApi, to: str, count: int = 1, timeout_s: float = 15.0) -> list[str]:
    """The texts sent to ``to`` once there are ``count`` (then a moment more, to see extras)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(api.bodies(to)) < count:
        time.sleep(0.05)
    time.sleep(0.5)
    return api.bodies(to)


def _channel(s: Service, token: str = TOKEN, key: str | None = None) -> str:
    r = s.client.put("/v1/inbound/channels/twilio", json={"secret": token}, headers=s.headers(key))
    assert r.status_code == 200, r.text
    url: str = r.json()["webhook_url"]
    return url


def _post(
    s: Service, url: str, form: dict[str, str], *, token: str = TOKEN, signed: bool = True
) -> Any:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signed:
        headers["X-Twilio-Signature"] = RequestValidator(token).compute_signature(url, form)
    path = url.split("://", 1)[1].split("/", 1)[1]
    return s.client.post("/" + path, content=urlencode(form), headers=headers)


def _sms(sid: str, body: str, sender: str = "+390212345678") -> dict[str, str]:
    return {"MessageSid": sid, "From": sender, "To": "+3902000000", "Body": body}


@pytest.mark.parametrize("lang", sorted(QUESTIONS))
def test_a_signed_sms_is_answered_by_sms_once(texting: tuple[Service, SmsApi], lang: str) -> None:
    s, api = texting
    url = _channel(s)
    _order(s, "T-1", language=lang, timezone="UTC", phone=PHONE)
    put_on_route(s.url, "T-1", datetime.now(UTC))
    _policy(s, {"quiet_start": None, "quiet_end": None})
    form = _sms(f"SM{lang}1", QUESTIONS[lang][0])
    r = _post(s, url, form)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/xml")
    assert "<Message>" not in r.text  # the answer leaves through the outbox
    [text] = _texts(api, "+390212345678")
    assert text.startswith(QUESTIONS[lang][1])
    assert "/t/" in text
    # Twilio retries: the same message is the same contact, answered once.
    again = _post(s, url, form)
    assert again.status_code == 200
    assert _texts(api, "+390212345678") == [text]
    report = s.client.get("/v1/reports/wismo", headers=s.headers()).json()
    assert report["days"][-1]["contacts"] == 1
    assert report["days"][-1]["answered_auto"] == 1


def _policy(s: Service, policy: dict[str, Any]) -> None:
    r = s.client.patch(
        "/v1/organisation", json={"notification_policy": policy}, headers=s.headers()
    )
    assert r.status_code == 200, r.text


def test_inside_quiet_hours_the_answer_waits_in_the_outbox(
    texting: tuple[Service, SmsApi],
) -> None:
    s, api = texting
    url = _channel(s)
    _order(s, "T-3", language="en", timezone="UTC", phone=PHONE)
    put_on_route(s.url, "T-3", datetime.now(UTC))
    hour = datetime.now(UTC).hour
    # Quiet hours around now (UTC, the customer's zone), for the next two hours at least.
    _policy(s, {"quiet_start": f"{hour:02d}:00", "quiet_end": f"{(hour + 3) % 24:02d}:00"})
    r = _post(s, url, _sms("SMq1", "where is my parcel?"))
    assert r.status_code == 200, r.text
    assert _texts(api, "+390212345678", timeout_s=2.0) == []
    engine = make_engine(s.url)
    try:
        with session_factory(engine)() as session:
            [row] = session.scalars(select(OutboxRow).where(OutboxRow.trigger == "answer")).all()
    finally:
        engine.dispose()
    assert row.status == "deferred"
    assert row.due_at.hour == (hour + 3) % 24


def test_the_generic_gateway_is_signed_like_our_webhooks(
    texting: tuple[Service, SmsApi],
) -> None:
    s, api = texting
    secret = "gateway-secret-0123456789abcdef"
    r = s.client.put("/v1/inbound/channels/sms", json={"secret": secret}, headers=s.headers())
    assert r.status_code == 200, r.text
    path = "/" + r.json()["webhook_url"].split("://", 1)[1].split("/", 1)[1]
    _order(s, "T-4", language="nl", timezone="UTC", phone=PHONE)
    put_on_route(s.url, "T-4", datetime.now(UTC))
    _policy(s, {"quiet_start": None, "quiet_end": None})
    body = json.dumps({"id": "gw-1", "from": "+390212345678", "text": QUESTIONS["nl"][0]})

    def post(raw: str, key: str = secret, at: float | None = None) -> Any:
        stamp = int(at if at is not None else time.time())
        header = signature_header(key, stamp, raw.encode())
        return s.client.post(path, content=raw, headers={SIGNATURE_HEADER: header})

    assert post(body, key="another-secret-0123456789abcdef").status_code == 403
    assert post(body, at=time.time() - 3600).status_code == 403  # replayed an hour later
    assert s.client.post(path, content=body).status_code == 403
    assert post(json.dumps({"id": "gw-2", "from": "+390212345678"})).status_code == 422
    assert post("x" * 20_000).status_code == 413
    assert post(body).json() == {"ok": True}
    assert post(body).json() == {"ok": True}  # delivered twice: one contact, one answer
    [text] = _texts(api, "+390212345678")
    assert text.startswith(QUESTIONS["nl"][1])


def test_bad_signatures_and_unknown_organisations_learn_nothing(service: Service) -> None:
    s = service
    url = _channel(s)
    _order(s, "T-2", phone=PHONE)
    put_on_route(s.url, "T-2", datetime.now(UTC))
    form = _sms("SMbad1", "where is my parcel?")
    refusals = [
        _post(s, url, form, signed=False),
        _post(s, url, form, token="another-token-0123456789abcdef"),
        # Signed right, then a field changed on the way.
        s.client.post(
            "/" + url.split("://", 1)[1].split("/", 1)[1],
            content=urlencode({**form, "Body": "where is order T-9?"}),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, form),
            },
        ),
        _post(s, url.replace(url.rsplit("/", 2)[-2], "nosuchorganisation"), form),
    ]
    for r in refusals:
        assert r.status_code == 403, r.text
        assert "T-2" not in r.text
        assert "/t/" not in r.text
    assert _queue(s) == []


def test_an_organisation_without_a_twilio_channel_refuses(service: Service) -> None:
    s = service
    engine = make_engine(s.url)
    try:
        org, other = create_organisation(session_factory(engine), "Other carrier", "UTC")
    finally:
        engine.dispose()
    url = _channel(s)  # ours has one; the other organisation has none
    other_url = url.replace(url.rsplit("/", 2)[-2], str(org))
    assert _post(s, other_url, _sms("SMx", "where is my parcel?")).status_code == 403
    assert _queue(s, other) == []


def test_an_unknown_sender_gets_no_answer_and_a_person_gets_the_message(
    texting: tuple[Service, SmsApi],
) -> None:
    s, api = texting
    url = _channel(s)
    r = _post(s, url, _sms("SMu1", "hello, where is my order?", sender="+447700900123"))
    assert r.status_code == 200, r.text
    assert "<Message>" not in r.text
    assert _texts(api, "+447700900123", timeout_s=1.0) == []
    [queued] = _queue(s)
    # About no order of the sender's: a person's answer cannot be sent from here.
    r = s.client.post(
        f"/v1/support/queue/{queued['contact_id']}/answered",
        json={"answer": "Which order?", "send": True},
        headers=s.headers(),
    )
    assert r.status_code == 422
    assert r.json()["error"]["problems"][0]["field"] == "send"
    assert queued["handover"] == "no_order"
    assert queued["sender"] == "+447700900123"


def test_a_persons_answer_goes_out_by_sms_as_written(texting: tuple[Service, SmsApi]) -> None:
    s, api = texting
    url = _channel(s)
    _order(s, "T-5", language="it", timezone="UTC", phone=PHONE)
    put_on_route(s.url, "T-5", datetime.now(UTC))
    _policy(s, {"quiet_start": None, "quiet_end": None})
    r = _post(s, url, _sms("SMp1", "il corriere è stato scortese, voglio parlare con qualcuno"))
    assert r.status_code == 200, r.text
    [queued] = _queue(s)
    assert queued["order_id"] == "T-5"
    r = s.client.post(
        f"/v1/support/queue/{queued['contact_id']}/answered",
        json={"answer": "Ci scusiamo, la richiamiamo oggi.", "send": True},
        headers=s.headers(),
    )
    assert r.status_code == 200, r.text
    assert r.json()["sent_at"] is not None
    assert _texts(api, "+390212345678") == ["Ci scusiamo, la richiamiamo oggi."]
    assert _queue(s) == []


def test_oversized_and_incomplete_forms_are_refused(service: Service) -> None:
    s = service
    url = _channel(s)
    big = _sms("SMbig", "x" * 20_000)
    assert _post(s, url, big).status_code == 413
    r = _post(s, url, {"MessageSid": "SMnobody", "From": "+390212345678"})
    assert r.status_code == 422
    assert {p["field"] for p in r.json()["error"]["problems"]} == {"Body"}


def test_only_an_admin_sets_the_channel(service: Service) -> None:
    s = service
    r = s.client.put(
        "/v1/inbound/channels/twilio", json={"secret": TOKEN}, headers=s.headers(s.key("support"))
    )
    assert r.status_code == 403
    r = s.client.put("/v1/inbound/channels/twilio", json={"secret": "short"}, headers=s.headers())
    assert r.status_code == 422
    assert s.client.delete("/v1/inbound/channels/twilio", headers=s.headers()).status_code == 404
    _channel(s)
    assert s.client.delete("/v1/inbound/channels/twilio", headers=s.headers()).status_code == 204
