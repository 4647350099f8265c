"""WooCommerce order webhooks (order.created / order.updated) as purchases, once an order is paid."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import EventIgnored
from ._bodies import FORM, JSON, json_object, media_type, require_media_type
from ._event import AddressKeys, address_from, contact, line_item, line_items, order_event_id, purchase
from ._signatures import HmacHeader
from ._values import as_dict, clean_text, currency_code, first_present, iso_time, money, quantity

SOURCE = "woocommerce"
KINDS = ("purchase",)
CONTENT_TYPES = (JSON,)
AUTH = ("signature",)
SIGNATURE = HmacHeader("x-wc-webhook-signature", "base64")
TOPIC_HEADER = "x-wc-webhook-topic"
FIELD_HINTS = {"contact.email": "the order's billing.email"}
_PING = re.compile(rb"webhook_id=\d{1,20}")
BILLING_ADDRESS = AddressKeys("address_1", "address_2", "city", "state", "postcode", "country")

# Topics that can carry a purchase. order.updated fires on every edit, so an order is a purchase once:
# when its status says paid; its canonical id is the order's, so later updates map to the same event.
TOPICS = frozenset({"order.created", "order.updated"})
PAID_STATUSES = frozenset({"processing", "completed"})

verify = SIGNATURE.verify  # SignatureInvalid unless X-WC-Webhook-Signature is the base64 HMAC of the raw body


def sign(raw_body: bytes, secret: str, *, topic: str | None = None) -> dict[str, str]:
    """WooCommerce's headers: base64 HMAC-SHA256 of the raw body (and the topic header when given)."""
    return {**SIGNATURE.sign(raw_body, secret), "content-type": JSON, **({TOPIC_HEADER: topic} if topic else {})}


def handshake(method: str, headers: Mapping[str, str], raw_body: bytes) -> dict[str, str] | None:
    """WooCommerce's creation ping: an unsigned form-encoded `webhook_id=N` that must be answered 200."""
    if method == "POST" and media_type(headers) == FORM and _PING.fullmatch(raw_body.strip()):
        return {"status": "ok", "detail": "woocommerce webhook ping acknowledged; nothing queued"}
    return None


def _item(line: dict[str, Any]) -> dict[str, Any]:
    count, price = quantity(line.get("quantity")), money(line.get("price"))
    return line_item(
        sku=line.get("sku"), product_id=line.get("product_id"), name=line.get("name"), quantity=count, unit_price=price
    )


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """One purchase per paid order (status processing or completed); anything else is ignored."""
    require_media_type(headers, CONTENT_TYPES)
    topic = headers.get(TOPIC_HEADER, "").strip()
    order = json_object(raw_body)
    if topic not in TOPICS:
        raise EventIgnored(f"woocommerce topic {topic[:80]!r} is not order.created or order.updated; ignored")
    status = clean_text(order.get("status"))
    if status not in PAID_STATUSES:
        raise EventIgnored(f"woocommerce order status {status!r} is not paid (processing, completed); ignored")
    billing = as_dict(order.get("billing"))
    person = contact(
        billing.get("email"),
        billing.get("first_name"),
        billing.get("last_name"),
        phone=billing.get("phone"),
        company=billing.get("company"),
        address=address_from(billing, BILLING_ADDRESS),
    )
    paid_at = iso_time(first_present(order.get("date_paid_gmt"), order.get("date_created_gmt")), naive_is_utc=True)
    return [
        purchase(
            SOURCE,
            order_event_id(clean_text(order.get("id"))),
            paid_at,
            person,
            order_id=first_present(order.get("number"), order.get("id")),
            total=money(order.get("total")),
            currency=currency_code(order.get("currency")),
            items=line_items(order.get("line_items"), _item),
        )
    ]
