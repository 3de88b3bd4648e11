"""Webhook signatures in the Standard Webhooks format.

Each request carries ``webhook-id`` (the delivery id, the same on every retry),
``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``:
``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``. The key is the bytes behind the
secret's ``whsec_`` prefix (base64). Receivers recompute the HMAC over the raw body, compare in
constant time and refuse old timestamps (replays); README.md shows the few lines it takes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time

PREFIX = "whsec_"
SECRET_BYTES = 32
# How far a receiver should trust a timestamp from its own clock (the spec's suggestion).
TOLERANCE_SECONDS = 5 * 60


class SecretError(ValueError):
    """Not a ``whsec_`` secret."""


def secret_generate() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_...`` secret."""
    if not isinstance(secret, str) or not secret.startswith(PREFIX):
        raise SecretError("A webhook secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise SecretError("A webhook secret is whsec_ followed by base64") from None
    if not 24 <= len(key) <= 64:
        raise SecretError("A webhook secret holds 24 to 64 bytes")
    return key


def signature(*, secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(*, secret: str, message_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    moment = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(moment),
        "webhook-signature": signature(secret=secret, message_id=message_id, timestamp=moment, body=body),
    }


def verify(*, secret: str, headers: dict[str, str], body: bytes, now: float | None = None) -> bool:
    """What a receiver does (and what the tests do with what they receive)."""
    lowered = {key.lower(): value for key, value in headers.items()}
    try:
        message_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        offered = lowered["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_SECONDS:
        return False
    expected = signature(secret=secret, message_id=message_id, timestamp=timestamp, body=body)
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)
