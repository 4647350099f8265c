"""Tally `FORM_RESPONSE` webhooks: fields by type (email, phone) and otherwise by label."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import EventIgnored
from ._common import (
    JSON,
    as_dict,
    as_list,
    b64_hmac,
    canonical_event,
    contact_from_fields,
    field_for,
    first,
    iso_time,
    json_object,
    prune,
    require_media,
    text,
    verify_body_b64_hmac,
)

SOURCE = "tally"
KINDS = ("form_submission",)
CONTENT_TYPES = (JSON,)
AUTH = ("signature",)
SIGNATURE_HEADER = "tally-signature"
FIELD_HINTS = {"contact.email": "an Email input block"}
# Tally field types that say which contact field they are, whatever their label.
TYPED_FIELDS = {"INPUT_EMAIL": "email", "INPUT_PHONE_NUMBER": "phone"}


def sign(raw_body: bytes, secret: str) -> dict[str, str]:
    """Tally's headers: base64 HMAC-SHA256 of the raw body (no timestamp)."""
    return {SIGNATURE_HEADER: b64_hmac(secret, raw_body), "content-type": JSON}


def verify(headers: Mapping[str, str], raw_body: bytes, secret: str) -> None:
    """Raise SignatureInvalid unless Tally-Signature is the base64 HMAC of the body under the signing secret."""
    verify_body_b64_hmac(headers, raw_body, secret, SIGNATURE_HEADER)


def _field(field: dict[str, Any]) -> str | None:
    kind = field.get("type")
    typed = TYPED_FIELDS.get(kind) if isinstance(kind, str) else None
    return typed or field_for(field.get("label"), field.get("key"))


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """One form_submission per FORM_RESPONSE; other event types are ignored."""
    require_media(headers, CONTENT_TYPES)
    body = json_object(raw_body)
    if body.get("eventType") != "FORM_RESPONSE":
        raise EventIgnored(f"tally eventType {text(body.get('eventType'))!r} is not FORM_RESPONSE; ignored")
    data = as_dict(body.get("data"))
    pairs = [(_field(f), f.get("value")) for f in as_list(data.get("fields")) if isinstance(f, dict)]
    form = prune({"id": text(data.get("formId")), "name": text(data.get("formName"))})
    return [
        canonical_event(
            "form_submission",
            SOURCE,
            first(body.get("eventId"), data.get("responseId")),
            iso_time(first(data.get("createdAt"), body.get("createdAt"))),
            contact_from_fields(pairs),
            form=form,
        )
    ]
