"""Lemon Squeezy `order_created` webhooks (JSON:API) as purchases, once the order is paid."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._bodies import JSON, json_object, require_media_type
from ._event import contact, ignore_unless, line_item, order_event_id, purchase
from ._signatures import HmacHeader
from ._values import as_dict, clean_text, currency_code, first_present, iso_time, money_from_minor, quantity, value_at

SOURCE = "lemonsqueezy"
KINDS = ("purchase",)
CONTENT_TYPES = (JSON, "application/vnd.api+json")
AUTH = ("signature",)
SUCCESS_STATUS = 200  # Lemon Squeezy counts only 200 as delivered, and retries anything else
SIGNATURE = HmacHeader("x-signature", "hex")
EVENT_HEADER = "x-event-name"
FIELD_HINTS = {"contact.email": "data.attributes.user_email"}


verify = SIGNATURE.verify  # SignatureInvalid unless X-Signature is the hex HMAC of the raw body


def sign(raw_body: bytes, secret: str, *, event_name: str | None = None) -> dict[str, str]:
    """Lemon Squeezy's headers: hex HMAC-SHA256 of the raw body (and X-Event-Name when given)."""
    extra = {EVENT_HEADER: event_name} if event_name else {}
    return {**SIGNATURE.sign(raw_body, secret), "content-type": JSON, **extra}


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """One purchase per paid order_created; other events (subscriptions, refunds) are ignored."""
    require_media_type(headers, CONTENT_TYPES)
    body = json_object(raw_body)
    name = first_present(clean_text(value_at(body, "meta", "event_name")), clean_text(headers.get(EVENT_HEADER)))
    ignore_unless(name, "order_created", "lemonsqueezy event")
    data = as_dict(body.get("data"))
    attributes = as_dict(data.get("attributes"))
    ignore_unless(attributes.get("status"), "paid", "lemonsqueezy order status")
    currency = currency_code(attributes.get("currency"))
    line = as_dict(attributes.get("first_order_item"))  # Lemon Squeezy sends only the first item
    count = quantity(line.get("quantity")) or (1 if line else None)
    item = line_item(
        product_id=line.get("product_id"),
        name=first_present(line.get("product_name"), line.get("variant_name")),
        quantity=count,
        unit_price=money_from_minor(line.get("price"), currency),
    )
    person = contact(attributes.get("user_email"), name=attributes.get("user_name"))
    return [
        purchase(
            SOURCE,
            order_event_id(clean_text(first_present(data.get("id"), attributes.get("identifier")))),
            iso_time(attributes.get("created_at")),
            person,
            order_id=first_present(attributes.get("order_number"), data.get("id")),
            total=money_from_minor(attributes.get("total"), currency),
            currency=currency,
            items=[item] if item else None,
        )
    ]
