"""The `generic` source: a canonical JSON event signed with HMAC-SHA256 in X-Relay-Signature."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..canonical import KINDS as ALL_KINDS
from ..errors import BodyUnparseable
from ._bodies import JSON, json_body, require_media_type
from ._signatures import HmacHeader

KINDS = ALL_KINDS  # the one source every function accepts: its events say their own kind
CONTENT_TYPES = (JSON,)
AUTH = ("signature",)
SIGNATURE = HmacHeader("x-relay-signature", "hex", scheme="sha256")  # sha256=<hex>
MAX_EVENTS = 100  # a batch bigger than this is someone else's bulk import; send it to the queue directly

verify = SIGNATURE.verify  # SignatureInvalid unless the header is sha256=<hex HMAC-SHA256 of the raw body>


def sign(raw_body: bytes, secret: str) -> dict[str, str]:
    """Headers that make `raw_body` a correctly signed generic webhook (for tests, demos and senders)."""
    return {**SIGNATURE.sign(raw_body, secret), "content-type": JSON}


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """The canonical event(s) in the body: one JSON object, or an array of them."""
    require_media_type(headers, CONTENT_TYPES)
    body = json_body(raw_body)
    events = body if isinstance(body, list) else [body]
    if not events or not all(isinstance(event, dict) for event in events):
        raise BodyUnparseable("body must be a JSON object (a canonical event) or a non-empty array of them")
    if len(events) > MAX_EVENTS:
        raise BodyUnparseable(f"a batch holds at most {MAX_EVENTS} events; this one holds {len(events)}")
    return events
