"""API keys, device passwords, tracking tokens and webhook signing secrets: generated here,
stored only as hashes, except what the service itself must present again: tracking tokens
(messages to customers carry them) and webhook signing secrets (the sender signs with them),
which are stored as they are (ADR 0017)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

KEY_PREFIX = "lm"
#: Mosquitto's PBKDF2-SHA512 password format ($7$), so `lastmile devices export-mosquitto`
#: can write the stored hashes straight into a Mosquitto password file.
PBKDF2_ITERATIONS = 101


def new_api_key() -> tuple[str, str, str]:
    """(the key to show once, its lookup prefix, its stored hash)."""
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, hash_api_key(key)


def hash_api_key(key: str) -> str:
    # Keys carry 256 random bits: a fast hash is enough, no stretching needed.
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    return parts[1]


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def new_tracking_token() -> str:
    """A customer's tracking token: 160 random bits, URL-safe."""
    return secrets.token_urlsafe(20)


def new_webhook_secret() -> str:
    """A tenant's webhook signing secret: 256 random bits, ``whsec_`` and URL-safe base64."""
    return f"whsec_{secrets.token_urlsafe(32)}"


def new_device_password() -> str:
    return secrets.token_urlsafe(24)


def new_device_identifier() -> str:
    """An OsmAnd device's identifier, issued by the server (Traccar Client sends no other
    credential, so it must not be guessable like an IMEI or "dev-1"): 128 random bits,
    22 URL-safe characters."""
    return secrets.token_urlsafe(16)


def hash_device_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return (
        f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}$"
        f"{base64.b64encode(digest).decode()}"
    )


def check_device_password(password: str, stored: str) -> bool:
    try:
        _, kind, iterations, salt_b64, _ = stored.split("$")
        salt = base64.b64decode(salt_b64)
    except ValueError:
        return False
    if kind != "7" or int(iterations) != PBKDF2_ITERATIONS:
        return False
    return same_hash(hash_device_password(password, salt=salt), stored)
