"""The policy's state, its messages and a tenant's settings as JSON (for the store and the
API). Pure; reading reports every problem with its field."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time
from typing import Any

from domain.errors import Problem, ValidationError
from notify.policy import Message, OrderNotifyState
from notify.settings import Branding, Channel, NotifySettings
from notify.triggers import Trigger, Window


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _at(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _window_json(window: Window | None) -> list[str] | None:
    return [window.start.isoformat(), window.end.isoformat()] if window is not None else None


def _window(value: object) -> Window | None:
    if not isinstance(value, list) or len(value) != 2:
        return None
    return Window(datetime.fromisoformat(value[0]), datetime.fromisoformat(value[1]))


def message_to_json(message: Message) -> dict[str, Any]:
    return {
        "order_id": message.order_id,
        "trigger": str(message.trigger),
        "eta_version": message.eta_version,
        "channel": str(message.channel),
        "locale": message.locale,
        "timezone": message.timezone,
        "not_before": message.not_before.isoformat(),
        "event_at": message.event_at.isoformat(),
        "window": _window_json(message.window),
        "stops_before": message.stops_before,
        "minutes_away": message.minutes_away,
        "reason": message.reason,
    }


def message_from_json(data: Mapping[str, Any]) -> Message:
    return Message(
        order_id=str(data["order_id"]),
        trigger=Trigger(data["trigger"]),
        eta_version=int(data["eta_version"]),
        channel=Channel(data["channel"]),
        locale=str(data["locale"]),
        timezone=str(data["timezone"]),
        not_before=datetime.fromisoformat(data["not_before"]),
        event_at=datetime.fromisoformat(data["event_at"]),
        window=_window(data.get("window")),
        stops_before=data.get("stops_before"),
        minutes_away=data.get("minutes_away"),
        reason=str(data.get("reason", "")),
    )


def state_to_json(state: OrderNotifyState) -> dict[str, Any]:
    return {
        "issued": sorted(state.issued),
        "fired": sorted(str(t) for t in state.fired),
        "sent_count": state.sent_count,
        "last_told_at": _iso(state.last_told_at),
        "told_window": _window_json(state.told_window),
        "told_version": state.told_version,
        "known_window": _window_json(state.known_window),
        "known_version": state.known_version,
        "pending": [message_to_json(m) for m in state.pending],
        "delivered": state.delivered,
        "failed": state.failed,
    }


def state_from_json(order_id: str, data: Mapping[str, Any]) -> OrderNotifyState:
    """The stored state (an empty mapping: nothing told yet)."""
    if not data:
        return OrderNotifyState(order_id)
    return OrderNotifyState(
        order_id=order_id,
        issued=frozenset(data.get("issued", ())),
        fired=frozenset(Trigger(t) for t in data.get("fired", ())),
        sent_count=int(data.get("sent_count", 0)),
        last_told_at=_at(data.get("last_told_at")),
        told_window=_window(data.get("told_window")),
        told_version=int(data.get("told_version", -1)),
        known_window=_window(data.get("known_window")),
        known_version=int(data.get("known_version", -1)),
        pending=tuple(message_from_json(m) for m in data.get("pending", ())),
        delivered=bool(data.get("delivered", False)),
        failed=bool(data.get("failed", False)),
    )


_INTS = (
    "stops_away_n",
    "minutes_away_m",
    "budget_per_order",
    "min_interval_s",
    "first_window_cap_min",
    "answers_per_order",
)
_POSITIVE = ("stale_after_s", "final_stale_after_s")


def settings_from_json(
    data: Mapping[str, Any], *, where: str = "notification_policy"
) -> NotifySettings:
    """A tenant's policy from its stored JSON; missing keys keep the defaults."""
    problems: list[Problem] = []
    known = {
        *_INTS,
        *_POSITIVE,
        "enabled",
        "default_channels",
        "quiet_start",
        "quiet_end",
        "webhook_url",
    }
    for name in sorted(set(data) - known):
        problems.append(
            Problem(f"{where}.{name}", f"unknown setting; known: {', '.join(sorted(known))}")
        )
    kwargs: dict[str, Any] = {}
    for name in (*_INTS, *_POSITIVE):
        if name in data:
            value = data[name]
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(Problem(f"{where}.{name}", "must be a whole number"))
            else:
                kwargs[name] = value
    if "enabled" in data:
        try:
            kwargs["enabled"] = frozenset(Trigger(t) for t in data["enabled"])
        except (ValueError, TypeError):
            triggers = ", ".join(str(t) for t in Trigger)
            problems.append(Problem(f"{where}.enabled", f"triggers are among: {triggers}"))
    if "default_channels" in data:
        try:
            kwargs["default_channels"] = tuple(Channel(c) for c in data["default_channels"])
        except (ValueError, TypeError):
            channels = ", ".join(str(c) for c in Channel)
            problems.append(Problem(f"{where}.default_channels", f"channels are among: {channels}"))
    if "webhook_url" in data:
        url = data["webhook_url"]
        if url is not None and (not isinstance(url, str) or len(url) > 500):
            problems.append(Problem(f"{where}.webhook_url", "must be a URL (<= 500) or null"))
        else:
            kwargs["webhook_url"] = url or None
    for name in ("quiet_start", "quiet_end"):
        if name in data:
            value = data[name]
            try:
                kwargs[name] = None if value is None else time.fromisoformat(value)
            except (ValueError, TypeError):
                problems.append(Problem(f"{where}.{name}", "must be HH:MM or null"))
    if problems:
        raise ValidationError(problems)
    try:
        return NotifySettings(**kwargs)
    except ValidationError as exc:
        raise ValidationError(
            [Problem(f"{where}.{p.field}", p.message) for p in exc.problems]
        ) from None


def settings_to_json(settings: NotifySettings) -> dict[str, Any]:
    return {
        "enabled": sorted(str(t) for t in settings.enabled),
        **{name: getattr(settings, name) for name in (*_INTS, *_POSITIVE)},
        "quiet_start": settings.quiet_start.strftime("%H:%M") if settings.quiet_start else None,
        "quiet_end": settings.quiet_end.strftime("%H:%M") if settings.quiet_end else None,
        "default_channels": [str(c) for c in settings.default_channels],
        "webhook_url": settings.webhook_url,
    }


def branding_from_json(data: Mapping[str, Any], *, name: str) -> Branding:
    """A tenant's branding; its name defaults to the organisation's."""
    fields = ("primary_colour", "secondary_colour", "logo_url", "sender_email", "sender_name")
    kwargs = {k: data[k] for k in (*fields, "sms_sender") if k in data}
    try:
        return Branding(name=str(data.get("name") or name), **kwargs)
    except ValidationError as exc:
        raise ValidationError(
            [Problem(f"branding.{p.field}", p.message) for p in exc.problems]
        ) from None
