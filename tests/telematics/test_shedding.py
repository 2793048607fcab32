"""The overload rule (telematics/shedding.py): every driver event and each topic's newest fix
are kept; only older fixes of the same topic are coalesced."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from telematics.shedding import coalesce

TOPICS = [
    "org1/fleet/van-1/position",
    "org1/fleet/van-1/events",
    "org2/fleet/van-1/position",
    "org1/fleet/van-2/gpsd",
    "fleet/van-3/position",
    "owntracks/dev-x/phone",
    "not/a/topic/we/know",
]


def test_keeps_events_and_the_newest_fix_per_topic() -> None:
    topics = [
        "org1/fleet/van-1/position",  # older: coalesced
        "org1/fleet/van-1/events",
        "org2/fleet/van-1/position",  # another organisation's van-1: its own newest
        "org1/fleet/van-1/position",  # newest of org1's van-1
        "org1/fleet/van-1/events",
        "owntracks/dev-x/phone",
        "owntracks/dev-x/phone",
    ]
    assert coalesce(topics) == [False, True, True, True, True, False, True]


@given(st.lists(st.sampled_from(TOPICS), max_size=60))
def test_nothing_but_older_fixes_is_ever_dropped(topics: list[str]) -> None:
    keep = coalesce(topics)
    assert len(keep) == len(topics)
    for i, (topic, kept) in enumerate(zip(topics, keep, strict=True)):
        is_fix = topic.endswith(("/position", "/gpsd")) or topic.startswith("owntracks/")
        newest = topic not in topics[i + 1 :]
        assert kept == (not is_fix or newest), (i, topic)
    # Each topic that appears keeps exactly one message if it carries fixes.
    for topic in set(topics):
        fixes = topic.endswith(("/position", "/gpsd")) or topic.startswith("owntracks/")
        if fixes:
            assert sum(k for t, k in zip(topics, keep, strict=True) if t == topic) == 1
