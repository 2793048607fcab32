"""Counting SMS segments: GSM 03.38 7-bit (basic set + extension table) or UCS-2.

A text made only of GSM-7 characters is sent in septets: 160 in one segment, 153 per segment
when concatenated (the user-data header takes the rest); extension-table characters
(``^{}\\[~]|€`` and form feed) take two septets and an escape pair is never split across
segments. Anything else makes the whole text UCS-2: 70 UTF-16 code units in one segment, 67 per
segment when concatenated; a character outside the BMP (most emoji) is a surrogate pair, two
units, never split.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67


class Encoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


@dataclass(frozen=True, slots=True)
class SmsCount:
    """``units``: septets (GSM-7) or UTF-16 code units (UCS-2); an empty text is 1 segment."""

    encoding: Encoding
    units: int
    segments: int

    @property
    def single(self) -> bool:
        return self.segments == 1


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _pack(sizes: list[int], multi: int) -> int:
    """Segments needed to carry characters of ``sizes`` units, none split across two."""
    segments, used = 1, 0
    for size in sizes:
        if used + size > multi:
            segments += 1
            used = 0
        used += size
    return segments


def segments(text: str) -> SmsCount:
    """How ``text`` is encoded and how many segments it is billed as."""
    if is_gsm7(text):
        sizes = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        encoding, single, multi = Encoding.GSM7, GSM7_SINGLE, GSM7_MULTI
    else:
        sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        encoding, single, multi = Encoding.UCS2, UCS2_SINGLE, UCS2_MULTI
    units = sum(sizes)
    count = 1 if units <= single else _pack(sizes, multi)
    return SmsCount(encoding, units, count)
