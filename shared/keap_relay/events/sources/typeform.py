"""Typeform `form_response` webhooks: answers mapped to a contact by field type, ref and title."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import EventIgnored, SignatureInvalid
from ._common import (
    JSON,
    as_dict,
    as_list,
    b64_hmac,
    canonical_event,
    contact_from_fields,
    dig,
    field_for,
    first,
    iso_time,
    json_object,
    prune,
    require_header,
    require_media,
    same,
    text,
)

SOURCE = "typeform"
KINDS = ("form_submission",)
CONTENT_TYPES = (JSON,)
AUTH = ("signature",)
SIGNATURE_HEADER = "typeform-signature"
FIELD_HINTS = {"contact.email": "an answer to an Email question"}

# Where an answer keeps its value, by answer `type`. Only the ones a contact can use are read.
ANSWER_VALUES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "text": lambda a: a.get("text"),
    "email": lambda a: a.get("email"),
    "phone_number": lambda a: a.get("phone_number"),
    "number": lambda a: a.get("number"),
    "url": lambda a: a.get("url"),
    "choice": lambda a: dig(a, "choice", "label"),
}
# Answer types that say which contact field they are, whatever the question's title.
TYPED_FIELDS = {"email": "email", "phone_number": "phone"}


def sign(raw_body: bytes, secret: str) -> dict[str, str]:
    """Typeform's headers for `raw_body`: sha256= base64 HMAC-SHA256 of the raw bytes."""
    return {SIGNATURE_HEADER: f"sha256={b64_hmac(secret, raw_body)}", "content-type": JSON}


def verify(headers: Mapping[str, str], raw_body: bytes, secret: str) -> None:
    """Raise SignatureInvalid unless Typeform-Signature is sha256=<base64 HMAC of the body>."""
    value = require_header(headers, SIGNATURE_HEADER, "sha256=<base64>")
    scheme, _, given = value.partition("=")
    if scheme.strip().lower() != "sha256" or not same(given.strip(), b64_hmac(secret, raw_body)):
        raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the body")


def _answer_fields(response: dict[str, Any]) -> list[tuple[str | None, Any]]:
    """(contact field, value) per answer; the question's ref and title come from `definition` by field id."""
    definition = {
        f["id"]: f
        for f in as_list(dig(response, "definition", "fields"))
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
        target = TYPED_FIELDS.get(kind) or field_for(field.get("ref"), question.get("ref"), question.get("title"))
        pairs.append((target, read(answer)))
    return pairs


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """One form_submission per form_response; other event types are ignored."""
    require_media(headers, CONTENT_TYPES)
    body = json_object(raw_body)
    if body.get("event_type") != "form_response":
        raise EventIgnored(f"typeform event_type {text(body.get('event_type'))!r} is not form_response; ignored")
    response = as_dict(body.get("form_response"))
    form = prune({"id": text(response.get("form_id")), "name": text(dig(response, "definition", "title"))})
    return [
        canonical_event(
            "form_submission",
            SOURCE,
            first(body.get("event_id"), response.get("token")),
            iso_time(response.get("submitted_at")),
            contact_from_fields(_answer_fields(response)),
            form=form,
        )
    ]
