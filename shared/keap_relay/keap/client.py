"""Keap ContactService over XML-RPC: one method per API method, with auth, retries and pacing."""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from keap_relay.keap.codec import decode_response, encode_call
from keap_relay.keap.defaults import DEFAULT_URL, DUP_CHECK_TYPES
from keap_relay.keap.errors import (
    KeapMalformedResponse,
    KeapRequestError,
    error_from_http,
)
from keap_relay.keap.session import RetryingClient, _mask_url
from keap_relay.keap.throttle import RateInfo, RateLimiter

__all__ = ["DEFAULT_URL", "DUP_CHECK_TYPES", "SAFE_TO_REPEAT", "ContactService"]


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
    }
)

_log = logging.getLogger("keap_relay.keap")


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


# ---------------------------------------------------------------- configuration helpers


class ContactService(RetryingClient):
    """Keap's ContactService, one Python method per API method, returning plain values.

    Auth as Keap works today: a PAT/SAK (`api_key`, default `KEAP_API_KEY`) goes in `X-Keap-API-Key`;
    an OAuth token (`access_token`) goes in `Authorization: Bearer`; the `privateKey` parameter gets a
    placeholder. Transient failures are retried with exponential backoff and full jitter, but a call
    that may already have reached Keap is only repeated for methods in SAFE_TO_REPEAT. A 429 is waited
    out when Keap says it is short (≤ max_retry_wait), otherwise raised at once for the caller to defer.
    One instance is safe to share between threads.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        access_token: str | None = None,
        connect_timeout: float = 3.05,
        read_timeout: float = 20.0,
        max_attempts: int = 4,
        backoff_base: float = 0.25,
        backoff_cap: float = 8.0,
        max_calls_per_second: float | None = None,
        max_retry_wait: float = 2.0,
        pool_size: int = 8,
        rate_limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url or os.environ.get("KEAP_URL") or DEFAULT_URL
        self._setup(
            api_key=api_key,
            access_token=access_token,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            max_calls_per_second=max_calls_per_second,
            max_retry_wait=max_retry_wait,
            rate_limiter=rate_limiter,
            sleep=sleep,
            rand=rand,
            monotonic=monotonic,
            url=self.url,
            content_type="text/xml; charset=UTF-8",
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            pool_size=pool_size,
        )

    def __repr__(self) -> str:
        return f"ContactService(url={_mask_url(self.url)!r}, auth={self.auth!r})"

    # ---------------------------------------------------------------- the engine

    def call(self, method: str, *params: Any) -> Any:
        """Call any API method (e.g. "APIEmailService.optOut") with params after the key; the decoded result.

        Methods not in SAFE_TO_REPEAT are not repeated once they may have reached Keap.
        """
        body = encode_call(method, (PRIVATE_KEY_PLACEHOLDER, *params))
        return self._with_retries(method, method in SAFE_TO_REPEAT, lambda: self._exchange(method, body))

    def _exchange(self, method: str, body: bytes) -> Any:
        response = self._transport.post(body, method=method)
        info = RateInfo.from_headers(response.headers)
        if info is not None:
            self.last_rate_info = info
        if response.status != 200:
            raise error_from_http(
                response.status,
                response.body,
                method=method,
                retry_after=info.retry_after(info.observed_at) if info is not None else None,
                rate_info=info,
            )
        return decode_response(response.body, method)

    # ---------------------------------------------------------------- ContactService, in the document's order

    def add(self, data: Mapping[str, Any]) -> int:
        """Create a contact (no duplicate check); its new Id. Never retried once it may have reached Keap."""
        method = "ContactService.add"
        return _as_int(self.call(method, _check_data("data", data)), method)

    def merge(self, contact_id: int, duplicate_contact_id: int) -> bool:
        """Merge `duplicate_contact_id` into `contact_id`."""
        method = "ContactService.merge"
        result = self.call(
            method,
            _check_id("contact_id", contact_id),
            _check_id("duplicate_contact_id", duplicate_contact_id),
        )
        return _as_bool(result, method)

    def add_to_campaign(self, contact_id: int, campaign_id: int) -> bool:
        """Start a legacy follow-up sequence for a contact."""
        method = "ContactService.addToCampaign"
        result = self.call(method, _check_id("contact_id", contact_id), _check_id("campaign_id", campaign_id))
        return _as_bool(result, method)

    def add_to_group(self, contact_id: int, group_id: int) -> bool:
        """Apply a tag (group) to a contact."""
        method = "ContactService.addToGroup"
        result = self.call(method, _check_id("contact_id", contact_id), _check_id("group_id", group_id))
        return _as_bool(result, method)

    def get_next_campaign_step(self, contact_id: int, follow_up_sequence_id: int) -> int:
        """The Id of the contact's next step in a follow-up sequence."""
        method = "ContactService.getNextCampaignStep"
        result = self.call(
            method,
            _check_id("contact_id", contact_id),
            _check_id("follow_up_sequence_id", follow_up_sequence_id),
        )
        return _as_int(result, method)

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
        method = "ContactService.pauseCampaign"
        result = self.call(method, _check_id("contact_id", contact_id), _check_id("sequence_id", sequence_id))
        return _as_bool(result, method)

    def remove_from_campaign(self, contact_id: int, follow_up_sequence_id: int) -> bool:
        """Take a contact out of a follow-up sequence."""
        method = "ContactService.removeFromCampaign"
        result = self.call(
            method,
            _check_id("contact_id", contact_id),
            _check_id("follow_up_sequence_id", follow_up_sequence_id),
        )
        return _as_bool(result, method)

    def remove_from_group(self, contact_id: int, tag_id: int) -> bool:
        """Remove a tag (group) from a contact."""
        method = "ContactService.removeFromGroup"
        result = self.call(method, _check_id("contact_id", contact_id), _check_id("tag_id", tag_id))
        return _as_bool(result, method)

    def resume_campaign_for_contact(self, contact_id: int, seq_id: int) -> bool:
        """Resume a paused follow-up sequence for a contact."""
        method = "ContactService.resumeCampaignForContact"
        result = self.call(method, _check_id("contact_id", contact_id), _check_id("seq_id", seq_id))
        return _as_bool(result, method)

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
        method = "ContactService.runActionSequence"
        result = self.call(method, _check_id("contact_id", contact_id), _check_id("action_set_id", action_set_id))
        return [
            {k: v.strip() if isinstance(v, str) else v for k, v in record.items()}
            for record in _as_structs(result, method)
        ]

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
