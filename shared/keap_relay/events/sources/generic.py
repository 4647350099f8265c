"""The `generic` source: a canonical JSON event signed with HMAC-SHA256 in X-Relay-Signature."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from ..errors import BodyUnparseable, SignatureInvalid, UnsupportedMediaType

SIGNATURE_HEADER = "x-relay-signature"
CONTENT_TYPES = ("application/json",)


def _digest(raw_body: bytes, secret: str) -> str:
    return hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()


def sign(raw_body: bytes, secret: str) -> dict[str, str]:
    """Headers that make `raw_body` a correctly signed generic webhook (for tests, demos and senders)."""
    return {SIGNATURE_HEADER: f"sha256={_digest(raw_body, secret)}", "content-type": "application/json"}


def verify(headers: Mapping[str, str], raw_body: bytes, secret: str) -> None:
    """Raise SignatureInvalid unless the header holds the body's HMAC-SHA256 (hex) under `secret`."""
    value = headers.get(SIGNATURE_HEADER, "")
    scheme, _, given = value.partition("=")
    if scheme.strip().lower() != "sha256" or not given:
        raise SignatureInvalid(f"missing or malformed {SIGNATURE_HEADER} header (expected sha256=<hex>)")
    if not hmac.compare_digest(given.strip().lower(), _digest(raw_body, secret)):
        raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the body")


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """The canonical event(s) in the body: one JSON object, or an array of them."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in CONTENT_TYPES:
        raise UnsupportedMediaType(f"content type {content_type or '(none)'!r} not supported; send application/json")
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyUnparseable(f"body is not JSON: {exc}") from None
    events = body if isinstance(body, list) else [body]
    if not events or not all(isinstance(event, dict) for event in events):
        raise BodyUnparseable("body must be a JSON object (a canonical event) or a non-empty array of them")
    return events
