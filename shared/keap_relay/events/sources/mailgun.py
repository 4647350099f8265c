"""Mailgun webhooks (JSON): unsubscribes, complaints and permanent failures; the signature is in the body."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import EventIgnored, SignatureInvalid
from ._bodies import JSON, json_object, require_media_type
from ._event import contact, unsubscribe
from ._signatures import constant_time_equal, hex_hmac, require_recent
from ._values import as_dict, clean_text, iso_from_unix

SOURCE = "mailgun"
KINDS = ("unsubscribe",)
CONTENT_TYPES = (JSON,)
AUTH = ("signature",)  # the HTTP webhook signing key, over the body's signature.timestamp + signature.token
SUCCESS_STATUS = 200  # Mailgun retries anything but 200 (406 excepted) for 8 hours
# Mailgun signs only timestamp + token, not the event: the age limit bounds how long a captured signature
# can be replayed, and is longer than Mailgun's 8 hours of retries in case they keep the first signature.
TOLERANCE_SECONDS = 24 * 3600
FIELD_HINTS = {"contact.email": "event-data.recipient"}

# Events that end a subscription, and the reason each one gives; `failed` counts only when permanent.
TYPES: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "unsubscribed": lambda data: "unsubscribed",
    "complained": lambda data: "complained",
    "failed": lambda data: "failed: permanent" if data.get("severity") == "permanent" else None,
}


def sign(raw_body: bytes, secret: str) -> dict[str, str]:
    """Mailgun signs inside the body (see sign_body); the headers carry only the content type."""
    return {"content-type": JSON}


def signature_block(secret: str, *, timestamp: int | None = None, token: str | None = None) -> dict[str, str]:
    """The body's `signature` object Mailgun would send: hex HMAC-SHA256 of timestamp + token."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or secrets.token_hex(25)
    return {"timestamp": stamp, "token": token, "signature": hex_hmac(secret, (stamp + token).encode())}


def sign_body(raw_body: bytes, secret: str, *, timestamp: int | None = None, token: str | None = None) -> bytes:
    """`raw_body` (a Mailgun JSON webhook) with a fresh `signature` object, as Mailgun would sign it."""
    body = json_object(raw_body)
    body["signature"] = signature_block(secret, timestamp=timestamp, token=token)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def verify(headers: Mapping[str, str], raw_body: bytes, secret: str, *, now: float | None = None) -> None:
    """Raise SignatureInvalid unless signature.signature is the HMAC of signature.timestamp + token and
    the timestamp is within a day of now."""
    block = as_dict(json_object(raw_body).get("signature"))
    stamp, token, given = (block.get(k) for k in ("timestamp", "token", "signature"))
    if not all(isinstance(v, str) and v for v in (stamp, token, given)):
        raise SignatureInvalid("missing signature.timestamp, .token or .signature in the body")
    if not stamp.isdigit() or len(stamp) > 12:
        raise SignatureInvalid("malformed signature.timestamp (expected unix seconds)")
    if not constant_time_equal(given.lower(), hex_hmac(secret, (stamp + token).encode("utf-8", "surrogatepass"))):
        raise SignatureInvalid("signature.signature does not match signature.timestamp + token")
    require_recent(int(stamp), TOLERANCE_SECONDS, now)


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """One unsubscribe per unsubscribed, complained or permanently failed event; others are ignored."""
    require_media_type(headers, CONTENT_TYPES)
    data = as_dict(json_object(raw_body).get("event-data"))
    kind = data.get("event")
    reason = TYPES[kind](data) if isinstance(kind, str) and kind in TYPES else None
    if reason is None:
        raise EventIgnored(
            f"mailgun event {clean_text(kind)!r} is not unsubscribed, complained or a permanent failure; ignored"
        )
    occurred_at = iso_from_unix(data.get("timestamp"))
    return [unsubscribe(SOURCE, data.get("id"), occurred_at, contact(data.get("recipient")), reason=reason)]
