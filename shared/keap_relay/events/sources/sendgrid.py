"""SendGrid Event Webhook batches: unsubscribes, group unsubscribes and spam reports; ECDSA-signed."""

from __future__ import annotations

import base64
import binascii
import functools
import time
from collections.abc import Mapping
from typing import Any

from ..errors import BodyUnparseable, EventIgnored, SignatureInvalid
from ._bodies import JSON, json_body, require_media_type
from ._event import contact, unsubscribe
from ._signatures import require_header
from ._values import clean_text, first_present, iso_from_unix, stable_id

SOURCE = "sendgrid"
KINDS = ("unsubscribe",)
CONTENT_TYPES = (JSON,)
# The "secret" is SendGrid's verification key (Mail Settings > Signed Event Webhook): a P-256 public key,
# base64 or PEM. A PKCS#8 private key is accepted too, so a local setup verifies and signs with one value.
AUTH = ("signature",)
SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"
FIELD_HINTS = {"contact.email": "each event's email"}

# Events that end a subscription, and the reason each one gives (SendGrid has no reason text).
TYPES = {"unsubscribe": "unsubscribe", "group_unsubscribe": "group_unsubscribe", "spamreport": "spam report"}


@functools.lru_cache(maxsize=8)
def _keys(secret: str) -> tuple[Any, Any]:
    """(public key, private key or None) from the configured secret; cryptography is imported on first use."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    text_key = secret.strip()
    der = None if text_key.startswith("-----BEGIN") else base64.b64decode(text_key, validate=True)
    loaders = (
        (serialization.load_pem_public_key, serialization.load_pem_private_key)
        if der is None
        else (serialization.load_der_public_key, serialization.load_der_private_key)
    )
    data = text_key.encode() if der is None else der
    try:
        public = loaders[0](data)
        private = None
    except ValueError:
        private = loaders[1](data, password=None)
        public = private.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise ValueError("not an elliptic-curve key")
    return public, private


def _load(secret: str) -> tuple[Any, Any]:
    try:
        return _keys(secret)
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        # Our configuration, not the sender's fault; the detail names no part of the key.
        raise SignatureInvalid(
            "cannot verify: the configured sendgrid key is not an ECDSA public key (base64 or PEM)"
        ) from None


def sign(raw_body: bytes, secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    """SendGrid's headers: base64 DER ECDSA-SHA256 signature of "<timestamp><raw body>". Needs the private
    key as `secret` (SendGrid holds its own; this is for local keys, tests and the demo)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    _public, private = _load(secret)
    if private is None:
        raise ValueError("signing needs the private key; a SendGrid verification key is public only")
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = private.sign(stamp.encode() + raw_body, ec.ECDSA(hashes.SHA256()))
    return {SIGNATURE_HEADER: base64.b64encode(signature).decode(), TIMESTAMP_HEADER: stamp, "content-type": JSON}


def verify(headers: Mapping[str, str], raw_body: bytes, secret: str) -> None:
    """Raise SignatureInvalid unless the ECDSA signature over timestamp + body verifies with the key.

    No timestamp tolerance: SendGrid documents none for its retries, and a replayed event is harmless
    (its sg_event_id is the idempotency key)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    given = require_header(headers, SIGNATURE_HEADER, "<base64 ECDSA signature>")
    stamp = require_header(headers, TIMESTAMP_HEADER, "<unix seconds>")
    public, _private = _load(secret)
    try:
        public.verify(
            base64.b64decode(given, validate=True),
            stamp.encode("utf-8", "surrogatepass") + raw_body,
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, binascii.Error, ValueError):
        raise SignatureInvalid(f"{SIGNATURE_HEADER} does not verify with the configured key") from None


def _event(item: dict[str, Any]) -> dict[str, Any]:
    kind = item["event"]
    event_id = first_present(
        clean_text(item.get("sg_event_id")),
        stable_id(kind, item.get("email"), item.get("timestamp"), item.get("sg_message_id")),
    )
    group = clean_text(item.get("asm_group_id")) if kind == "group_unsubscribe" else None
    occurred_at = iso_from_unix(item.get("timestamp"))
    return unsubscribe(SOURCE, event_id, occurred_at, contact(item.get("email")), reason=TYPES[kind], list_id=group)


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """An unsubscribe per unsubscribe-like event in the batch (in order, each id once); opens, clicks,
    deliveries and the rest are ignored."""
    require_media_type(headers, CONTENT_TYPES)
    batch = json_body(raw_body)
    if not isinstance(batch, list):
        raise BodyUnparseable(f"body must be a JSON array of events, not {type(batch).__name__}")
    events: dict[str, dict[str, Any]] = {}
    for item in batch:
        if isinstance(item, dict) and isinstance(item.get("event"), str) and item["event"] in TYPES:
            event = _event(item)
            events.setdefault(event.get("id", ""), event)
    if not events:
        raise EventIgnored(
            f"none of the {len(batch)} sendgrid events is an unsubscribe, group_unsubscribe or spamreport; ignored"
        )
    return list(events.values())
