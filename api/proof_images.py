"""The images a driver's phone sends as proof (issue 20): ``data:`` URLs, decoded and judged
by their bytes, not by what they claim to be. The customer's browser is later shown these
bytes, so only the image kinds browsers render safely get in (never SVG, HTML, scripts).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

#: A phone's camera photo, scaled down by the app, and a signature pad's PNG.
PHOTO_MAX_BYTES = 1536 * 1024
SIGNATURE_MAX_BYTES = 300 * 1024
PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")
SIGNATURE_TYPES = ("image/png",)
_DATA_URL = re.compile(r"data:(?P<type>[a-z]+/[a-z0-9.+-]+);base64,(?P<data>[A-Za-z0-9+/=\s]*)")
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


@dataclass(frozen=True, slots=True)
class Image:
    data: bytes
    content_type: str

    @property
    def extension(self) -> str:
        return _EXTENSIONS[self.content_type]


def sniff(data: bytes) -> str | None:
    """The image kind the bytes are, by their magic numbers (None: none we accept)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def decode_image(url: str, allowed: tuple[str, ...], max_bytes: int) -> Image:
    """The image a ``data:<type>;base64,...`` URL holds, or ValueError saying what is wrong
    (the caller's 422 names the field). The declared type and the bytes must agree."""
    found = _DATA_URL.fullmatch(url)
    if found is None:
        raise ValueError("must be a data URL: data:<image type>;base64,<data>")
    declared = found["type"]
    if declared not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}, not {declared}")
    # Checked before decoding: base64 is 4 characters for 3 bytes.
    if len(found["data"]) > (max_bytes + 2) // 3 * 4 + 1024:
        raise ValueError(f"larger than {max_bytes} bytes")
    try:
        data = base64.b64decode("".join(found["data"].split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("is not valid base64") from exc
    if not data:
        raise ValueError("is empty")
    if len(data) > max_bytes:
        raise ValueError(f"larger than {max_bytes} bytes")
    actual = sniff(data)
    if actual is None or actual not in allowed:
        raise ValueError(f"is not a {' or '.join(allowed)} image (by its content)")
    if actual != declared:
        raise ValueError(f"says {declared} but its content is {actual}")
    return Image(data, actual)
