"""Postmark `SubscriptionChange` webhooks: a recipient suppressed (unsubscribed, bounced, complained)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import EventIgnored
from ._bodies import JSON, json_object, require_media_type
from ._event import contact, ignore_unless, unsubscribe
from ._values import first_present, iso_time, stable_id

SOURCE = "postmark"
KINDS = ("unsubscribe",)
CONTENT_TYPES = (JSON,)
AUTH = ("token",)  # Postmark does not sign: the webhook URL carries ?token=<secret>
FIELD_HINTS = {"contact.email": "Recipient"}


def sign(raw_body: bytes, secret: str) -> dict[str, str]:
    """Postmark sends no signature (the secret goes in the URL as ?token=): only the content type."""
    return {"content-type": JSON}


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """One unsubscribe per SubscriptionChange that suppresses sending; reactivations and other record
    types (Bounce, Delivery, Open ...) are ignored. Postmark sends no event id: the id is a hash of
    recipient, stream, time and the change, so a retry maps to the same one."""
    require_media_type(headers, CONTENT_TYPES)
    body = json_object(raw_body)
    ignore_unless(body.get("RecordType"), "SubscriptionChange", "postmark RecordType")
    if body.get("SuppressSending") is not True:
        raise EventIgnored("postmark SubscriptionChange reactivates the recipient (SuppressSending false); ignored")
    event_id = stable_id(
        body.get("Recipient"), body.get("MessageStream"), body.get("ChangedAt"), body.get("SuppressSending")
    )
    reason = first_present(body.get("SuppressionReason"), body.get("Origin"))
    changed_at = iso_time(body.get("ChangedAt"))
    person = contact(body.get("Recipient"))
    return [unsubscribe(SOURCE, event_id, changed_at, person, reason=reason, list_id=body.get("MessageStream"))]
