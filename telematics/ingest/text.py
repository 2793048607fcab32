"""Strings from payloads: whether they can be looked up or stored, and how to store them anyway
(dead letters, a driver's reason)."""

from __future__ import annotations


def storable(text: str) -> bool:
    """Whether a string from a payload can be looked up or stored: no lone surrogate (from a
    JSON ``\\ud800`` escape; no driver encodes one) and no NUL (PostgreSQL text refuses it)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean(text: str) -> str:
    """``text`` made storable for the dead letters and events (escapes what is not)."""
    if storable(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
