"""Lemon Squeezy `order_created` webhooks (JSON:API) as purchases, once the order is paid."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import EventIgnored, SignatureInvalid
from ._common import (
    JSON,
    as_dict,
    canonical_event,
    contact,
    currency_code,
    dig,
    first,
    hex_hmac,
    iso_time,
    json_object,
    money_from_minor,
    prune,
    quantity,
    require_header,
    require_media,
    same,
    text,
)

SOURCE = "lemonsqueezy"
KINDS = ("purchase",)
CONTENT_TYPES = (JSON, "application/vnd.api+json")
AUTH = ("signature",)
SUCCESS_STATUS = 200  # Lemon Squeezy counts only 200 as delivered, and retries anything else
SIGNATURE_HEADER = "x-signature"
EVENT_HEADER = "x-event-name"
FIELD_HINTS = {"contact.email": "data.attributes.user_email"}
EVENTS = frozenset({"order_created"})


def sign(raw_body: bytes, secret: str, *, event_name: str | None = None) -> dict[str, str]:
    """Lemon Squeezy's headers: hex HMAC-SHA256 of the raw body (and X-Event-Name when given)."""
    extra = {EVENT_HEADER: event_name} if event_name else {}
    return {SIGNATURE_HEADER: hex_hmac(secret, raw_body), "content-type": JSON, **extra}


def verify(headers: Mapping[str, str], raw_body: bytes, secret: str) -> None:
    """Raise SignatureInvalid unless X-Signature is the hex HMAC of the body."""
    given = require_header(headers, SIGNATURE_HEADER, "<hex>")
    if not same(given.lower(), hex_hmac(secret, raw_body)):
        raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the body")


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """One purchase per paid order_created; other events (subscriptions, refunds) are ignored."""
    require_media(headers, CONTENT_TYPES)
    body = json_object(raw_body)
    name = first(text(dig(body, "meta", "event_name")), text(headers.get(EVENT_HEADER)))
    if name not in EVENTS:
        raise EventIgnored(f"lemonsqueezy event {name!r} is not order_created; ignored")
    data = as_dict(body.get("data"))
    attributes = as_dict(data.get("attributes"))
    if attributes.get("status") != "paid":
        raise EventIgnored(f"lemonsqueezy order status {text(attributes.get('status'))!r} is not paid; ignored")
    currency = currency_code(attributes.get("currency"))
    line = as_dict(attributes.get("first_order_item"))  # Lemon Squeezy sends only the first item
    count = quantity(line.get("quantity")) or (1 if line else None)
    item = prune(
        {
            "product_id": text(line.get("product_id")),
            "name": text(first(line.get("product_name"), line.get("variant_name"))),
            "quantity": count,
            "unit_price": money_from_minor(line.get("price"), currency),
        }
    )
    order = prune(
        {
            "id": text(first(attributes.get("order_number"), data.get("id"))),
            "total": money_from_minor(attributes.get("total"), currency),
            "currency": currency,
            "items": [item] if item else None,
        }
    )
    order_id = text(first(data.get("id"), attributes.get("identifier")))
    return [
        canonical_event(
            "purchase",
            SOURCE,
            f"order-{order_id}" if order_id else None,
            iso_time(attributes.get("created_at")),
            contact(attributes.get("user_email"), name=attributes.get("user_name")),
            order=order,
        )
    ]
