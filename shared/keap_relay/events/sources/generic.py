"""The `generic` source: a canonical JSON event signed with HMAC-SHA256 in X-Relay-Signature."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..canonical import KINDS as ALL_KINDS
from ..errors import BodyUnparseable, SignatureInvalid
from ._common import JSON, hex_hmac, json_body, require_header, require_media, same

KINDS = ALL_KINDS  # the one source every function accepts: its events say their own kind
CONTENT_TYPES = (JSON,)
AUTH = ("signature",)
SIGNATURE_HEADER = "x-relay-signature"
MAX_EVENTS = 100  # a batch bigger than this is someone else's bulk import; send it to the queue directly


def sign(raw_body: bytes, secret: str) -> dict[str, str]:
    """Headers that make `raw_body` a correctly signed generic webhook (for tests, demos and senders)."""
    return {SIGNATURE_HEADER: f"sha256={hex_hmac(secret, raw_body)}", "content-type": JSON}


def verify(headers: Mapping[str, str], raw_body: bytes, secret: str) -> None:
    """Raise SignatureInvalid unless the header holds the body's HMAC-SHA256 (hex) under `secret`."""
    value = require_header(headers, SIGNATURE_HEADER, "sha256=<hex>")
    scheme, _, given = value.partition("=")
    if scheme.strip().lower() != "sha256" or not given:
        raise SignatureInvalid(f"malformed {SIGNATURE_HEADER} header (expected sha256=<hex>)")
    if not same(given.strip().lower(), hex_hmac(secret, raw_body)):
        raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the body")


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """The canonical event(s) in the body: one JSON object, or an array of them."""
    require_media(headers, CONTENT_TYPES)
    body = json_body(raw_body)
    events = body if isinstance(body, list) else [body]
    if not events or not all(isinstance(event, dict) for event in events):
        raise BodyUnparseable("body must be a JSON object (a canonical event) or a non-empty array of them")
    if len(events) > MAX_EVENTS:
        raise BodyUnparseable(f"a batch holds at most {MAX_EVENTS} events; this one holds {len(events)}")
    return events
