"""Shopify order webhooks (orders/paid, and orders/create when already paid) as purchases."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import EventIgnored
from ._common import (
    JSON,
    address,
    as_dict,
    as_list,
    b64_hmac,
    canonical_event,
    contact,
    currency_code,
    first,
    iso_time,
    json_object,
    money,
    prune,
    quantity,
    require_media,
    text,
    verify_body_b64_hmac,
)

SOURCE = "shopify"
KINDS = ("purchase",)
CONTENT_TYPES = (JSON,)
AUTH = ("signature",)
SIGNATURE_HEADER = "x-shopify-hmac-sha256"
TOPIC_HEADER = "x-shopify-topic"
FIELD_HINTS = {"contact.email": "the order's email (redacted unless the app may read customer data)"}

# Which topics are a purchase, and when. An order is a purchase once, whichever topic says it is paid:
# the canonical id is the order's, so orders/create (paid at once) and orders/paid are one event, and
# Shopify's retries (up to 8 over 4 hours, same payload) are too.
TOPICS = {
    "orders/paid": lambda order: True,
    "orders/create": lambda order: order.get("financial_status") == "paid",
}


def sign(raw_body: bytes, secret: str, *, topic: str | None = None) -> dict[str, str]:
    """Shopify's headers: base64 HMAC-SHA256 of the raw body under the app's client secret (and the
    topic header when `topic` is given)."""
    extra = {TOPIC_HEADER: topic} if topic else {}
    return {SIGNATURE_HEADER: b64_hmac(secret, raw_body), "content-type": JSON, **extra}


def verify(headers: Mapping[str, str], raw_body: bytes, secret: str) -> None:
    """Raise SignatureInvalid unless X-Shopify-Hmac-Sha256 is the base64 HMAC of the body."""
    verify_body_b64_hmac(headers, raw_body, secret, SIGNATURE_HEADER)


def _item(line: dict[str, Any]) -> dict[str, Any]:
    return prune(
        {
            "sku": text(line.get("sku")),
            "product_id": text(line.get("product_id")),
            "name": text(first(line.get("name"), line.get("title"))),
            "quantity": quantity(line.get("quantity")),
            "unit_price": money(line.get("price")),
        }
    )


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """One purchase per paid order; other topics, and orders not yet paid, are ignored."""
    require_media(headers, CONTENT_TYPES)
    topic = headers.get(TOPIC_HEADER, "").strip()
    order = json_object(raw_body)
    is_purchase = TOPICS.get(topic)
    if is_purchase is None:
        raise EventIgnored(f"shopify topic {topic[:80]!r} is not a purchase (orders/paid, orders/create); ignored")
    if not is_purchase(order):
        raise EventIgnored(
            f"shopify order on {topic} is {text(order.get('financial_status'))!r}, not paid; orders/paid will bring it"
        )
    customer, billing = as_dict(order.get("customer")), as_dict(order.get("billing_address"))
    person = contact(
        first(order.get("email"), order.get("contact_email"), customer.get("email")),
        first(customer.get("first_name"), billing.get("first_name")),
        first(customer.get("last_name"), billing.get("last_name")),
        phone=first(order.get("phone"), customer.get("phone"), billing.get("phone")),
        company=billing.get("company"),
        address=address(
            billing.get("address1"),
            billing.get("address2"),
            billing.get("city"),
            first(billing.get("province_code"), billing.get("province")),
            billing.get("zip"),
            first(billing.get("country_code"), billing.get("country")),
        ),
    )
    purchase = prune(
        {
            "id": text(order.get("id")),
            "total": money(order.get("total_price")),
            "currency": currency_code(order.get("currency")),
            "items": [_item(line) for line in as_list(order.get("line_items")) if isinstance(line, dict)] or None,
        }
    )
    order_id = text(order.get("id"))
    return [
        canonical_event(
            "purchase",
            SOURCE,
            f"order-{order_id}" if order_id else None,
            iso_time(first(order.get("processed_at"), order.get("created_at"))),
            person,
            order=purchase,
        )
    ]
