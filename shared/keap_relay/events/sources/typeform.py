"""Typeform `form_response` webhooks: answers mapped to a contact by field type, ref and title."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._bodies import JSON, json_object, require_media_type
from ._event import form_submission, ignore_unless
from ._form_fields import contact_field_for, contact_from_fields
from ._signatures import HmacHeader
from ._values import as_dict, as_list, first_present, iso_time, value_at

SOURCE = "typeform"
KINDS = ("form_submission",)
CONTENT_TYPES = (JSON,)
AUTH = ("signature",)
SIGNATURE = HmacHeader("typeform-signature", "base64", scheme="sha256")  # sha256=<base64>
FIELD_HINTS = {"contact.email": "an answer to an Email question"}

# Where an answer keeps its value, by answer `type`. Only the ones a contact can use are read.
ANSWER_VALUES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "text": lambda a: a.get("text"),
    "email": lambda a: a.get("email"),
    "phone_number": lambda a: a.get("phone_number"),
    "number": lambda a: a.get("number"),
    "url": lambda a: a.get("url"),
    "choice": lambda a: value_at(a, "choice", "label"),
}
# Answer types that say which contact field they are, whatever the question's title.
TYPED_FIELDS = {"email": "email", "phone_number": "phone"}


verify = SIGNATURE.verify  # SignatureInvalid unless Typeform-Signature is sha256=<base64 HMAC of the raw body>


def sign(raw_body: bytes, secret: str) -> dict[str, str]:
    """Typeform's headers for `raw_body`: sha256= base64 HMAC-SHA256 of the raw bytes."""
    return {**SIGNATURE.sign(raw_body, secret), "content-type": JSON}


def _answer_fields(response: dict[str, Any]) -> list[tuple[str | None, Any]]:
    """(contact field, value) per answer; the question's ref and title come from `definition` by field id."""
    definition = {
        f["id"]: f
        for f in as_list(value_at(response, "definition", "fields"))
        if isinstance(f, dict) and isinstance(f.get("id"), str)
    }
    pairs: list[tuple[str | None, Any]] = []
    for answer in as_list(response.get("answers")):
        if not isinstance(answer, dict):
            continue
        kind = answer.get("type")
        read = ANSWER_VALUES.get(kind) if isinstance(kind, str) else None
        if read is None:
            continue
        field = as_dict(answer.get("field"))
        question = definition.get(field["id"], {}) if isinstance(field.get("id"), str) else {}
        target = TYPED_FIELDS.get(kind) or contact_field_for(
            field.get("ref"), question.get("ref"), question.get("title")
        )
        pairs.append((target, read(answer)))
    return pairs


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """One form_submission per form_response; other event types are ignored."""
    require_media_type(headers, CONTENT_TYPES)
    body = json_object(raw_body)
    ignore_unless(body.get("event_type"), "form_response", "typeform event_type")
    response = as_dict(body.get("form_response"))
    event_id = first_present(body.get("event_id"), response.get("token"))
    submitted_at = iso_time(response.get("submitted_at"))
    person = contact_from_fields(_answer_fields(response))
    form_id, form_name = response.get("form_id"), value_at(response, "definition", "title")
    return [form_submission(SOURCE, event_id, submitted_at, person, form_id=form_id, form_name=form_name)]
