"""WooCommerce order webhooks (order.created / order.updated) as purchases, once an order is paid."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import EventIgnored
from ._common import (
    FORM,
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
    media_type,
    money,
    prune,
    quantity,
    require_media,
    text,
    verify_body_b64_hmac,
)

SOURCE = "woocommerce"
KINDS = ("purchase",)
CONTENT_TYPES = (JSON,)
AUTH = ("signature",)
SIGNATURE_HEADER = "x-wc-webhook-signature"
TOPIC_HEADER = "x-wc-webhook-topic"
FIELD_HINTS = {"contact.email": "the order's billing.email"}
_PING = re.compile(rb"webhook_id=\d{1,20}")

# Topics that can carry a purchase. order.updated fires on every edit, so an order is a purchase once:
# when its status says paid; its canonical id is the order's, so later updates map to the same event.
TOPICS = frozenset({"order.created", "order.updated"})
PAID_STATUSES = frozenset({"processing", "completed"})


def sign(raw_body: bytes, secret: str, *, topic: str | None = None) -> dict[str, str]:
    """WooCommerce's headers: base64 HMAC-SHA256 of the raw body (and the topic header when given)."""
    extra = {TOPIC_HEADER: topic} if topic else {}
    return {SIGNATURE_HEADER: b64_hmac(secret, raw_body), "content-type": JSON, **extra}


def handshake(method: str, headers: Mapping[str, str], raw_body: bytes) -> dict[str, str] | None:
    """WooCommerce's creation ping: an unsigned form-encoded `webhook_id=N` that must be answered 200."""
    if method == "POST" and media_type(headers) == FORM and _PING.fullmatch(raw_body.strip()):
        return {"status": "ok", "detail": "woocommerce webhook ping acknowledged; nothing queued"}
    return None


def verify(headers: Mapping[str, str], raw_body: bytes, secret: str) -> None:
    """Raise SignatureInvalid unless X-WC-Webhook-Signature is the base64 HMAC of the body."""
    verify_body_b64_hmac(headers, raw_body, secret, SIGNATURE_HEADER)


def _item(line: dict[str, Any]) -> dict[str, Any]:
    return prune(
        {
            "sku": text(line.get("sku")),
            "product_id": text(line.get("product_id")),
            "name": text(line.get("name")),
            "quantity": quantity(line.get("quantity")),
            "unit_price": money(line.get("price")),
        }
    )


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """One purchase per paid order (status processing or completed); anything else is ignored."""
    require_media(headers, CONTENT_TYPES)
    topic = headers.get(TOPIC_HEADER, "").strip()
    order = json_object(raw_body)
    if topic not in TOPICS:
        raise EventIgnored(f"woocommerce topic {topic[:80]!r} is not order.created or order.updated; ignored")
    status = text(order.get("status"))
    if status not in PAID_STATUSES:
        raise EventIgnored(f"woocommerce order status {status!r} is not paid (processing, completed); ignored")
    billing = as_dict(order.get("billing"))
    person = contact(
        billing.get("email"),
        billing.get("first_name"),
        billing.get("last_name"),
        phone=billing.get("phone"),
        company=billing.get("company"),
        address=address(
            billing.get("address_1"),
            billing.get("address_2"),
            billing.get("city"),
            billing.get("state"),
            billing.get("postcode"),
            billing.get("country"),
        ),
    )
    purchase = prune(
        {
            "id": text(first(order.get("number"), order.get("id"))),
            "total": money(order.get("total")),
            "currency": currency_code(order.get("currency")),
            "items": [_item(line) for line in as_list(order.get("line_items")) if isinstance(line, dict)] or None,
        }
    )
    order_id = text(order.get("id"))
    paid_at = iso_time(first(order.get("date_paid_gmt"), order.get("date_created_gmt")), naive_is_utc=True)
    return [
        canonical_event("purchase", SOURCE, f"order-{order_id}" if order_id else None, paid_at, person, order=purchase)
    ]
