"""Keap REST v2 client: the calls behind ContactService's methods, with the same auth, retries, pacing and errors."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from keap_relay.keap.defaults import DUP_CHECK_TYPES
from keap_relay.keap.errors import NOT_FOUND, ErrorKind, KeapError, KeapMalformedResponse, KeapRequestError
from keap_relay.keap.session import RetryingClient
from keap_relay.keap.v2_contact import ITEM_KEYS, merge_items, to_v2_contact

__all__ = [
    "DEFAULT_REST_URL",
    "REST_SAFE_TO_REPEAT",
    "RestClient",
    "outcome_done",
    "outcome_error",
    "rest_base_url",
    "tag_ids_of",
]

# The base URL of Keap's own generated v2 SDK; every path below is relative to it.
DEFAULT_REST_URL = "https://api.keap.com/crm"
PREFIX = "/rest/v2"

# XML-RPC endpoint path -> the path the REST API has on the same host: Keap serves both under /crm, so
# one KEAP_URL (Keap's or the emulator's XML-RPC endpoint) also locates the REST API.
_XMLRPC_PATHS: Mapping[str, str] = {
    "/crm/xmlrpc/v1": "/crm",
    "/crm/xmlrpc": "/crm",
    "/api/xmlrpc/v1": "/crm",
    "/api/xmlrpc": "/crm",
    "": "/crm",
}

# Operations whose repetition leaves Keap as one call would (see SAFE_TO_REPEAT in client.py): retried even
# when the first attempt may have been applied. A plain create would make a second contact and achieving a
# goal may start its flows twice: never repeated once they may have reached Keap.
REST_SAFE_TO_REPEAT = frozenset(
    {
        "rest.upsertContact",
        "rest.getContact",
        "rest.listContacts",
        "rest.updateContact",
        "rest.retrieveContactModel",
        "rest.applyTags",
        "rest.removeTags",
        "rest.addContactsToSequence",
        "rest.removeContactsFromSequence",
        "rest.updateEmailAddressStatus",
        "rest.getEmailAddressStatus",
        # reads: the operator CLI's listings (keap-relay routes check --live)
        "rest.listTags",
        "rest.listCampaigns",
        "rest.getCampaignSequences",
    }
)


def rest_base_url(keap_url: str | None) -> str:
    """The REST base (`https://host/crm`) for a KEAP_URL that names Keap's XML-RPC endpoint or the base itself."""
    if not keap_url:
        return DEFAULT_REST_URL
    parts = urlsplit(keap_url)
    path = parts.path.rstrip("/")
    path = _XMLRPC_PATHS.get(path, path)
    # The query (an OAuth `?access_token=`) belongs to XML-RPC URLs; REST takes the token in a header.
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


# Per-contact outcome of a many-contacts call -> the error it means for that contact (None: done).
# FAILED: this contact failed; the others may have succeeded. A contact the answer does not name was done
# (Keap lists what it did not do, and `removeTags` answers 204 without a body). A word not in this table is
# not a clear success: UNCLEAR_OUTCOME, so a batch retries that contact alone (routing/batch.py).
_OUTCOMES: Mapping[str, ErrorKind | None] = {
    "SUCCESS": None,
    "ALREADY_IN_SEQUENCE": None,
    "ALREADY_APPLIED": None,
    "CONTACT_DOES_NOT_EXIST": NOT_FOUND,
    "FAILED": ErrorKind("KeapContactFailed", transient=True),
}
UNCLEAR_OUTCOME = ErrorKind("KeapContactFailed", transient=True)


def outcome_done(outcome: str | None) -> bool:
    """Whether one contact's outcome of a many-contacts call clearly says it was done."""
    return _OUTCOMES.get(outcome or "SUCCESS", UNCLEAR_OUTCOME) is None


def outcome_error(operation: str, contact_id: int, outcome: str | None) -> KeapError | None:
    """The error for one contact's outcome of a many-contacts call, or None when it was done."""
    kind = _OUTCOMES.get(outcome or "SUCCESS", UNCLEAR_OUTCOME)
    return None if kind is None else KeapError(f"contact {contact_id}: {outcome}", method=operation, kind=kind)


# ---------------------------------------------------------------- argument checks (nothing sent yet)


def _id(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise KeapRequestError(f"{name} must be a positive Keap id (int)")
    return value


def _ids(name: str, values: object) -> list[int]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise KeapRequestError(f"{name} must be a list of ids")
    out = [_id(f"{name}[{i}]", v) for i, v in enumerate(values)]
    if not out:
        raise KeapRequestError(f"{name} must name at least one contact")
    return list(dict.fromkeys(out))


def _token(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise KeapRequestError(f"{name} must be a non-empty string")
    return value.strip()


def tag_ids_of(contact: Mapping[str, Any]) -> frozenset[int] | None:
    """The tag ids a v2 contact answer names (strings in v2) as ints; None when the answer leaves `tag_ids` out
    or it is not a list of ids, so that nothing is taken as held on an answer Keap did not give."""
    tags = contact.get("tag_ids")
    if not isinstance(tags, list):
        return None
    try:
        return frozenset(int(tag) for tag in tags)
    except (TypeError, ValueError):
        return None


# `*` is the filter's wildcard and `,` / `;` separate filter terms: none belongs in an address we look up.
_FILTER_UNSAFE = frozenset("*,;")


def _as_dict(value: Any, operation: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise KeapMalformedResponse(f"expected a JSON object, got {type(value).__name__}", method=operation)


class RestClient(RetryingClient):
    """Keap's REST v2 API for what keap-relay does, returning plain values; safe to share between threads.

    Auth, retries and pacing as ContactService (see ClientOptions), but a call that may already have reached
    Keap is repeated only for REST_SAFE_TO_REPEAT. HTTP status and Keap's JSON error body become KeapErrors.
    `url` defaults to KEAP_REST_URL, else to the REST base on KEAP_URL's host (see rest_base_url).
    """

    content_type = "application/json"
    rest = True

    def _start(self) -> None:
        self._custom_fields: dict[str, str] | None = None
        self._model_lock = threading.Lock()

    @classmethod
    def _locate(cls, url: str | None) -> str:
        return (url or os.environ.get("KEAP_REST_URL") or rest_base_url(os.environ.get("KEAP_URL"))).rstrip("/")

    @property
    def base_url(self) -> str:
        """The REST base, e.g. `https://api.keap.com/crm`."""
        return self.url

    # ---------------------------------------------------------------- the engine

    def request(
        self,
        verb: str,
        path: str,
        operation: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        """Send one call to `PREFIX + path` and return the decoded JSON (None for an empty answer).

        `operation` (e.g. "rest.applyTags") names the call in errors and logs and decides, through
        REST_SAFE_TO_REPEAT, whether it may be repeated once it may have reached Keap.
        """
        target = PREFIX + path
        pairs = {k: v for k, v in (query or {}).items() if v is not None}
        if pairs:
            target += "?" + urlencode(pairs, quote_via=quote, safe=",")
        payload = None if body is None else json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        safe = operation in REST_SAFE_TO_REPEAT
        return self._with_retries(operation, safe, lambda: self._exchange(verb, target, payload, operation))

    def _exchange(self, verb: str, target: str, payload: bytes | None, operation: str) -> Any:
        response = self._send(verb, payload, operation, path=target)
        if not response.body.strip():
            return None
        try:
            return json.loads(response.body)
        except ValueError:
            raise KeapMalformedResponse(
                f"HTTP {response.status} with a body that is not JSON", method=operation
            ) from None

    # ---------------------------------------------------------------- the contact model

    def custom_field_ids(self, refresh: bool = False) -> dict[str, str]:
        """Custom field name as XML-RPC spells it (`_LeadSource`) -> v2 id, from the contact model (cached)."""
        with self._model_lock:
            if self._custom_fields is None or refresh:
                model = _as_dict(
                    self.request("GET", "/contacts/model", "rest.retrieveContactModel"), "rest.retrieveContactModel"
                )
                ids: dict[str, str] = {}
                for meta in model.get("custom_fields") or []:
                    if isinstance(meta, dict) and meta.get("id") is not None:
                        # field_name is the database name XML-RPC prefixes with `_`; the label is the fallback.
                        for name in (meta.get("label"), meta.get("field_name")):
                            if name:
                                ids["_" + str(name).lstrip("_")] = str(meta["id"])
                self._custom_fields = ids
            return dict(self._custom_fields)

    def _v2_body(self, data: Mapping[str, Any], keep_empty: bool = False) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise KeapRequestError("data must be a dict of Keap field name to value")
        ids = self.custom_field_ids() if any(name.startswith("_") for name in data) else {}
        if any(name.startswith("_") and name not in ids for name in data):
            ids = self.custom_field_ids(refresh=True)  # a field created since the model was read
        return to_v2_contact(data, ids, keep_empty=keep_empty)

    # ---------------------------------------------------------------- contacts

    def upsert_contact(self, data: Mapping[str, Any], dup_check_type: str) -> int:
        """Create a contact, or update the one matching by `dup_check_type` (ContactService.addWithDupCheck)."""
        return self._contact_id(self.upsert_contact_answer(data, dup_check_type), "rest.upsertContact")

    def upsert_contact_answer(
        self, data: Mapping[str, Any], dup_check_type: str, fields: Sequence[str] = ("id",)
    ) -> dict[str, Any]:
        """upsert_contact, answering the contact's properties named in `fields` (its id always), e.g. `tag_ids`:
        the tags the contact holds, read in the same call instead of a GET of its own."""
        if dup_check_type not in DUP_CHECK_TYPES:
            raise KeapRequestError(
                f"dup_check_type must be one of {', '.join(DUP_CHECK_TYPES)}", method="rest.upsertContact"
            )
        body = self._v2_body(data)
        result = self.request(
            "POST",
            "/contacts",
            "rest.upsertContact",
            body=body,
            query={"duplicate_option": dup_check_type, "fields": ",".join(dict.fromkeys(("id", *fields)))},
        )
        answer = _as_dict(result, "rest.upsertContact")
        self._contact_id(answer, "rest.upsertContact")  # an answer without an id is malformed, whatever else it has
        return answer

    def create_contact(self, data: Mapping[str, Any]) -> int:
        """Create a contact without a duplicate check (ContactService.add); never repeated once it may have landed."""
        result = self.request(
            "POST", "/contacts", "rest.createContact", body=self._v2_body(data), query={"fields": "id"}
        )
        return self._contact_id(result, "rest.createContact")

    def get_contact(self, contact_id: int, fields: Sequence[str] = ()) -> dict[str, Any]:
        """One contact in the v2 model; `fields` picks properties (e.g. `tag_ids`, which is not sent by default)."""
        query = {"fields": ",".join(fields)} if fields else None
        result = self.request("GET", f"/contacts/{_id('contact_id', contact_id)}", "rest.getContact", query=query)
        return _as_dict(result, "rest.getContact")

    def update_contact(self, contact_id: int, data: Mapping[str, Any]) -> int:
        """Change the given XML-RPC fields of a contact and nothing else (ContactService.update); its id.

        Array properties (emails, phones, addresses, custom fields) are read first and sent back whole with
        the changes, because v2 drops the items an update does not list.
        """
        contact_id = _id("contact_id", contact_id)
        if not data:
            raise KeapRequestError("data must name at least one field", method="rest.updateContact")
        body = self._v2_body(data, keep_empty=True)
        arrays = [prop for prop in ITEM_KEYS if prop in body]
        if arrays:
            current = self.get_contact(contact_id, arrays)
            for prop in arrays:
                body[prop] = merge_items(prop, current.get(prop) or [], body[prop])
        self.request(
            "PATCH",
            f"/contacts/{contact_id}",
            "rest.updateContact",
            body=body,
            query={"update_mask": ",".join(sorted(body)), "fields": "id"},
        )
        return contact_id

    def find_contact_ids(self, email: str) -> list[int]:
        """Ids of the contacts having `email` (ContactService.findByEmail), ascending."""
        email = _token("email", email)
        if _FILTER_UNSAFE & set(email):
            raise KeapRequestError(
                "email must not contain *, , or ; (they are filter syntax)", method="rest.listContacts"
            )
        found: list[int] = []
        token: str | None = None
        for _ in range(100):  # a bound: one address never has 100 pages of contacts
            page = _as_dict(
                self.request(
                    "GET",
                    "/contacts",
                    "rest.listContacts",
                    query={
                        "filter": f"email=={email}",
                        "fields": "id",
                        "page_size": max(1, min(1000, self.options.page_size)),
                        "page_token": token,
                    },
                ),
                "rest.listContacts",
            )
            found.extend(self._contact_id(c, "rest.listContacts") for c in page.get("contacts") or [])
            token = page.get("next_page_token") or None
            if not token:
                break
        return sorted(set(found))

    @staticmethod
    def _contact_id(contact: Any, operation: str) -> int:
        try:
            return int(_as_dict(contact, operation)["id"])
        except (KeyError, TypeError, ValueError):
            raise KeapMalformedResponse("the answer carries no contact id", method=operation) from None

    # ---------------------------------------------------------------- tags, sequences, goals (many contacts a call)

    @staticmethod
    def _body_ids(contact_ids: Iterable[int]) -> dict[str, list[str]]:
        return {"contact_ids": [str(i) for i in _ids("contact_ids", contact_ids)]}

    @staticmethod
    def _outcomes(result: Any, key: str, contact_ids: Iterable[int], operation: str) -> dict[int, str]:
        reported = (result or {}).get(key) if isinstance(result, dict) else None
        if reported is not None and not isinstance(reported, dict):
            raise KeapMalformedResponse(f"`{key}` is not an object", method=operation)
        reported = {str(k): str(v) for k, v in (reported or {}).items()}
        # A contact the answer does not mention was not refused: Keap lists failures, and 2xx means done.
        return {cid: reported.get(str(cid), "SUCCESS") for cid in _ids("contact_ids", contact_ids)}

    def apply_tag(self, tag_id: int, contact_ids: Iterable[int]) -> dict[int, str]:
        """Apply a tag to many contacts in one call; contact id -> outcome (`SUCCESS`, ...)."""
        ids = list(contact_ids)
        result = self.request(
            "POST", f"/tags/{_id('tag_id', tag_id)}/contacts:applyTags", "rest.applyTags", body=self._body_ids(ids)
        )
        return self._outcomes(result, "results", ids, "rest.applyTags")

    def remove_tag(self, tag_id: int, contact_ids: Iterable[int]) -> dict[int, str]:
        """Remove a tag from many contacts in one call; contact id -> outcome."""
        ids = list(contact_ids)
        result = self.request(
            "POST", f"/tags/{_id('tag_id', tag_id)}/contacts:removeTags", "rest.removeTags", body=self._body_ids(ids)
        )
        return self._outcomes(result, "results", ids, "rest.removeTags")

    def add_to_sequence(self, campaign_id: int, sequence_id: int, contact_ids: Iterable[int]) -> dict[int, str]:
        """Start a campaign's sequence for many contacts; contact id -> SUCCESS | ALREADY_IN_SEQUENCE | ..."""
        ids = list(contact_ids)
        path = f"/campaigns/{_id('campaign_id', campaign_id)}/sequences/{_id('sequence_id', sequence_id)}:addContacts"
        result = self.request("POST", path, "rest.addContactsToSequence", body=self._body_ids(ids))
        return self._outcomes(result, "add_to_sequence_results", ids, "rest.addContactsToSequence")

    def remove_from_sequence(self, campaign_id: int, sequence_id: int, contact_ids: Iterable[int]) -> dict[int, str]:
        """Take many contacts out of a campaign's sequence; contact id -> outcome."""
        ids = list(contact_ids)
        path = (
            f"/campaigns/{_id('campaign_id', campaign_id)}/sequences/{_id('sequence_id', sequence_id)}:removeContacts"
        )
        result = self.request("POST", path, "rest.removeContactsFromSequence", body=self._body_ids(ids))
        return self._outcomes(result, "remove_from_sequence_results", ids, "rest.removeContactsFromSequence")

    def achieve_goal(self, contact_id: int, integration: str, call_name: str) -> list[dict[str, Any]]:
        """Achieve an automation's API goal for a contact; one result per goal reached.

        Never repeated once it may have reached Keap: the flows it starts would start twice.
        """
        body = {
            "contact_id": _id("contact_id", contact_id),
            "integration": _token("integration", integration),
            "call_name": _token("call_name", call_name),
        }
        result = self.request("POST", "/automations/goals/achieve", "rest.achieveGoal", body=body)
        results = (result or {}).get("results") if isinstance(result, dict) else None
        if results is not None and not (isinstance(results, list) and all(isinstance(r, dict) for r in results)):
            raise KeapMalformedResponse("`results` is not a list of objects", method="rest.achieveGoal")
        return list(results or [])

    # ---------------------------------------------------------------- email addresses

    def set_email_opt_in(self, email: str, opted_in: bool, reason: str) -> dict[str, Any]:
        """Opt an email address in or out of marketing; its status afterwards."""
        body = {"reason": _token("reason", reason), "opted_in": bool(opted_in)}
        path = f"/emailAddresses/{quote(_token('email', email), safe='')}/status"
        return _as_dict(
            self.request("PATCH", path, "rest.updateEmailAddressStatus", body=body), "rest.updateEmailAddressStatus"
        )

    def opt_out(self, email: str, reason: str) -> dict[str, Any]:
        """Opt an email address out of marketing (APIEmailService.optOut); its status afterwards."""
        return self.set_email_opt_in(email, False, reason)

    def email_status(self, email: str) -> dict[str, Any]:
        """An email address's opt-in status (`status`, `opted_in`)."""
        path = f"/emailAddresses/{quote(_token('email', email), safe='')}/status"
        return _as_dict(self.request("GET", path, "rest.getEmailAddressStatus"), "rest.getEmailAddressStatus")
