"""Tally `FORM_RESPONSE` webhooks: fields by type (email, phone) and otherwise by label."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._bodies import JSON, json_object, require_media_type
from ._event import form_submission, ignore_unless
from ._form_fields import contact_field_for, contact_from_fields
from ._signatures import HmacHeader
from ._values import as_dict, as_list, first_present, iso_time

SOURCE = "tally"
KINDS = ("form_submission",)
CONTENT_TYPES = (JSON,)
AUTH = ("signature",)
SIGNATURE = HmacHeader("tally-signature", "base64")  # no timestamp
FIELD_HINTS = {"contact.email": "an Email input block"}
# Tally field types that say which contact field they are, whatever their label.
TYPED_FIELDS = {"INPUT_EMAIL": "email", "INPUT_PHONE_NUMBER": "phone"}


verify = SIGNATURE.verify  # SignatureInvalid unless Tally-Signature is the base64 HMAC of the raw body


def sign(raw_body: bytes, secret: str) -> dict[str, str]:
    """Tally's headers: base64 HMAC-SHA256 of the raw body (no timestamp)."""
    return {**SIGNATURE.sign(raw_body, secret), "content-type": JSON}


def _field(field: dict[str, Any]) -> str | None:
    kind = field.get("type")
    typed = TYPED_FIELDS.get(kind) if isinstance(kind, str) else None
    return typed or contact_field_for(field.get("label"), field.get("key"))


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """One form_submission per FORM_RESPONSE; other event types are ignored."""
    require_media_type(headers, CONTENT_TYPES)
    body = json_object(raw_body)
    ignore_unless(body.get("eventType"), "FORM_RESPONSE", "tally eventType")
    data = as_dict(body.get("data"))
    pairs = [(_field(f), f.get("value")) for f in as_list(data.get("fields")) if isinstance(f, dict)]
    event_id = first_present(body.get("eventId"), data.get("responseId"))
    created_at = iso_time(first_present(data.get("createdAt"), body.get("createdAt")))
    person = contact_from_fields(pairs)
    form_id, form_name = data.get("formId"), data.get("formName")
    return [form_submission(SOURCE, event_id, created_at, person, form_id=form_id, form_name=form_name)]
