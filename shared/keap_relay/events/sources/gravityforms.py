"""Gravity Forms (Webhooks add-on) entries, JSON or form-encoded, with dotted input ids such as "1.3"."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from ._bodies import FORM, JSON, fields_body, require_media_type
from ._event import contact, form_submission
from ._form_fields import contact_field_for, contact_from_fields
from ._values import clean_text, first_present, stable_id

SOURCE = "gravityforms"
KINDS = ("form_submission",)
CONTENT_TYPES = (JSON, FORM)
AUTH = ("token",)  # the add-on does not sign: the URL carries ?token=<secret>
FIELD_HINTS = {"contact.email": "an Email field (or a key named email with 'Select Fields')"}
_INPUT = re.compile(r"(\d+)(?:\.(\d+))?")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

# The inputs of Gravity Forms' Name field: 3 first, 6 last; 2 prefix, 4 middle and 8 suffix may be there
# too. A field with any other input filled is something else (a checkbox's choices are inputs 1, 2, 3 ...).
NAME_INPUTS = frozenset({"2", "3", "4", "6", "8"})


def sign(raw_body: bytes, secret: str, *, content_type: str = JSON) -> dict[str, str]:
    """The add-on sends no signature (the secret goes in the URL as ?token=): only the content type."""
    return {"content-type": content_type}


def _entry_contact(body: dict[str, Any]) -> dict[str, Any]:
    """From an Entry ("All Fields"), which has input ids but no labels: the email is the first plain input
    holding an address, the name the field whose filled inputs are a Name field's and include 3 and 6.
    Other contact fields cannot be told apart in an entry; 'Select Fields' names them."""
    compound: dict[str, dict[str, Any]] = defaultdict(dict)
    email = None
    for key, value in body.items():
        match = _INPUT.fullmatch(key)
        if not match or clean_text(value) is None:
            continue
        field, part = match.groups()
        if part:
            compound[field][part] = value
        elif email is None and isinstance(value, str) and _EMAIL.fullmatch(value.strip()):
            email = value
    names = next((c for c in compound.values() if {"3", "6"} <= set(c) <= NAME_INPUTS), {})
    return contact(email, names.get("3"), names.get("6"))


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """One form_submission per entry. Keys named like contact fields (the 'Select Fields' body) win;
    an 'All Fields' entry is read by Gravity Forms' standard input ids."""
    require_media_type(headers, CONTENT_TYPES)
    body = fields_body(headers, raw_body)
    named = contact_from_fields(
        (contact_field_for(key), value) for key, value in body.items() if not _INPUT.fullmatch(key)
    )
    person = {**_entry_contact(body), **named}
    event_id = first_present(clean_text(body.get("id")), stable_id(sorted((str(k), str(v)) for k, v in body.items())))
    return [form_submission(SOURCE, event_id, None, person, form_id=body.get("form_id"))]
