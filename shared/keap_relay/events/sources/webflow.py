"""Webflow `form_submission` webhooks: fields keyed by the labels the site's designer typed."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ..errors import EventIgnored, SignatureInvalid
from ._common import (
    JSON,
    as_dict,
    canonical_event,
    check_age,
    contact_from_fields,
    dig,
    field_for,
    hex_hmac,
    iso_time,
    json_object,
    prune,
    require_header,
    require_media,
    same,
    text,
)

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
    if not same(given.lower(), hex_hmac(secret, stamp.encode() + b":" + raw_body)):
        raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the body")
    check_age(int(stamp) / 1000, TOLERANCE_SECONDS, time.time() if now is None else now)


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """One form_submission per form_submission trigger; other triggers are ignored."""
    require_media(headers, CONTENT_TYPES)
    body = json_object(raw_body)
    if body.get("triggerType") != "form_submission":
        raise EventIgnored(f"webflow triggerType {text(body.get('triggerType'))!r} is not form_submission; ignored")
    payload = as_dict(body.get("payload"))
    data = as_dict(payload.get("data"))
    pairs = [(field_for(label), value) for label, value in data.items()]
    form = prune({"id": text(payload.get("formId")), "name": text(payload.get("name"))})
    return [
        canonical_event(
            "form_submission",
            SOURCE,
            dig(payload, "id"),
            iso_time(payload.get("submittedAt")),
            contact_from_fields(pairs),
            form=form,
        )
    ]
