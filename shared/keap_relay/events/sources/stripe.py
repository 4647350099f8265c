"""Stripe events (checkout.session.completed / async_payment_succeeded, invoice.paid) as purchases."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import EventIgnored, SignatureInvalid
from ._bodies import JSON, json_object, require_media_type
from ._event import AddressKeys, address_from, contact, line_item, line_items, purchase
from ._signatures import constant_time_equal, hex_hmac, require_header, require_recent
from ._values import (
    as_dict,
    clean_text,
    currency_code,
    first_present,
    iso_from_unix,
    money_from_minor,
    quantity,
    unit_price_minor,
    value_at,
)

SOURCE = "stripe"
KINDS = ("purchase",)
CONTENT_TYPES = (JSON,)
AUTH = ("signature",)
SIGNATURE_HEADER = "stripe-signature"
TOLERANCE_SECONDS = 300  # Stripe's SDKs' default
FIELD_HINTS = {"contact.email": "data.object.customer_details.email (or customer_email)"}
PAID = frozenset({"paid", "no_payment_required"})  # a session's payment_status that means it is bought
ADDRESS = AddressKeys("line1", "line2", "city", "state", "postal_code", "country")  # Stripe's address object
# What reading a purchase's data.object gives: the event id, the contact, and the order's purchase() keywords.
Purchase = tuple[str | None, dict[str, Any], dict[str, Any]]


def _header(timestamp: int, signatures: list[str]) -> str:
    return ",".join([f"t={timestamp}", *(f"v1={s}" for s in signatures)])


def sign(raw_body: bytes, secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    """Stripe's header: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">, the time now unless given."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {SIGNATURE_HEADER: _header(stamp, [hex_hmac(secret, f"{stamp}.".encode() + raw_body)]), "content-type": JSON}


def verify(headers: Mapping[str, str], raw_body: bytes, secret: str, *, now: float | None = None) -> None:
    """Raise SignatureInvalid unless one v1 signature matches (several during a secret roll) and t is
    within 300 s of now. v0 (test-mode legacy) signatures are ignored."""
    pairs = [part.strip().partition("=") for part in require_header(headers, SIGNATURE_HEADER, "t=..,v1=..").split(",")]
    stamps = [value for key, _, value in pairs if key == "t"]
    given = [value for key, _, value in pairs if key == "v1" and value]
    if len(stamps) != 1 or not stamps[0].isdigit() or len(stamps[0]) > 12 or not given:
        raise SignatureInvalid(f"malformed {SIGNATURE_HEADER} header (expected t=<unix>,v1=<hex>)")
    expected = hex_hmac(secret, f"{stamps[0]}.".encode() + raw_body)
    matches = [constant_time_equal(candidate.lower(), expected) for candidate in given]  # all compared: no early exit
    if not any(matches):
        raise SignatureInvalid(f"no v1 signature in {SIGNATURE_HEADER} matches the body")
    require_recent(int(stamps[0]), TOLERANCE_SECONDS, now)


def _checkout(session: dict[str, Any]) -> Purchase:
    if session.get("payment_status") not in PAID:
        raise EventIgnored(
            f"stripe checkout session payment_status {clean_text(session.get('payment_status'))!r} "
            "is not paid; checkout.session.async_payment_succeeded will bring it"
        )
    details, currency = as_dict(session.get("customer_details")), currency_code(session.get("currency"))
    place = as_dict(details.get("address"))
    person = contact(
        first_present(details.get("email"), session.get("customer_email")),
        name=details.get("name"),
        phone=details.get("phone"),
        company=details.get("business_name"),
        address=address_from(place, ADDRESS),
    )
    order = {
        "order_id": session.get("id"),
        "total": money_from_minor(session.get("amount_total"), currency),
        "currency": currency,
    }
    # A subscription's checkout and its first invoice.paid are one purchase: key both on the invoice.
    key = clean_text(session.get("invoice")) if isinstance(session.get("invoice"), str) else None
    return first_present(key, clean_text(session.get("id"))), person, order


def _line(line: dict[str, Any], currency: str | None) -> dict[str, Any]:
    count = quantity(line.get("quantity"))
    unit = first_present(value_at(line, "price", "unit_amount"), unit_price_minor(line.get("amount"), count))
    product = first_present(value_at(line, "price", "product"), value_at(line, "pricing", "price_details", "product"))
    return line_item(
        product_id=product if isinstance(product, str) else value_at(product, "id"),
        name=line.get("description"),
        quantity=count,
        unit_price=money_from_minor(unit, currency),
    )


def _invoice(invoice: dict[str, Any]) -> Purchase:
    place, currency = as_dict(invoice.get("customer_address")), currency_code(invoice.get("currency"))
    person = contact(
        invoice.get("customer_email"),
        name=invoice.get("customer_name"),
        phone=invoice.get("customer_phone"),
        address=address_from(place, ADDRESS),
    )
    lines = line_items(value_at(invoice, "lines", "data"), lambda line: _line(line, currency))
    order = {
        "order_id": first_present(invoice.get("number"), invoice.get("id")),
        "total": money_from_minor(first_present(invoice.get("amount_paid"), invoice.get("total")), currency),
        "currency": currency,
        "items": lines,
    }
    return clean_text(invoice.get("id")), person, order


# Event types that are purchases, and how each one's data.object is read. The canonical id is the
# object's (cs_…, in_…), not the event's: Stripe may send more than one event for one payment.
TYPES: dict[str, Callable[[dict[str, Any]], Purchase]] = {
    "checkout.session.completed": _checkout,
    "checkout.session.async_payment_succeeded": _checkout,
    "invoice.paid": _invoice,
}


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """One purchase per paid checkout session or paid invoice; other event types are ignored."""
    require_media_type(headers, CONTENT_TYPES)
    event = json_object(raw_body)
    kind = event.get("type")
    read = TYPES.get(kind) if isinstance(kind, str) else None
    if read is None:
        raise EventIgnored(
            f"stripe event type {clean_text(kind)!r} is not one keap-relay acts on ({', '.join(TYPES)}); ignored"
        )
    key, person, order = read(as_dict(value_at(event, "data", "object")))
    return [purchase(SOURCE, key, iso_from_unix(event.get("created")), person, **order)]
