"""Elementor Pro forms' Webhook action: form-encoded fields keyed by label, or by id with Advanced Data."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from ._bodies import FORM, form_body, require_media_type
from ._event import form_submission
from ._form_fields import contact_field_for, contact_from_fields
from ._values import first_present, stable_id

SOURCE = "elementor"
KINDS = ("form_submission",)
CONTENT_TYPES = (FORM,)
AUTH = ("token",)  # Elementor does not sign: the URL carries ?token=<secret>
SUCCESS_STATUS = 200  # Elementor shows the visitor "Webhook Error" for anything but exactly 200
FIELD_HINTS = {"contact.email": "a field labelled Email (or of type email with Advanced Data)"}
_ADVANCED = re.compile(r"fields\[([^\]]+)\]\[(\w+)\]")

# Entries Elementor adds to every simple body that are about the submission, not the person.
META_KEYS = frozenset({"date", "time", "page url", "user agent", "remote ip", "powered by", "form_id", "form_name"})
# Elementor field types that say which contact field they are (Advanced Data carries the type).
TYPED_FIELDS = {"email": "email", "tel": "phone"}


def sign(raw_body: bytes, secret: str) -> dict[str, str]:
    """Elementor sends no signature (the secret goes in the URL as ?token=): only the content type."""
    return {"content-type": FORM}


def _advanced_pairs(body: dict[str, str]) -> list[tuple[str | None, Any]]:
    fields: dict[str, dict[str, str]] = defaultdict(dict)
    for key, value in body.items():
        match = _ADVANCED.fullmatch(key)
        if match:
            fields[match[1]][match[2]] = value
    return [
        (TYPED_FIELDS.get(f.get("type", "")) or contact_field_for(f.get("title"), name), f.get("value"))
        for name, f in fields.items()
    ]


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """One form_submission per post; Elementor sends no submission id, so the id is a hash of the body."""
    require_media_type(headers, CONTENT_TYPES)
    body = form_body(headers, raw_body)
    if any(_ADVANCED.fullmatch(key) for key in body):
        pairs = _advanced_pairs(body)
    else:
        pairs = [(contact_field_for(key), value) for key, value in body.items() if key.strip().lower() not in META_KEYS]
    form_id = first_present(body.get("form_id"), body.get("form[id]"))
    form_name = first_present(body.get("form_name"), body.get("form[name]"))
    event_id = stable_id(sorted(body.items()))
    return [form_submission(SOURCE, event_id, None, contact_from_fields(pairs), form_id=form_id, form_name=form_name)]
