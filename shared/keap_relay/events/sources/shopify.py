"""Shopify order webhooks (orders/paid, and orders/create when already paid) as purchases."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import EventIgnored
from ._bodies import JSON, json_object, require_media_type
from ._event import AddressKeys, address_from, contact, line_item, line_items, order_event_id, purchase
from ._signatures import HmacHeader
from ._values import as_dict, clean_text, currency_code, first_present, iso_time, money, quantity

SOURCE = "shopify"
KINDS = ("purchase",)
CONTENT_TYPES = (JSON,)
AUTH = ("signature",)
SIGNATURE = HmacHeader("x-shopify-hmac-sha256", "base64")  # under the app's client secret
TOPIC_HEADER = "x-shopify-topic"
FIELD_HINTS = {"contact.email": "the order's email (redacted unless the app may read customer data)"}
BILLING_ADDRESS = AddressKeys(
    "address1", "address2", "city", ("province_code", "province"), "zip", ("country_code", "country")
)

# Which topics are a purchase, and when. An order is a purchase once, whichever topic says it is paid:
# the canonical id is the order's, so orders/create (paid at once) and orders/paid are one event, and
# Shopify's retries (up to 8 over 4 hours, same payload) are too.
TOPICS = {
    "orders/paid": lambda order: True,
    "orders/create": lambda order: order.get("financial_status") == "paid",
}

verify = SIGNATURE.verify  # SignatureInvalid unless X-Shopify-Hmac-Sha256 is the base64 HMAC of the raw body


def sign(raw_body: bytes, secret: str, *, topic: str | None = None) -> dict[str, str]:
    """Shopify's headers: base64 HMAC-SHA256 of the raw body (and the topic header when `topic` is given)."""
    return {**SIGNATURE.sign(raw_body, secret), "content-type": JSON, **({TOPIC_HEADER: topic} if topic else {})}


def _item(line: dict[str, Any]) -> dict[str, Any]:
    return line_item(
        sku=line.get("sku"),
        product_id=line.get("product_id"),
        name=first_present(line.get("name"), line.get("title")),
        quantity=quantity(line.get("quantity")),
        unit_price=money(line.get("price")),
    )


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """One purchase per paid order; other topics, and orders not yet paid, are ignored."""
    require_media_type(headers, CONTENT_TYPES)
    topic = headers.get(TOPIC_HEADER, "").strip()
    order = json_object(raw_body)
    is_purchase = TOPICS.get(topic)
    if is_purchase is None:
        raise EventIgnored(f"shopify topic {topic[:80]!r} is not a purchase (orders/paid, orders/create); ignored")
    if not is_purchase(order):
        status = clean_text(order.get("financial_status"))
        raise EventIgnored(f"shopify order on {topic} is {status!r}, not paid; orders/paid will bring it")
    customer, billing = as_dict(order.get("customer")), as_dict(order.get("billing_address"))
    person = contact(
        first_present(order.get("email"), order.get("contact_email"), customer.get("email")),
        first_present(customer.get("first_name"), billing.get("first_name")),
        first_present(customer.get("last_name"), billing.get("last_name")),
        phone=first_present(order.get("phone"), customer.get("phone"), billing.get("phone")),
        company=billing.get("company"),
        address=address_from(billing, BILLING_ADDRESS),
    )
    return [
        purchase(
            SOURCE,
            order_event_id(clean_text(order.get("id"))),
            iso_time(first_present(order.get("processed_at"), order.get("created_at"))),
            person,
            order_id=order.get("id"),
            total=money(order.get("total_price")),
            currency=currency_code(order.get("currency")),
            items=line_items(order.get("line_items"), _item),
        )
    ]
