"""Which contact field a form's field is, from the words of its label, key or ref; and the contact they make."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ._event import contact
from ._values import clean_text

# Checked in this order; a rule holds when all words of one of its patterns are in the label and none of its
# `unless` words are: "Company name" is a company before it is a name, "First name" a first name, "Product
# name" nobody's.
_NOT_A_PERSON = "product form page file event project user site domain campaign team pet child item plan"
LABEL_RULES: tuple[tuple[str, tuple[frozenset[str], ...], frozenset[str]], ...] = tuple(
    (target, tuple(frozenset(p.split()) for p in patterns), frozenset(unless.split()))
    for target, patterns, unless in (
        ("email", ("email", "e mail", "emailaddress"), ""),
        ("first_name", ("first name", "firstname", "given name", "fname", "forename"), _NOT_A_PERSON),
        ("last_name", ("last name", "lastname", "surname", "family name", "lname"), _NOT_A_PERSON),
        ("phone", ("phone", "phonenumber", "telephone", "mobile", "tel", "cell"), ""),
        ("company", ("company", "companyname", "organisation", "organization", "business name", "employer"), ""),
        ("address", ("address",), "ip"),
        ("name", ("name", "fullname", "full name"), _NOT_A_PERSON),
    )
)


def label_words(label: str) -> frozenset[str]:
    """'phoneNumber' / 'Phone_Number' / 'q13_phoneNumber' → {'phone', 'number'}."""
    label = re.sub(r"^q\d+_", "", label)  # Jotform's question-number prefix
    label = re.sub(r"([a-z])([A-Z])", r"\1 \2", label)
    return frozenset(re.findall(r"[a-z0-9]+", label.lower()))


def contact_field_for(*labels: Any) -> str | None:
    """The contact field (a target of LABEL_RULES) that any of `labels` names, or None."""
    words = [label_words(label) for label in labels if isinstance(label, str) and label]
    for target, patterns, unless in LABEL_RULES:
        if any(pattern <= w and not unless & w for w in words for pattern in patterns):
            return target
    return None


def contact_from_fields(items: Iterable[tuple[str | None, Any]]) -> dict[str, Any]:
    """A canonical contact from (contact field, value) pairs, the first value of each field winning.

    The field is a LABEL_RULES target (or None to skip); a `name` value may be a full-name string or a
    {first, last} object; an `address` must already be canonical.
    """
    found: dict[str, Any] = {}
    for target, value in items:
        if target is None or target in found:
            continue
        if target == "name" and isinstance(value, dict):
            if "first_name" not in found and clean_text(value.get("first")):
                found["first_name"] = value.get("first")
            if "last_name" not in found and clean_text(value.get("last")):
                found["last_name"] = value.get("last")
            continue
        if target == "address":
            if isinstance(value, dict) and value:
                found[target] = value
            continue
        if clean_text(value) is not None:
            found[target] = value
    return contact(
        found.get("email"),
        found.get("first_name"),
        found.get("last_name"),
        name=found.get("name"),
        phone=found.get("phone"),
        company=found.get("company"),
        address=found.get("address"),
    )
