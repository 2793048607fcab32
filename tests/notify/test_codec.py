"""The policy's memory and a tenant's settings survive the store unchanged; bad settings name
their field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import ValidationError
from notify.codec import (
    branding_from_json,
    settings_from_json,
    settings_to_json,
    state_from_json,
    state_to_json,
)
from notify.policy import OrderNotifyState, decide
from notify.settings import Channel, NotifySettings, Recipient
from notify.triggers import DeliveryEvent, Trigger

NIGHT = datetime(2026, 3, 10, 6, 30, tzinfo=UTC)  # 07:30 in Rome: quiet until 08:00


def test_state_round_trips_through_json() -> None:
    """A state with sent and queued messages reads back equal after JSON."""
    recipient = Recipient(email="a@example.com", phone="+390000000", timezone="Europe/Rome")
    start = NIGHT + timedelta(hours=3)
    events = [
        DeliveryEvent("o1", Trigger.OUT_FOR_DELIVERY, NIGHT, 1, start, start + timedelta(hours=1)),
        DeliveryEvent("o1", Trigger.WINDOW_BROKEN, NIGHT, 2, start, start + timedelta(hours=2)),
    ]
    state = decide(OrderNotifyState("o1"), events, NotifySettings(), recipient, NIGHT).state
    assert state.pending  # quiet hours: queued
    stored = json.loads(json.dumps(state_to_json(state)))
    assert state_from_json("o1", stored) == state


def test_empty_state_is_a_fresh_order() -> None:
    """Nothing stored: nothing told."""
    assert state_from_json("o9", {}) == OrderNotifyState("o9")


def test_settings_round_trip_and_defaults() -> None:
    """Stored settings read back; missing keys keep the defaults."""
    custom = settings_from_json({"budget_per_order": 3, "quiet_start": None, "quiet_end": None})
    assert custom.budget_per_order == 3
    assert not custom.has_quiet_hours
    assert settings_from_json(settings_to_json(custom)) == custom
    assert settings_from_json({}) == NotifySettings()
    assert settings_from_json({"default_channels": ["email"]}).default_channels == (Channel.EMAIL,)


def test_bad_settings_name_every_field() -> None:
    """Each bad value is reported with its path, all at once."""
    with pytest.raises(ValidationError) as caught:
        settings_from_json(
            {
                "budget_per_order": "six",
                "enabled": ["fax"],
                "quiet_start": "late",
                "stale_after_s": 0,
            }
        )
    fields = {p.field for p in caught.value.problems}
    assert {
        "notification_policy.budget_per_order",
        "notification_policy.enabled",
        "notification_policy.quiet_start",
    } <= fields


def test_branding_defaults_to_the_organisation_name() -> None:
    """No name in the branding: the organisation's; a bad colour names its field."""
    assert branding_from_json({}, name="Acme").name == "Acme"
    with pytest.raises(ValidationError, match=r"branding\.primary_colour"):
        branding_from_json({"primary_colour": "red"}, name="Acme")


def test_unknown_settings_are_refused() -> None:
    """A misspelt setting is an error naming it, not silently ignored."""
    with pytest.raises(ValidationError, match=r"notification_policy\.quiet_strat"):
        settings_from_json({"quiet_strat": "22:00"})


def test_the_tenants_webhook_url_round_trips_and_is_checked() -> None:
    """The shop's endpoint for the webhook channel: kept, cleared with null, refused when not
    an http(s) URL (naming the field)."""
    settings = settings_from_json({"webhook_url": "https://shop.example/hooks"})
    assert settings.webhook_url == "https://shop.example/hooks"
    assert settings_from_json(settings_to_json(settings)) == settings
    assert settings_from_json({"webhook_url": None}).webhook_url is None
    for bad in ("ftp://shop.example", 42):
        with pytest.raises(ValidationError) as caught:
            settings_from_json({"webhook_url": bad})
        assert caught.value.problems[0].field == "notification_policy.webhook_url"
