"""Twilio's incoming-SMS webhook through the running service (issue 19): signed requests are
answered in TwiML, in the order's language; a bad, missing or foreign signature, or an
organisation without a Twilio channel, learns nothing; a replayed message is one contact."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from store.db import make_engine, session_factory
from store.repo import create_organisation
from tests.api.live_state import put_on_route
from tests.api.service import Service
from tests.api.test_inbound_api import QUESTIONS, _queue
from tests.api.test_support_api import _order

pytestmark = pytest.mark.integration

TOKEN = "twilio-auth-token-0123456789abcdef"
PHONE = "+39 02 1234 5678"


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
def test_a_signed_sms_is_answered_in_twiml_once(service: Service, lang: str) -> None:
    s = service
    url = _channel(s)
    _order(s, "T-1", language=lang, timezone="Europe/Rome", phone=PHONE)
    put_on_route(s.url, "T-1", datetime.now(UTC))
    form = _sms(f"SM{lang}1", QUESTIONS[lang][0])
    r = _post(s, url, form)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/xml")
    assert "<Message>" in r.text
    assert "/t/" in r.text
    assert r.text.split("<Message>")[1].startswith(QUESTIONS[lang][1])
    # Twilio retries: the same message is the same contact with the same reply.
    again = _post(s, url, form)
    assert again.text == r.text
    report = s.client.get("/v1/reports/wismo", headers=s.headers()).json()
    assert report["days"][-1]["contacts"] == 1
    assert report["days"][-1]["answered_auto"] == 1


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


def test_an_unknown_sender_gets_an_empty_reply_and_a_person_gets_the_message(
    service: Service,
) -> None:
    s = service
    url = _channel(s)
    r = _post(s, url, _sms("SMu1", "hello, where is my order?", sender="+447700900123"))
    assert r.status_code == 200, r.text
    assert "<Message>" not in r.text
    [queued] = _queue(s)
    assert queued["handover"] == "no_order"
    assert queued["sender"] == "+447700900123"


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
