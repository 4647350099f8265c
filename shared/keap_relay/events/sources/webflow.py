"""Webflow `form_submission` webhooks: fields keyed by the labels the site's designer typed."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ..errors import SignatureInvalid
from ._bodies import JSON, json_object, require_media_type
from ._event import form_submission, ignore_unless
from ._form_fields import contact_field_for, contact_from_fields
from ._signatures import constant_time_equal, hex_hmac, require_header, require_recent
from ._values import as_dict, iso_time

SOURCE = "webflow"
KINDS = ("form_submission",)
CONTENT_TYPES = (JSON,)
# Webflow signs only webhooks made through its API or an OAuth app; one added in the site dashboard is
# unsigned, so it authenticates with ?token=<secret> in the URL instead.
AUTH = ("signature", "token")
SIGNATURE_HEADER = "x-webflow-signature"
TIMESTAMP_HEADER = "x-webflow-timestamp"  # milliseconds since the epoch
TOLERANCE_SECONDS = 300
FIELD_HINTS = {"contact.email": "a form field labelled Email"}


def sign(raw_body: bytes, secret: str, *, timestamp_ms: int | None = None) -> dict[str, str]:
    """Webflow's headers: hex HMAC-SHA256 of "<timestamp ms>:<raw body>", the timestamp now unless given."""
    stamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    return {
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: hex_hmac(secret, stamp.encode() + b":" + raw_body),
        "content-type": JSON,
    }


def verify(headers: Mapping[str, str], raw_body: bytes, secret: str, *, now: float | None = None) -> None:
    """Raise SignatureInvalid unless the signature matches and its timestamp is within 5 minutes of now."""
    stamp = require_header(headers, TIMESTAMP_HEADER, "milliseconds since the epoch")
    given = require_header(headers, SIGNATURE_HEADER, "<hex>")
    if not stamp.isdigit() or len(stamp) > 16:
        raise SignatureInvalid(f"malformed {TIMESTAMP_HEADER} header (expected milliseconds since the epoch)")
    if not constant_time_equal(given.lower(), hex_hmac(secret, stamp.encode() + b":" + raw_body)):
        raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the body")
    require_recent(int(stamp) / 1000, TOLERANCE_SECONDS, now)


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """One form_submission per form_submission trigger; other triggers are ignored."""
    require_media_type(headers, CONTENT_TYPES)
    body = json_object(raw_body)
    ignore_unless(body.get("triggerType"), "form_submission", "webflow triggerType")
    payload = as_dict(body.get("payload"))
    data = as_dict(payload.get("data"))
    pairs = [(contact_field_for(label), value) for label, value in data.items()]
    submitted_at = iso_time(payload.get("submittedAt"))
    person = contact_from_fields(pairs)
    form_id, form_name = payload.get("formId"), payload.get("name")
    return [form_submission(SOURCE, payload.get("id"), submitted_at, person, form_id=form_id, form_name=form_name)]
