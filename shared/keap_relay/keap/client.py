"""Keap ContactService over XML-RPC: one method per API method, with auth, retries and pacing."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from keap_relay.keap.codec import decode_response, encode_call
from keap_relay.keap.defaults import DEFAULT_URL, DUP_CHECK_TYPES
from keap_relay.keap.errors import KeapMalformedResponse, KeapRequestError
from keap_relay.keap.session import RetryingClient

__all__ = ["SAFE_TO_REPEAT", "ContactService"]

T = TypeVar("T")


# The key travels in a header; Keap still wants a first `privateKey` parameter and ignores its value.
# This is the literal Keap's own PHP SDK sends (spelling included).
PRIVATE_KEY_PLACEHOLDER = "backwards-compatability"


# Methods whose repetition leaves Keap as one call would: these may be retried even when the first
# attempt may have been applied (read timeout, connection lost after sending, 5xx, garbled answer).
# add would create a second contact, runActionSequence run the actions twice, rescheduleCampaignStep
# send the step twice, merge act on an already-merged pair: never repeated. Methods reached through
# call() that are not listed here count as unsafe.
SAFE_TO_REPEAT = frozenset(
    {
        "ContactService.addWithDupCheck",
        "ContactService.load",
        "ContactService.findByEmail",
        "ContactService.addToGroup",
        "ContactService.removeFromGroup",
        "ContactService.update",
        "ContactService.addToCampaign",
        "ContactService.pauseCampaign",
        "ContactService.resumeCampaignForContact",
        "ContactService.removeFromCampaign",
        "ContactService.getNextCampaignStep",
        "DataService.query",  # a read: the operator CLI's listings (keap-relay routes check --live)
    }
)

# ---------------------------------------------------------------- argument checks (nothing sent yet)


def _check_id(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise KeapRequestError(f"{name} must be an int, not {type(value).__name__}")
    if value <= 0:
        raise KeapRequestError(f"{name} must be a positive Keap id")
    return value


def _check_ids(name: str, values: object) -> list[int]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise KeapRequestError(f"{name} must be a list of ints")
    return [_check_id(f"{name}[{i}]", v) for i, v in enumerate(values)]


def _check_fields(name: str, values: object) -> list[str]:
    # A bare string would be sent as one string rather than an array: a classic slip.
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise KeapRequestError(f"{name} must be a list of field names, e.g. ['Id', 'Email']")
    if not values:
        raise KeapRequestError(f"{name} must name at least one field")
    for i, v in enumerate(values):
        if not isinstance(v, str) or not v:
            raise KeapRequestError(f"{name}[{i}] must be a non-empty field name")
    return list(values)


def _check_data(name: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise KeapRequestError(f"{name} must be a dict of Keap field name to value")
    return value


def _check_text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise KeapRequestError(f"{name} must be a non-empty string")
    return value


# ---------------------------------------------------------------- result shapes


def _as_int(value: Any, method: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise KeapMalformedResponse(f"expected an int result, got {type(value).__name__}", method=method)


def _as_bool(value: Any, method: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1) and isinstance(value, int):
        return bool(value)
    raise KeapMalformedResponse(f"expected a boolean result, got {type(value).__name__}", method=method)


def _as_struct(value: Any, method: str) -> dict:
    if isinstance(value, dict):
        return value
    raise KeapMalformedResponse(f"expected a struct result, got {type(value).__name__}", method=method)


def _as_structs(value: Any, method: str) -> list[dict]:
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value
    raise KeapMalformedResponse(f"expected an array of structs, got {type(value).__name__}", method=method)


class ContactService(RetryingClient):
    """Keap's ContactService, one Python method per API method, returning plain values.

    `url` defaults to KEAP_URL, else Keap's endpoint; `options` (ClientOptions) sets timeouts, retries and
    pacing. The `privateKey` parameter Keap still wants gets a placeholder: the key travels in a header.
    A call that may already have reached Keap is repeated only for methods in SAFE_TO_REPEAT.
    """

    content_type = "text/xml; charset=UTF-8"
    rest = False

    @classmethod
    def _locate(cls, url: str | None) -> str:
        return url or os.environ.get("KEAP_URL") or DEFAULT_URL

    def call(self, method: str, *params: Any) -> Any:
        """Call any API method (e.g. "APIEmailService.optOut") with params after the key; the decoded result.

        Methods not in SAFE_TO_REPEAT are not repeated once they may have reached Keap.
        """
        body = encode_call(method, (PRIVATE_KEY_PLACEHOLDER, *params))
        return self._with_retries(
            method, method in SAFE_TO_REPEAT, lambda: decode_response(self._send("POST", body, method).body, method)
        )

    def _on_contact(self, method: str, contact_id: int, name: str, value: int, shape: Callable[[Any, str], T]) -> T:
        """Call a method whose parameters are a contact's id and one other id; its result, checked by `shape`."""
        return shape(self.call(method, _check_id("contact_id", contact_id), _check_id(name, value)), method)

    # ---------------------------------------------------------------- ContactService, in the document's order

    def add(self, data: Mapping[str, Any]) -> int:
        """Create a contact (no duplicate check); its new Id. Never retried once it may have reached Keap."""
        method = "ContactService.add"
        return _as_int(self.call(method, _check_data("data", data)), method)

    def merge(self, contact_id: int, duplicate_contact_id: int) -> bool:
        """Merge `duplicate_contact_id` into `contact_id`."""
        return self._on_contact(
            "ContactService.merge", contact_id, "duplicate_contact_id", duplicate_contact_id, _as_bool
        )

    def add_to_campaign(self, contact_id: int, campaign_id: int) -> bool:
        """Start a legacy follow-up sequence for a contact."""
        return self._on_contact("ContactService.addToCampaign", contact_id, "campaign_id", campaign_id, _as_bool)

    def add_to_group(self, contact_id: int, group_id: int) -> bool:
        """Apply a tag (group) to a contact."""
        return self._on_contact("ContactService.addToGroup", contact_id, "group_id", group_id, _as_bool)

    def get_next_campaign_step(self, contact_id: int, follow_up_sequence_id: int) -> int:
        """The Id of the contact's next step in a follow-up sequence."""
        method = "ContactService.getNextCampaignStep"
        return self._on_contact(method, contact_id, "follow_up_sequence_id", follow_up_sequence_id, _as_int)

    def find_by_email(self, email: str, selected_fields: Sequence[str]) -> list[dict]:
        """Contacts whose Email, EmailAddress2 or EmailAddress3 is `email` (empty fields are absent)."""
        method = "ContactService.findByEmail"
        result = self.call(method, _check_text("email", email), _check_fields("selected_fields", selected_fields))
        return _as_structs(result, method)

    def load(self, contact_id: int, selected_fields: Sequence[str]) -> dict:
        """The selected fields of one contact (empty fields are absent)."""
        method = "ContactService.load"
        result = self.call(
            method, _check_id("contact_id", contact_id), _check_fields("selected_fields", selected_fields)
        )
        return _as_struct(result, method)

    def pause_campaign(self, contact_id: int, sequence_id: int) -> bool:
        """Pause a follow-up sequence for a contact."""
        return self._on_contact("ContactService.pauseCampaign", contact_id, "sequence_id", sequence_id, _as_bool)

    def remove_from_campaign(self, contact_id: int, follow_up_sequence_id: int) -> bool:
        """Take a contact out of a follow-up sequence."""
        method = "ContactService.removeFromCampaign"
        return self._on_contact(method, contact_id, "follow_up_sequence_id", follow_up_sequence_id, _as_bool)

    def remove_from_group(self, contact_id: int, tag_id: int) -> bool:
        """Remove a tag (group) from a contact."""
        return self._on_contact("ContactService.removeFromGroup", contact_id, "tag_id", tag_id, _as_bool)

    def resume_campaign_for_contact(self, contact_id: int, seq_id: int) -> bool:
        """Resume a paused follow-up sequence for a contact."""
        return self._on_contact("ContactService.resumeCampaignForContact", contact_id, "seq_id", seq_id, _as_bool)

    def reschedule_campaign_step(self, contact_ids: Iterable[int], sequence_step_id: int) -> int:
        """Run a sequence step now for these contacts. Not repeated once it may have reached Keap."""
        method = "ContactService.rescheduleCampaignStep"
        result = self.call(
            method, _check_ids("contact_ids", contact_ids), _check_id("sequence_step_id", sequence_step_id)
        )
        return _as_int(result, method)

    def run_action_sequence(self, contact_id: int, action_set_id: int) -> list[dict]:
        """Run an action set on a contact; one record per action, strings stripped of Keap's padding.

        Never retried once it may have reached Keap: the actions would run twice.
        """
        records = self._on_contact(
            "ContactService.runActionSequence", contact_id, "action_set_id", action_set_id, _as_structs
        )
        return [{k: v.strip() if isinstance(v, str) else v for k, v in record.items()} for record in records]

    def add_with_dup_check(self, data: Mapping[str, Any], dup_check_type: str) -> int:
        """Create a contact, or update the one matching by `dup_check_type`; the contact's Id."""
        method = "ContactService.addWithDupCheck"
        if dup_check_type not in DUP_CHECK_TYPES:
            raise KeapRequestError(f"dup_check_type must be one of {', '.join(DUP_CHECK_TYPES)}", method=method)
        return _as_int(self.call(method, _check_data("data", data), dup_check_type), method)

    def update(self, contact_id: int, data: Mapping[str, Any]) -> int:
        """Update fields of a contact; its Id."""
        method = "ContactService.update"
        result = self.call(method, _check_id("contact_id", contact_id), _check_data("data", data))
        return _as_int(result, method)
