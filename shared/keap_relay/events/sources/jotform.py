"""Jotform submissions: multipart fields, the answers in the `rawRequest` JSON keyed q<N>_<name>."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import BodyUnparseable
from ._bodies import FORM, MULTIPART, fields_body, json_body, require_media_type
from ._event import AddressKeys, address_from, form_submission
from ._form_fields import contact_field_for, contact_from_fields

SOURCE = "jotform"
KINDS = ("form_submission",)
CONTENT_TYPES = (MULTIPART, FORM)
AUTH = ("token",)  # Jotform does not sign: the URL carries ?token=<secret>
FIELD_HINTS = {"contact.email": "an answer to an Email question (a rawRequest key such as q12_email)"}
_QUESTION = re.compile(r"q\d+_\w+")
ADDRESS = AddressKeys("addr_line1", "addr_line2", "city", "state", "postal", "country")  # an Address answer

# Jotform's compound answers (objects), turned into what the contact field wants, by contact field.
COMPOUND: dict[str, Callable[[dict[str, Any]], Any]] = {
    "phone": lambda v: v.get("full") or " ".join(str(v[k]) for k in ("area", "phone") if v.get(k)),
    "address": lambda v: address_from(v, ADDRESS),
    "name": lambda v: v,  # {first, middle, last}: contact_from_fields reads first and last
}


def sign(raw_body: bytes, secret: str, *, boundary: str | None = None) -> dict[str, str]:
    """Jotform sends no signature (the secret goes in the URL as ?token=): only the content type, whose
    boundary is read off the body's first line unless given."""
    if boundary is None:
        opening = raw_body.split(b"\r\n", 1)[0]
        boundary = opening[2:].decode("ascii", "replace") if opening.startswith(b"--") else "relay-boundary"
    return {"content-type": f"{MULTIPART}; boundary={boundary}"}


def _answers(raw_request: Any) -> dict[str, Any]:
    if not isinstance(raw_request, str) or not raw_request.strip():
        raise BodyUnparseable("no rawRequest field: this is not a Jotform submission webhook")
    answers = json_body(raw_request.encode("utf-8", "surrogatepass"))
    if not isinstance(answers, dict):
        raise BodyUnparseable("rawRequest must be a JSON object of the form's answers")
    return answers


def _pairs(answers: dict[str, Any]) -> list[tuple[str | None, Any]]:
    pairs: list[tuple[str | None, Any]] = []
    for key, value in answers.items():
        if not _QUESTION.fullmatch(key):
            continue  # slug, event_id, timers and other form bookkeeping
        target = contact_field_for(key)
        if isinstance(value, dict):
            convert = COMPOUND.get(target or "")
            value = convert(value) if convert else None
        pairs.append((target, value))
    return pairs


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """One form_submission per delivery; the answers are found by their question names."""
    require_media_type(headers, CONTENT_TYPES)
    fields = fields_body(headers, raw_body)
    answers = _answers(fields.get("rawRequest"))
    person = contact_from_fields(_pairs(answers))
    form_id, form_name = fields.get("formID"), fields.get("formTitle")
    return [form_submission(SOURCE, fields.get("submissionID"), None, person, form_id=form_id, form_name=form_name)]
