"""Mailchimp audience webhooks (form-encoded): unsubscribes and cleaned addresses; its GET check gets 200."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import EventIgnored
from ._bodies import FORM, form_body, require_media_type
from ._event import contact, unsubscribe
from ._values import first_present, iso_time, stable_id

SOURCE = "mailchimp"
KINDS = ("unsubscribe",)
CONTENT_TYPES = (FORM,)
AUTH = ("token",)  # Mailchimp does not sign: the webhook URL carries ?token=<secret>
METHODS = ("POST", "GET")  # GET: Mailchimp checks the URL answers 200 before saving the webhook
FIELD_HINTS = {"contact.email": "data[email]"}

# Event types that end a subscription, and how each one's reason reads.
TYPES = {
    "unsubscribe": lambda f: first_present(f.get("data[reason]"), f.get("data[action]"), "unsubscribe"),
    "cleaned": lambda f: f"cleaned: {first_present(f.get('data[reason]'), 'bounced')}",
}


def sign(raw_body: bytes, secret: str) -> dict[str, str]:
    """Mailchimp sends no signature (the secret goes in the URL as ?token=): only the content type."""
    return {"content-type": FORM}


def handshake(method: str, headers: Mapping[str, str], raw_body: bytes) -> dict[str, str] | None:
    """Mailchimp's URL validation: a GET (after the token check) answered 200 with nothing queued."""
    if method == "GET":
        return {"status": "ok", "detail": "mailchimp webhook URL validated; nothing queued"}
    return None


def parse(headers: Mapping[str, str], raw_body: bytes) -> list[dict[str, Any]]:
    """One unsubscribe per `unsubscribe` or `cleaned` post; subscribes, profile and email changes are ignored.

    Mailchimp sends no event id: the id is a hash of type, list, email and fired_at, so a retry maps to it.
    fired_at carries no zone; Mailchimp's times are UTC.
    """
    require_media_type(headers, CONTENT_TYPES)
    fields = form_body(headers, raw_body)
    kind = fields.get("type", "")
    reason = TYPES.get(kind)
    if reason is None:
        raise EventIgnored(f"mailchimp type {kind[:40]!r} is not unsubscribe or cleaned; ignored")
    email = first_present(fields.get("data[email]"), fields.get("data[merges][EMAIL]"))
    event_id = stable_id(kind, fields.get("data[list_id]"), email, fields.get("fired_at"))
    person = contact(email, fields.get("data[merges][FNAME]"), fields.get("data[merges][LNAME]"))
    fired_at = iso_time(fields.get("fired_at"), naive_is_utc=True)
    return [unsubscribe(SOURCE, event_id, fired_at, person, reason=reason(fields), list_id=fields.get("data[list_id]"))]
