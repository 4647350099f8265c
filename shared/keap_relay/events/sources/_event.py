"""Building a canonical event from what a vendor sent (its contact, address, line items and envelope), and
passing over a delivery that is not one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ..errors import EventIgnored
from ._values import as_list, clean_text, email_address, first_present, split_name, without_empty

Key = str | tuple[str, ...]  # a vendor's key for a value; a tuple names several, the first present wins


class AddressKeys(NamedTuple):
    """Where a vendor keeps each part of an address."""

    line1: Key
    line2: Key
    city: Key
    region: Key
    postal_code: Key
    country_code: Key


def address(
    line1: Any = None,
    line2: Any = None,
    city: Any = None,
    region: Any = None,
    postal_code: Any = None,
    country_code: Any = None,
) -> dict[str, str]:
    """A canonical address of whichever parts the vendor gave."""
    return without_empty(
        {
            "line1": clean_text(line1),
            "line2": clean_text(line2),
            "city": clean_text(city),
            "region": clean_text(region),
            "postal_code": clean_text(postal_code),
            "country_code": clean_text(country_code),
        }
    )


def _value_of(place: Mapping[str, Any], key: Key) -> Any:
    return first_present(*(place.get(k) for k in ((key,) if isinstance(key, str) else key)))


def address_from(place: Mapping[str, Any], keys: AddressKeys) -> dict[str, str]:
    """A canonical address read from a vendor's address object by the vendor's keys."""
    return address(*(_value_of(place, key) for key in keys))


def contact(
    email: Any,
    first_name: Any = None,
    last_name: Any = None,
    *,
    name: Any = None,
    phone: Any = None,
    company: Any = None,
    address: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A canonical contact; a full `name` is split only when no first and last name were given."""
    first_name, last_name = clean_text(first_name), clean_text(last_name)
    if not first_name and not last_name and name is not None:
        first_name, last_name = split_name(name)
    return without_empty(
        {
            "email": email_address(email),
            "first_name": first_name,
            "last_name": last_name,
            "phone": clean_text(phone),
            "company": clean_text(company),
            "address": address or None,
        }
    )


def line_item(
    *,
    sku: Any = None,
    product_id: Any = None,
    name: Any = None,
    quantity: int | None = None,
    unit_price: str | None = None,
) -> dict[str, Any]:
    """A canonical line item of whichever parts the vendor gave (quantity and price already read)."""
    texts = {"sku": clean_text(sku), "product_id": clean_text(product_id), "name": clean_text(name)}
    return without_empty({**texts, "quantity": quantity, "unit_price": unit_price})


def line_items(lines: Any, read: Callable[[dict[str, Any]], dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Each object of a vendor's array of order lines read as a line item; None when there is none."""
    return [read(line) for line in as_list(lines) if isinstance(line, dict)] or None


def order_event_id(order_id: str | None) -> str | None:
    """The id of an order's purchase: one per order, whichever delivery (created, paid, updated) brings it."""
    return f"order-{order_id}" if order_id else None


def ignore_unless(value: Any, wanted: str, what: str) -> None:
    """Raise EventIgnored (answered 200, nothing queued) unless the vendor's `value` is `wanted`; `what`
    names the value in the answer, e.g. "tally eventType"."""
    if value != wanted:
        raise EventIgnored(f"{what} {clean_text(value)!r} is not {wanted}; ignored")


def canonical_event(
    kind: str,
    source: str,
    event_id: Any,
    occurred_at: str | None,
    contact: dict[str, Any],
    **section: dict[str, Any] | None,
) -> dict[str, Any]:
    """A canonical event; `contact` stays even when empty, so a missing email is reported as such."""
    event: dict[str, Any] = {"kind": kind, "source": source, "id": clean_text(event_id), "occurred_at": occurred_at}
    event = {k: v for k, v in event.items() if v is not None}
    event["contact"] = contact
    for name, value in section.items():
        if value:
            event[name] = value
    return event


def form_submission(
    source: str, event_id: Any, occurred_at: str | None, person: dict[str, Any], *, form_id: Any, form_name: Any = None
) -> dict[str, Any]:
    """A canonical form_submission, with the form's id and name where the vendor gave them."""
    form = without_empty({"id": clean_text(form_id), "name": clean_text(form_name)})
    return canonical_event("form_submission", source, event_id, occurred_at, person, form=form)


def unsubscribe(
    source: str, event_id: Any, occurred_at: str | None, person: dict[str, Any], *, reason: Any, list_id: Any = None
) -> dict[str, Any]:
    """A canonical unsubscribe, with its reason and the list it leaves where the vendor gave them."""
    details = without_empty({"reason": clean_text(reason), "list_id": clean_text(list_id)})
    return canonical_event("unsubscribe", source, event_id, occurred_at, person, unsubscribe=details)


def purchase(
    source: str,
    event_id: Any,
    occurred_at: str | None,
    person: dict[str, Any],
    *,
    order_id: Any,
    total: str | None,
    currency: str | None,
    items: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A canonical purchase: the order's id, total and currency (already read) and its line items."""
    order = without_empty({"id": clean_text(order_id), "total": total, "currency": currency, "items": items or None})
    return canonical_event("purchase", source, event_id, occurred_at, person, order=order)
