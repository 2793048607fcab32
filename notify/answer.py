"""The ready answer to "where is my order?": a short, honest text in the customer's language
that a support agent or a chatbot can paste. Pure: everything it says comes from its arguments.

Wording lives in the ``[answer]`` table of each catalogue (``templates/locales/<lang>.toml``);
times are formatted by Babel in the customer's locale and zone, as in the notifications.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from notify.render import _plural, _say, catalogue, resolve_locale, window_text
from notify.triggers import Window

#: Lateness below this is noise, not worth telling.
LATE_FROM_MINUTES = 5
#: Statuses whose answer is final (no window, no tracking link).
_FINAL = {"delivered": "delivered", "failed": "failed", "skipped": "failed"}


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def ready_answer(
    status: str,
    window: tuple[datetime, datetime] | None,
    eta: datetime | None,
    stops_before: int | None,
    delay_minutes: int | None,
    locale: str,
    timezone: str,
    now: datetime,
    tracking_url: str,
) -> str:
    """What to tell the customer about an order now.

    ``status`` is the order's (open, planned, dispatched, delivered, failed, skipped,
    cancelled); ``eta`` is set only while a vehicle is live on the order's route (the order
    is then "on its way"); ``window`` is the current window (live, or the plan's);
    ``stops_before`` how many stops the driver makes first; ``delay_minutes`` how late the
    window is against the first one told (lateness under five minutes is not mentioned).
    """
    language, babel_locale = resolve_locale(locale)
    cat = catalogue(language)["answer"]
    full = catalogue(language)
    if status == "cancelled":
        return str(cat["cancelled"])
    if status in _FINAL:
        return str(cat[_FINAL[status]])
    if status not in ("dispatched",) or (window is None and eta is None):
        return str(cat["not_planned"])
    zone = _zone(timezone)
    told = Window(*window) if window is not None else None
    context: dict[str, object] = {
        "window": window_text(told, now, zone, babel_locale, full, short=False),
        "late": "",
        "url": tracking_url,
    }
    if delay_minutes is not None and delay_minutes >= LATE_FROM_MINUTES:
        minutes = _plural(full, "minutes", delay_minutes, babel_locale)
        context["late"] = _say(cat["late"], minutes=minutes)
    if eta is None:
        sentence = cat["scheduled"]
    elif stops_before is None:
        sentence = cat["on_the_way"]
    elif stops_before == 0:
        sentence = cat["next_stop"]
    else:
        context["stops"] = _plural(full, "stops", stops_before, babel_locale)
        sentence = cat["on_the_way_stops"]
    return f"{_say(sentence, **context)} {_say(cat['track'], url=tracking_url)}"
