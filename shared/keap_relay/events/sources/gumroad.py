"""Gumroad sale pings (form-encoded) as purchases."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import EventIgnored
from ._bodies import FORM, form_body, require_media_type
from ._event import contact, line_item, purchase
from ._values import currency_code, first_present, iso_time, money_from_minor, quantity, unit_price_minor

SOURCE = "gumroad"
KINDS = ("purchase",)
CONTENT_TYPES = (FORM,)
AUTH = ("token",)  # Gumroad's ping is unsigned: the ping URL carries ?token=<secret>
SUCCESS_STATUS = 200  # Gumroad retries anything but 200 (hourly, for 3 hours)
FIELD_HINTS = {"contact.email": "the ping's email field"}
# Flags on a ping that make it something other than a new sale (Gumroad writes booleans as strings).
NOT_A_SALE = {"refunded": "a refund", "disputed": "a dispute", "chargebacked": "a chargeback"}


def sign(raw_body: bytes, secret: str) -> dict[str, str]:
    """Gumroad sends no signature (the secret goes in the URL as ?token=): only the content type."""
    return {"content-type": FORM}


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """One purchase per sale ping (price in minor units of `currency`); refunds and disputes are ignored."""
    require_media_type(headers, CONTENT_TYPES)
    sale = form_body(headers, raw_body)
    for flag, what in NOT_A_SALE.items():
        if sale.get(flag, "").strip().lower() == "true":
            raise EventIgnored(f"gumroad ping is {what}, not a sale; ignored")
    currency = currency_code(sale.get("currency"))
    count = quantity(sale.get("quantity"))
    item = line_item(
        product_id=sale.get("product_id"),
        name=sale.get("product_name"),
        quantity=count,
        unit_price=money_from_minor(unit_price_minor(sale.get("price"), count), currency),
    )
    sale_id, order_number = sale.get("sale_id"), sale.get("order_number")
    person = contact(sale.get("email"), name=sale.get("full_name"))
    return [
        purchase(
            SOURCE,
            first_present(sale_id, order_number),
            iso_time(sale.get("sale_timestamp")),
            person,
            order_id=first_present(order_number, sale_id),
            total=money_from_minor(sale.get("price"), currency),
            currency=currency,
            items=[item] if item else None,
        )
    ]
