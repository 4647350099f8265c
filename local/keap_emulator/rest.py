"""Keap's REST v2 surface over the emulator's model: the paths keap-relay uses, JSON in and out, Keap-style errors.

Paths are those of Keap's generated SDK (`keap-core-v2-sdk`, base `https://api.keap.com/crm`), so the SDK
and the project's client both reach them under /crm/rest/v2. Contacts written here are the model's
contacts: an XML-RPC client reads them as ContactService fields, and the other way round.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qs, unquote

from keap_emulator import listings
from keap_emulator.exceptions import KeapFault
from keap_emulator.faults import contact_faults
from keap_emulator.model import DUP_CHECK_TYPES, ContactServiceModel

REST_PREFIX = "/crm/rest/v2"
JSON_TYPE = "application/json"

# ---------------------------------------------------------------------------------------------- errors

# HTTP status -> the `status` word of Keap's JSON error body ({code, message, status, details}; the SDK's
# Error model). The words follow Google's API conventions, which v2's `:verb` paths also follow (a choice:
# no captured v2 error body is in the facts file).
STATUS_WORDS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "FAILED_PRECONDITION",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}

# A model fault (XML-RPC faultCode) -> the HTTP status REST answers instead.
FAULT_STATUS: dict[int, int] = {0: 400, 5: 404, 6: 404, 8: 400, 10: 400, 11: 400, 12: 400}


def error_body(status: int, message: str) -> bytes:
    """Keap's JSON error body for an HTTP status."""
    doc = {"code": status, "message": message, "status": STATUS_WORDS.get(status, "UNKNOWN"), "details": []}
    return json.dumps(doc, separators=(",", ":")).encode()


class RestError(Exception):
    """An answer other than success: HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------------------------------------- field mapping

# v2 plain property -> Contact field.
SCALARS: dict[str, str] = {
    "given_name": "FirstName",
    "family_name": "LastName",
    "middle_name": "MiddleName",
    "preferred_name": "Nickname",
    "prefix": "Title",
    "suffix": "Suffix",
    "job_title": "JobTitle",
    "website": "Website",
    "spouse_name": "SpouseName",
    "contact_type": "ContactType",
    "time_zone": "TimeZone",
    "preferred_locale": "Language",
    "referral_code": "ReferralCode",
    "assistant_name": "AssistantName",
    "assistant_phone": "AssistantPhone",
    "billing_information": "BillingInformation",
    "birth_date": "Birthday",
    "anniversary_date": "Anniversary",
    "owner_id": "OwnerID",
    "leadsource_id": "LeadSourceId",
}


def _address(n: str, street: str) -> dict[str, str]:
    return {
        "line1": f"{street}1",
        "line2": f"{street}2",
        "locality": f"City{n}",
        "region_code": f"State{n}",
        "postal_code": f"PostalCode{n}",
        "zip_four": f"ZipFour{n or 1}",
        "country_code": f"Country{n}",
    }


# v2 array property -> slot (`field`) -> item key -> Contact field.
ARRAYS: dict[str, dict[str, dict[str, str]]] = {
    "email_addresses": {
        "EMAIL1": {"email": "Email"},
        "EMAIL2": {"email": "EmailAddress2"},
        "EMAIL3": {"email": "EmailAddress3"},
    },
    "phone_numbers": {
        f"PHONE{n}": {"number": f"Phone{n}", "extension": f"Phone{n}Ext", "type": f"Phone{n}Type"} for n in range(1, 6)
    },
    "addresses": {
        "BILLING": _address("", "StreetAddress"),
        "SHIPPING": _address("2", "Address2Street"),
        "OTHER": _address("3", "Address3Street"),
    },
}
# Long-name address keys a request may use where the code is missing (Keap calls them deprecated).
_ADDRESS_FALLBACKS = {"region": "region_code", "country": "country_code", "zip_code": "postal_code"}

# Properties a contact answer carries when `fields` does not choose (tag_ids only on request, as in v2).
DEFAULT_FIELDS = ("id", *SCALARS, "company", *ARRAYS, "custom_fields", "create_time", "update_time")


def _string(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise RestError(400, f"{where} must be a string")
    return value


def _render_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


# ---------------------------------------------------------------------------------------------- the surface


@dataclass(frozen=True)
class RestResult:
    """A rendered answer and what the call did."""

    status: int
    body: bytes
    applied: bool


@dataclass(frozen=True)
class Route:
    verb: str
    pattern: re.Pattern[str]
    operation: str  # the name in the call log and FaultPlan.methods, e.g. "rest.applyTags"
    handler: Callable[..., tuple[int, Any]]


class RestResponses:
    """Turns REST v2 requests into model calls and renders the answers."""

    def __init__(self, model: ContactServiceModel) -> None:
        self.model = model
        # Properties left out of every contact answer even when `fields` asks for them: Keap's answers may omit
        # an optional property (tag_ids), and a client must not read an omission as "none" (tests set it).
        self.left_out: set[str] = set()
        self.routes = [
            Route(verb, re.compile(f"^{REST_PREFIX}{pattern}$"), operation, getattr(self, handler))
            for verb, pattern, operation, handler in _ROUTES
        ]

    def operation(self, verb: str, path: str) -> str | None:
        """The operation a request names, or None when no route matches its path and verb."""
        for route in self.routes:
            if route.verb == verb and route.pattern.match(path):
                return route.operation
        return None

    def dispatch(self, verb: str, path: str, query: str, body: bytes) -> RestResult:
        """Answer one request: the operation's JSON, or Keap's JSON error."""
        matched = [route for route in self.routes if route.pattern.match(path)]
        route = next((r for r in matched if r.verb == verb), None)
        try:
            if route is None:
                if matched:
                    raise RestError(405, f"{verb} is not allowed on {path}")
                raise RestError(404, f"no such resource: {path}")
            params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
            args = {k: unquote(v) for k, v in route.pattern.match(path).groupdict().items()}  # type: ignore[union-attr]
            status, doc = route.handler(params, _json_body(body, verb), **args)
        except RestError as err:
            return RestResult(err.status, error_body(err.status, err.message), applied=False)
        except KeapFault as fault:
            status = FAULT_STATUS.get(fault.code, 500)
            return RestResult(status, error_body(status, fault.string), applied=False)
        payload = b"" if doc is None else json.dumps(doc, separators=(",", ":"), default=str).encode()
        return RestResult(status, payload, applied=True)

    # ------------------------------------------------------------------ contacts

    def _fields(self, body: Mapping[str, Any], *, replace: bool, mask: set[str] | None = None) -> dict[str, Any]:
        """Contact fields for a v2 body. With `replace` (an update), array properties replace what is stored."""
        out: dict[str, Any] = {}
        for prop, field_name in SCALARS.items():
            if prop in body and (mask is None or prop in mask):
                out[field_name] = _string(prop, body[prop]) if body[prop] is not None else ""
        if "company" in body and (mask is None or "company" in mask):
            company = body["company"] or {}
            if not isinstance(company, dict):
                raise RestError(400, "company must be an object")
            out["Company"] = _string("company.company_name", company.get("company_name") or "")
        for prop, slots in ARRAYS.items():
            if mask is not None and prop not in mask:
                continue
            if prop not in body:
                if mask is not None:  # named in the mask but absent: emptied
                    out.update({name: "" for item in slots.values() for name in item.values()})
                continue
            items = body[prop] or []
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise RestError(400, f"{prop} must be a list of objects")
            if replace:
                out.update({name: "" for item in slots.values() for name in item.values()})
            for i, item in enumerate(items):
                slot = item.get("field")
                if slot not in slots:
                    raise RestError(400, f"{prop}[{i}].field must be one of {', '.join(slots)}")
                for key, value in item.items():
                    if prop == "addresses" and key in _ADDRESS_FALLBACKS:
                        if _ADDRESS_FALLBACKS[key] in item:
                            continue  # the code wins over its long name
                        key = _ADDRESS_FALLBACKS[key]
                    if key in slots[slot] and value is not None:
                        out[slots[slot][key]] = _string(f"{prop}[{i}].{key}", value)
            if prop == "addresses" and any(a.get("region_code") and not a.get("country_code") for a in items):
                raise RestError(400, "country_code is required when region_code is given")
        if "custom_fields" in body and (mask is None or "custom_fields" in mask):
            by_id = {cid: name for name, cid in self.model.world.custom_field_ids.items()}
            items = body["custom_fields"] or []
            if not isinstance(items, list):
                raise RestError(400, "custom_fields must be a list of {id, content}")
            if replace:
                out.update(dict.fromkeys(by_id.values(), ""))
            for i, item in enumerate(items):
                name = by_id.get(str(item.get("id"))) if isinstance(item, dict) else None
                if name is None:
                    raise RestError(400, f"custom_fields[{i}].id is not a custom field of the contact model")
                content = item.get("content")
                out[name] = "" if content is None else content
        return out

    def _render(self, contact_id: int, fields: str | None) -> dict[str, Any]:
        record = self.model.get_contact(contact_id)
        if record is None:
            raise RestError(404, f"Contact {contact_id} not found")
        chosen = set(DEFAULT_FIELDS) if not fields else {f.strip() for f in fields.split(",") if f.strip()} | {"id"}
        doc: dict[str, Any] = {"id": str(contact_id)}
        for prop, field_name in SCALARS.items():
            if record.get(field_name) not in (None, ""):
                doc[prop] = str(_render_value(record[field_name]))
        if record.get("Company"):
            doc["company"] = {"company_name": record["Company"]}
        for prop, slots in ARRAYS.items():
            items = []
            for slot, keys in slots.items():
                item = {key: str(record[name]) for key, name in keys.items() if record.get(name) not in (None, "")}
                if item:
                    if prop == "email_addresses":
                        status = self.model.email_status(item["email"]) or {}
                        item["email_opt_status"] = status.get("status")
                        item["is_opt_in"] = bool(status.get("opted_in"))
                    items.append({**item, "field": slot})
            doc[prop] = items
        doc["custom_fields"] = [
            {"id": cid, "content": _render_value(record[name])}
            for name, cid in self.model.world.custom_field_ids.items()
            if record.get(name) not in (None, "")
        ]
        doc["tag_ids"] = [t for t in (record.get("Groups") or "").split(",") if t]
        doc["create_time"] = _render_value(record.get("DateCreated"))
        doc["update_time"] = _render_value(record.get("LastUpdated"))
        return {k: v for k, v in doc.items() if k in chosen and k not in self.left_out}

    def create_contact(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        body = _object(body)
        if not any(body.get(prop) for prop in ARRAYS):
            raise RestError(
                400, "Contact must contain at least one item in email_addresses, phone_numbers, or addresses"
            )
        fields = {k: v for k, v in self._fields(body, replace=False).items() if v != ""}
        option = query.get("duplicate_option")
        if option:
            if option not in DUP_CHECK_TYPES:
                raise RestError(400, f"duplicate_option must be one of {', '.join(DUP_CHECK_TYPES)}")
            # On a match the sent properties are written and the rest kept, as addWithDupCheck does
            # (UNVERIFIED whether v2 clears array items the request leaves out here).
            contact_id, created = self.model.upsert(fields, option)
        else:
            contact_id, created = self.model.add(fields), True
        return (201 if created else 200), self._render(contact_id, query.get("fields"))

    def list_contacts(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        wanted = _filter(query, "email", "email==...")
        if wanted is None:
            ids = self.model.contact_ids()
        else:
            prefix = wanted.endswith("*")
            ids = self.model.find_ids_by_email(wanted.rstrip("*"), prefix=prefix) if wanted.rstrip("*") else []
        page, doc = _page(ids, query)
        doc["contacts"] = [self._render(cid, query.get("fields")) for cid in page]
        return 200, doc

    def contact_model(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        types = {"string": "TEXT", "int": "WHOLE_NUMBER", "double": "DECIMAL_NUMBER", "date": "DATE"}
        custom = [
            {
                "id": cid,
                "label": self.model.world.custom_field_labels[name],
                "field_name": name[1:],
                "field_type": types[self.model.world.custom_fields[name]],
                "record_type": "CONTACT",
                "options": [],
            }
            for name, cid in self.model.world.custom_field_ids.items()
        ]
        return 200, {"custom_fields": custom, "optional_properties": ["tag_ids"]}

    def get_contact(self, query: dict[str, str], body: Any, contact_id: str) -> tuple[int, Any]:
        return 200, self._render(_int_id(contact_id, "contact"), query.get("fields"))

    def update_contact(self, query: dict[str, str], body: Any, contact_id: str) -> tuple[int, Any]:
        cid = _int_id(contact_id, "contact")
        if self.model.get_contact(cid) is None:
            raise RestError(404, f"Contact {cid} not found")
        mask_text = query.get("update_mask")
        mask = {m.strip() for m in mask_text.split(",") if m.strip()} if mask_text else None
        fields = self._fields(_object(body), replace=True, mask=mask)
        if fields:
            self.model.update(cid, fields)
        return 200, self._render(cid, query.get("fields"))

    # ------------------------------------------------------------------ listings (what the app holds)

    def list_tags(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        wanted = _filter(query, "tag_ids", "tag_ids==1,2,3")
        try:
            ids = None if wanted is None else {int(v) for v in wanted.split(",") if v.strip()}
        except ValueError:
            raise RestError(400, "tag_ids must be a comma list of ids") from None
        page, doc = _page(listings.rest_tags(self.model.world, ids), query)
        return 200, {"tags": page, **doc}

    def list_campaigns(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        page, doc = _page(listings.rest_campaigns(self.model.world), query)
        return 200, {"campaigns": page, **doc}

    def _campaign(self, campaign_id: str) -> int:
        ident = _int_id(campaign_id, "campaign")
        if ident not in self.model.world.campaigns:
            raise RestError(404, f"Campaign {ident} not found")
        return ident

    def campaign_sequences(self, query: dict[str, str], body: Any, campaign_id: str) -> tuple[int, Any]:
        ident = self._campaign(campaign_id)
        page, doc = _page(listings.rest_sequences(self.model.world, ident), query)
        return 200, {"sequences": page, **doc, "campaign_id": str(ident)}

    def campaign_goals(self, query: dict[str, str], body: Any, campaign_id: str) -> tuple[int, Any]:
        ident = self._campaign(campaign_id)
        page, doc = _page(listings.rest_goals(self.model.world, ident), query)
        return 200, {"goals": page, **doc, "campaign_id": str(ident)}

    # ------------------------------------------------------------------ tags, sequences, goals

    def _many(self, contact_ids: list[int], change: Callable[[list[int]], dict[int, str]]) -> dict[str, str] | None:
        """One many-contacts call: per-contact faults first (a status refuses it all; an outcome word replaces a
        contact's own), then the change for the other contacts; contact id -> outcome, None when all were done
        without a fault (removeTags answers 204 then)."""
        status, replaced = contact_faults(self.model).decide(contact_ids)
        if status is not None:
            raise RestError(status, "one of the contacts cannot be changed")
        changed = [cid for cid in contact_ids if cid not in replaced or replaced[cid].applied]
        results = change(changed) if changed else {}
        results.update({cid: str(fault.outcome) for cid, fault in replaced.items()})
        return {str(cid): results[cid] for cid in contact_ids} if replaced or results else None

    def apply_tags(self, query: dict[str, str], body: Any, tag_id: str) -> tuple[int, Any]:
        tag = _int_id(tag_id, "tag")
        results = self._many(_contact_ids(body), lambda ids: self.model.apply_tag_many(tag, ids, "rest.applyTags"))
        return 200, {"results": results or {}}

    def remove_tags(self, query: dict[str, str], body: Any, tag_id: str) -> tuple[int, Any]:
        tag = _int_id(tag_id, "tag")

        def remove(ids: list[int]) -> dict[int, str]:
            self.model.remove_tag_many(tag, ids, "rest.removeTags")
            return {}

        results = self._many(_contact_ids(body), remove)
        return (200, {"results": results}) if results else (204, None)

    def add_to_sequence(self, query: dict[str, str], body: Any, campaign_id: str, sequence_id: str) -> tuple[int, Any]:
        campaign, sequence = _int_id(campaign_id, "campaign"), _int_id(sequence_id, "sequence")
        results = self._many(
            _contact_ids(body),
            lambda ids: self.model.start_sequence_many(campaign, sequence, ids, "rest.addContactsToSequence"),
        )
        return 200, {"add_to_sequence_results": results or {}}

    def remove_from_sequence(
        self, query: dict[str, str], body: Any, campaign_id: str, sequence_id: str
    ) -> tuple[int, Any]:
        campaign, sequence = _int_id(campaign_id, "campaign"), _int_id(sequence_id, "sequence")
        results = self._many(
            _contact_ids(body),
            lambda ids: self.model.stop_sequence_many(campaign, sequence, ids, "rest.removeContactsFromSequence"),
        )
        return 200, {"remove_from_sequence_results": results or {}}

    def achieve_goal(self, query: dict[str, str], body: Any) -> tuple[int, Any]:
        body = _object(body)
        contact_id = body.get("contact_id")
        if not isinstance(contact_id, int) or isinstance(contact_id, bool):
            raise RestError(400, "contact_id must be an integer")
        integration, call_name = body.get("integration"), body.get("call_name")
        if not (isinstance(integration, str) and integration and isinstance(call_name, str) and call_name):
            raise RestError(400, "give integration and call_name (automation_id/goal_id is not emulated)")
        if self.model.get_contact(contact_id) is None:
            raise RestError(404, f"Contact {contact_id} not found")
        results = self.model.achieve_goal(integration, call_name, contact_id, via="rest.achieveGoal")
        return 200, {"results": results}

    # ------------------------------------------------------------------ email addresses

    def _status_doc(self, email: str) -> dict[str, Any]:
        status = self.model.email_status(email)
        if status is None:
            raise RestError(404, f"Email address {email} not found")
        doc = {
            "email": status["email"],
            "opted_in": status["opted_in"],
            "status": status["status"],
            "create_time": status["created_at"] or datetime.fromtimestamp(0).isoformat(),
        }
        return doc

    def update_email_status(self, query: dict[str, str], body: Any, email: str) -> tuple[int, Any]:
        body = _object(body)
        reason, opted_in = body.get("reason"), body.get("opted_in")
        if not isinstance(reason, str) or not isinstance(opted_in, bool):
            raise RestError(400, "reason (string) and opted_in (boolean) are required")
        if self.model.set_email_opt_in(email, opted_in, reason, "rest.updateEmailAddressStatus") is None:
            raise RestError(404, f"Email address {email} not found")
        return 200, self._status_doc(email)

    def get_email_status(self, query: dict[str, str], body: Any, email: str) -> tuple[int, Any]:
        return 200, self._status_doc(email)


# (verb, path pattern under REST_PREFIX, operation, handler method). `:verb` suffixes are literal.
_ROUTES: tuple[tuple[str, str, str, str], ...] = (
    ("POST", "/contacts", "rest.createContact", "create_contact"),
    ("GET", "/contacts", "rest.listContacts", "list_contacts"),
    ("GET", "/contacts/model", "rest.retrieveContactModel", "contact_model"),
    ("GET", r"/contacts/(?P<contact_id>[^/:]+)", "rest.getContact", "get_contact"),
    ("PATCH", r"/contacts/(?P<contact_id>[^/:]+)", "rest.updateContact", "update_contact"),
    ("GET", "/tags", "rest.listTags", "list_tags"),
    ("GET", "/campaigns", "rest.listCampaigns", "list_campaigns"),
    ("GET", r"/campaigns/(?P<campaign_id>[^/:]+)/sequences", "rest.getCampaignSequences", "campaign_sequences"),
    ("GET", r"/campaigns/(?P<campaign_id>[^/:]+)/goals", "rest.getCampaignGoals", "campaign_goals"),
    ("POST", r"/tags/(?P<tag_id>[^/:]+)/contacts:applyTags", "rest.applyTags", "apply_tags"),
    ("POST", r"/tags/(?P<tag_id>[^/:]+)/contacts:removeTags", "rest.removeTags", "remove_tags"),
    (
        "POST",
        r"/campaigns/(?P<campaign_id>[^/:]+)/sequences/(?P<sequence_id>[^/:]+):addContacts",
        "rest.addContactsToSequence",
        "add_to_sequence",
    ),
    (
        "POST",
        r"/campaigns/(?P<campaign_id>[^/:]+)/sequences/(?P<sequence_id>[^/:]+):removeContacts",
        "rest.removeContactsFromSequence",
        "remove_from_sequence",
    ),
    ("POST", "/automations/goals/achieve", "rest.achieveGoal", "achieve_goal"),
    ("PATCH", r"/emailAddresses/(?P<email>[^/]+)/status", "rest.updateEmailAddressStatus", "update_email_status"),
    ("GET", r"/emailAddresses/(?P<email>[^/]+)/status", "rest.getEmailAddressStatus", "get_email_status"),
)


def _filter(query: dict[str, str], key: str, known: str) -> str | None:
    """The value of `filter=key==value` (terms `;`-separated), None without one; 400 for any other term."""
    wanted = None
    for term in filter(None, (query.get("filter") or "").split(";")):
        name, sep, value = term.partition("==")
        if name.strip() != key or not sep:
            raise RestError(400, f"unsupported filter {term!r} (the emulator knows {known})")
        wanted = value.strip()
    return wanted


def _page(items: list[Any], query: dict[str, str]) -> tuple[list[Any], dict[str, Any]]:
    """One page of a listing (`page_size` ≤ 1000, default 50; `page_token` an offset) and its next_page_token."""
    try:
        size = int(query.get("page_size") or 50)
        start = int(query.get("page_token") or 0)
    except ValueError:
        raise RestError(400, "page_size and page_token must be integers") from None
    if not 0 <= size <= listings.MAX_ROWS or start < 0:
        raise RestError(400, "page_size is 0..1000")
    size = size or 50
    more = {"next_page_token": str(start + size)} if start + size < len(items) else {}
    return items[start : start + size], more


def _json_body(body: bytes, verb: str) -> Any:
    if verb == "GET" or not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise RestError(400, "the request body is not valid JSON") from None


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise RestError(400, "the request body must be a JSON object")
    return body


def _int_id(raw: str, what: str) -> int:
    if not raw.isdigit() or int(raw) <= 0:
        raise RestError(400, f"{what} id must be a positive integer, not {raw!r}")
    return int(raw)


def _contact_ids(body: Any) -> list[int]:
    ids = _object(body).get("contact_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i.isdigit() for i in ids):
        raise RestError(400, "contact_ids must be a non-empty list of contact ids (strings)")
    return list(dict.fromkeys(int(i) for i in ids))
