"""What the ingester drops on purpose when it falls behind, and by which rule (ADR 0026).

When more messages wait than it can store in time, the MQTT ingester sheds load instead of
letting the broker drop messages silently: in the backlog it holds, it keeps **every driver
event** (delivered / failed / skipped: never coalesced) and **the newest fix of each device
topic**, and *coalesces* the older fixes of the same topic: acknowledged, counted
(``coalesced``), not stored. A van's place and ETAs come from its newest fix, so the live view
loses nothing a dispatcher or a customer sees; what is lost is the breadcrumb trail between
fixes while the service is overloaded, and the count says how much.

Pure: topics in, which to keep out.
"""

from __future__ import annotations

from collections.abc import Sequence

from telematics.topics import topic_kind

#: Topic kinds that carry a position (the newest per topic is enough when overloaded).
FIX_KINDS = frozenset({"position", "gpsd", "owntracks"})


def coalesce(topics: Sequence[str]) -> list[bool]:
    """For messages in the order received: True to process, False to coalesce. Keeps every
    message that is not a fix (driver events, anything unknown: the dead letters must see it)
    and, per topic, the last fix; the kept ones keep their order."""
    fixes = [topic_kind(topic) in FIX_KINDS for topic in topics]
    last = {topic: i for i, (topic, fix) in enumerate(zip(topics, fixes, strict=True)) if fix}
    return [not fix or last[t] == i for i, (t, fix) in enumerate(zip(topics, fixes, strict=True))]
