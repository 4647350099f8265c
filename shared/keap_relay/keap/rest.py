"""Keap REST v2 client: the calls behind ContactService's methods, with the same auth, retries, pacing and errors."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from keap_relay.keap.client import DUP_CHECK_TYPES
from keap_relay.keap.errors import (
    KeapContactFailed,
    KeapError,
    KeapMalformedResponse,
    KeapNotFound,
    KeapRequestError,
    KeapUnknownField,
    error_from_rest,
)
from keap_relay.keap.session import RetryingClient, _mask_url
from keap_relay.keap.throttle import RateInfo, RateLimiter

__all__ = [
    "DEFAULT_REST_URL",
    "REST_SAFE_TO_REPEAT",
    "RestClient",
    "country_code",
    "maps_to_v2",
    "outcome_error",
    "rest_base_url",
    "to_v2_contact",
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
    }
)

_log = logging.getLogger("keap_relay.keap")


def rest_base_url(keap_url: str | None) -> str:
    """The REST base (`https://host/crm`) for a KEAP_URL that names Keap's XML-RPC endpoint or the base itself."""
    if not keap_url:
        return DEFAULT_REST_URL
    parts = urlsplit(keap_url)
    path = parts.path.rstrip("/")
    path = _XMLRPC_PATHS.get(path, path)
    # The query (an OAuth `?access_token=`) belongs to XML-RPC URLs; REST takes the token in a header.
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


# ---------------------------------------------------------------- field mapping: XML-RPC Contact -> v2 contact

# XML-RPC field -> (v2 property, slot of the array item or None for a plain property, key inside the item).
# Array properties hold one item per slot (`field`: EMAIL1, PHONE2, BILLING, ...); `company` is an object.
V2_FIELDS: Mapping[str, tuple[str, str | None, str]] = {
    "FirstName": ("given_name", None, ""),
    "LastName": ("family_name", None, ""),
    "MiddleName": ("middle_name", None, ""),
    "Nickname": ("preferred_name", None, ""),
    "Title": ("prefix", None, ""),
    "Suffix": ("suffix", None, ""),
    "JobTitle": ("job_title", None, ""),
    "Website": ("website", None, ""),
    "SpouseName": ("spouse_name", None, ""),
    "ContactType": ("contact_type", None, ""),
    "TimeZone": ("time_zone", None, ""),
    "Language": ("preferred_locale", None, ""),
    "ReferralCode": ("referral_code", None, ""),
    "AssistantName": ("assistant_name", None, ""),
    "AssistantPhone": ("assistant_phone", None, ""),
    "BillingInformation": ("billing_information", None, ""),
    "Birthday": ("birth_date", None, ""),
    "Anniversary": ("anniversary_date", None, ""),
    "OwnerID": ("owner_id", None, ""),
    "LeadSourceId": ("leadsource_id", None, ""),
    "Company": ("company", None, "company_name"),
    "Email": ("email_addresses", "EMAIL1", "email"),
    "EmailAddress2": ("email_addresses", "EMAIL2", "email"),
    "EmailAddress3": ("email_addresses", "EMAIL3", "email"),
    **{
        f"Phone{n}{suffix}": ("phone_numbers", f"PHONE{n}", key)
        for n in range(1, 6)
        for suffix, key in (("", "number"), ("Ext", "extension"), ("Type", "type"))
    },
    **{
        f"{prefix}{name}": ("addresses", slot, key)
        for slot, prefix, names in (
            ("BILLING", "", ("StreetAddress1", "StreetAddress2", "City", "State", "PostalCode", "ZipFour1", "Country")),
            (
                "SHIPPING",
                "",
                ("Address2Street1", "Address2Street2", "City2", "State2", "PostalCode2", "ZipFour2", "Country2"),
            ),
            (
                "OTHER",
                "",
                ("Address3Street1", "Address3Street2", "City3", "State3", "PostalCode3", "ZipFour3", "Country3"),
            ),
        )
        for name, key in zip(
            names, ("line1", "line2", "locality", "region", "postal_code", "zip_four", "country"), strict=True
        )
    },
}

# Array property -> the item keys a request may carry (responses add read-only ones such as email_opt_status).
_ITEM_KEYS: Mapping[str, tuple[str, ...]] = {
    "email_addresses": ("email", "field"),
    "phone_numbers": ("number", "extension", "type", "field"),
    "addresses": ("line1", "line2", "locality", "region_code", "country_code", "postal_code", "zip_four", "field"),
    "custom_fields": ("id", "content"),
}
# How items of each array property are told apart.
_SLOT_KEY: Mapping[str, str] = {
    "email_addresses": "field",
    "phone_numbers": "field",
    "addresses": "field",
    "custom_fields": "id",
}

# The v2 model's length limits (keap-core-v2-sdk CreateUpdateContactRequest); longer values are cut, as
# Keap's XML-RPC service cuts rather than refuses.
MAX_LENGTH: Mapping[str, int] = {
    "given_name": 40,
    "family_name": 40,
    "middle_name": 100,
    "preferred_name": 100,
    "job_title": 255,
    "website": 100,
    "spouse_name": 100,
    "assistant_name": 20,
    "assistant_phone": 15,
    "billing_information": 100,
}

# ISO 3166-1 alpha-2 -> alpha-3 (from Debian's iso-codes), packed as 5-letter words: v2 wants alpha-3
# country codes (`GBR`), while forms and shops send alpha-2 (`GB`).
_ISO_PAIRS = """
ADAND AEARE AFAFG AGATG AIAIA ALALB AMARM AOAGO AQATA ARARG ASASM ATAUT AUAUS AWABW AXALA AZAZE
BABIH BBBRB BDBGD BEBEL BFBFA BGBGR BHBHR BIBDI BJBEN BLBLM BMBMU BNBRN BOBOL BQBES BRBRA BSBHS
BTBTN BVBVT BWBWA BYBLR BZBLZ CACAN CCCCK CDCOD CFCAF CGCOG CHCHE CICIV CKCOK CLCHL CMCMR CNCHN
COCOL CRCRI CUCUB CVCPV CWCUW CXCXR CYCYP CZCZE DEDEU DJDJI DKDNK DMDMA DODOM DZDZA ECECU EEEST
EGEGY EHESH ERERI ESESP ETETH FIFIN FJFJI FKFLK FMFSM FOFRO FRFRA GAGAB GBGBR GDGRD GEGEO GFGUF
GGGGY GHGHA GIGIB GLGRL GMGMB GNGIN GPGLP GQGNQ GRGRC GSSGS GTGTM GUGUM GWGNB GYGUY HKHKG HMHMD
HNHND HRHRV HTHTI HUHUN IDIDN IEIRL ILISR IMIMN ININD IOIOT IQIRQ IRIRN ISISL ITITA JEJEY JMJAM
JOJOR JPJPN KEKEN KGKGZ KHKHM KIKIR KMCOM KNKNA KPPRK KRKOR KWKWT KYCYM KZKAZ LALAO LBLBN LCLCA
LILIE LKLKA LRLBR LSLSO LTLTU LULUX LVLVA LYLBY MAMAR MCMCO MDMDA MEMNE MFMAF MGMDG MHMHL MKMKD
MLMLI MMMMR MNMNG MOMAC MPMNP MQMTQ MRMRT MSMSR MTMLT MUMUS MVMDV MWMWI MXMEX MYMYS MZMOZ NANAM
NCNCL NENER NFNFK NGNGA NINIC NLNLD NONOR NPNPL NRNRU NUNIU NZNZL OMOMN PAPAN PEPER PFPYF PGPNG
PHPHL PKPAK PLPOL PMSPM PNPCN PRPRI PSPSE PTPRT PWPLW PYPRY QAQAT REREU ROROU RSSRB RURUS RWRWA
SASAU SBSLB SCSYC SDSDN SESWE SGSGP SHSHN SISVN SJSJM SKSVK SLSLE SMSMR SNSEN SOSOM SRSUR SSSSD
STSTP SVSLV SXSXM SYSYR SZSWZ TCTCA TDTCD TFATF TGTGO THTHA TJTJK TKTKL TLTLS TMTKM TNTUN TOTON
TRTUR TTTTO TVTUV TWTWN TZTZA UAUKR UGUGA UMUMI USUSA UYURY UZUZB VAVAT VCVCT VEVEN VGVGB VIVIR
VNVNM VUVUT WFWLF WSWSM YEYEM YTMYT ZAZAF ZMZMB ZWZWE
"""
ALPHA3: Mapping[str, str] = {
    **{word[:2]: word[2:] for word in _ISO_PAIRS.split()},
    "UK": "GBR",  # not ISO, but what people type
}
_ALPHA2: Mapping[str, str] = {a3: a2 for a2, a3 in ALPHA3.items() if a2 != "UK"}

_SUBDIVISION = re.compile(r"^[A-Z]{2}-[A-Z0-9]{1,3}$")
_SUBDIVISION_CODE = re.compile(r"^[A-Z0-9]{1,3}$")


def country_code(value: str) -> str | None:
    """The ISO alpha-3 code for an alpha-2 or alpha-3 code (any case); None for anything else."""
    code = value.strip().upper()
    if code in _ALPHA2:
        return code
    return ALPHA3.get(code)


def maps_to_v2(name: str) -> bool:
    """Whether an XML-RPC Contact field has a REST v2 counterpart (custom `_Fields` always do)."""
    return name.startswith("_") or name in V2_FIELDS


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _finish_address(item: dict[str, Any]) -> dict[str, Any]:
    """Country and region as v2 wants them: `country_code` alpha-3, `region_code` ISO 3166-2 (`US-CA`)."""
    raw_country = item.pop("country", None)
    raw_region = item.pop("region", None)
    if raw_country == "":
        item["country_code"] = ""
    if raw_region == "":
        item["region_code"] = ""
    code = country_code(raw_country) if raw_country else None
    if code:
        item["country_code"] = code
        if raw_region:
            region = raw_region.strip().upper()
            if _SUBDIVISION.match(region):
                item["region_code"] = region
            elif _SUBDIVISION_CODE.match(region):
                item["region_code"] = f"{_ALPHA2[code]}-{region}"
    # Without a country v2 refuses a region, and a country it cannot code is left out rather than guessed.
    return item


def to_v2_contact(
    data: Mapping[str, Any], custom_field_ids: Mapping[str, str], *, keep_empty: bool = False
) -> dict[str, Any]:
    """The v2 contact body for XML-RPC Contact fields.

    `custom_field_ids` maps a custom field name (`_LeadSource`) to its v2 id. `""` clears a plain property;
    inside array items (emails, phones, addresses, custom fields) it is dropped, or kept as a marker for
    _merge_items when `keep_empty`. Raises KeapUnknownField for a field with no v2 counterpart or a custom
    field the app does not have.
    """
    body: dict[str, Any] = {}
    arrays: dict[str, dict[str, dict[str, Any]]] = {}
    custom: list[dict[str, Any]] = []
    for name, value in data.items():
        if name.startswith("_"):
            field_id = custom_field_ids.get(name)
            if field_id is None:
                raise KeapUnknownField(f"custom field {name} is not in the app's contact model")
            if value != "" or keep_empty:
                custom.append({"id": field_id, "content": value})
            continue
        target = V2_FIELDS.get(name)
        if target is None:
            raise KeapUnknownField(f"Contact field {name} has no REST v2 counterpart")
        prop, slot, key = target
        text = _text(value)
        if slot is not None:
            arrays.setdefault(prop, {}).setdefault(slot, {})[key] = text
        elif key:
            body[prop] = {key: text}
        else:
            limit = MAX_LENGTH.get(prop)
            body[prop] = text[:limit] if limit else text
    for prop, slots in arrays.items():
        items = []
        for slot, values in slots.items():
            item = dict(values) if keep_empty else {key: v for key, v in values.items() if v != ""}
            if prop == "addresses":
                item = _finish_address(item)
            if item:
                items.append({**item, "field": slot})
        # An empty array would empty what Keap holds; only an update that merged first may send one.
        if items or keep_empty:
            body[prop] = items
    if custom:
        body["custom_fields"] = custom
    return body


def _merge_items(
    prop: str, current: Sequence[Mapping[str, Any]], sent: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Items after an update: the stored ones with the sent values laid over them (`""` removes a value).

    v2 replaces a whole array on update ("any item not listed will be removed"); XML-RPC's update leaves
    fields it is not given alone, so the stored items are sent back with the changes.
    """
    slot_key, keep = _SLOT_KEY[prop], _ITEM_KEYS[prop]
    merged: dict[str, dict[str, Any]] = {}
    for item in current:
        slot = item.get(slot_key)
        if slot is not None:
            merged[str(slot)] = {k: item[k] for k in keep if item.get(k) not in (None, "")}
    for item in sent:
        target = merged.setdefault(str(item[slot_key]), {})
        for key, value in item.items():
            if value == "":
                target.pop(key, None)
            else:
                target[key] = value
    return [item for item in merged.values() if any(k != slot_key for k in item)]


# Per-contact outcome of a many-contacts call -> the error it means for that contact (None: done).
_OUTCOMES: Mapping[str, type[KeapError] | None] = {
    "SUCCESS": None,
    "ALREADY_IN_SEQUENCE": None,
    "ALREADY_APPLIED": None,
    "CONTACT_DOES_NOT_EXIST": KeapNotFound,
    "FAILED": KeapContactFailed,
}


def outcome_error(operation: str, contact_id: int, outcome: str | None) -> KeapError | None:
    """The error for one contact's outcome of a many-contacts call, or None when it was done."""
    cls = _OUTCOMES.get(outcome or "SUCCESS")
    return None if cls is None else cls(f"contact {contact_id}: {outcome}", method=operation)


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


# `*` is the filter's wildcard and `,` / `;` separate filter terms: none belongs in an address we look up.
_FILTER_UNSAFE = frozenset("*,;")


def _as_dict(value: Any, operation: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise KeapMalformedResponse(f"expected a JSON object, got {type(value).__name__}", method=operation)


class RestClient(RetryingClient):
    """Keap's REST v2 API for what keap-relay does, returning plain values; safe to share between threads.

    Auth, retries and pacing as ContactService: `api_key` (default `KEAP_API_KEY`) in `X-Keap-API-Key` or
    `access_token` as `Authorization: Bearer`; transient failures retried with exponential backoff and full
    jitter, but a call that may already have reached Keap is repeated only for REST_SAFE_TO_REPEAT; a short
    429 is waited out, a long one raised. HTTP status and Keap's JSON error body become the KeapError tree.
    `base_url` defaults to KEAP_REST_URL, else to the REST base on KEAP_URL's host (see rest_base_url).
    """

    def __init__(
        self,
        base_url: str | None = None,
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
        page_size: int = 200,
        rate_limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = (
            base_url or os.environ.get("KEAP_REST_URL") or rest_base_url(os.environ.get("KEAP_URL"))
        ).rstrip("/")
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
            url=self.base_url,
            content_type="application/json",
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            pool_size=pool_size,
        )
        self.page_size = max(1, min(1000, page_size))
        self._custom_fields: dict[str, str] | None = None
        self._model_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RestClient(base_url={_mask_url(self.base_url)!r}, auth={self.auth!r})"

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
        response = self._transport.request(verb, payload, path=target, method=operation)
        info = RateInfo.from_headers(response.headers)
        if info is not None:
            self.last_rate_info = info
        if not 200 <= response.status < 300:
            raise error_from_rest(
                response.status,
                response.body,
                method=operation,
                retry_after=info.retry_after(info.observed_at) if info is not None else None,
                rate_info=info,
            )
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
            query={"duplicate_option": dup_check_type, "fields": "id"},
        )
        return self._contact_id(result, "rest.upsertContact")

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
        arrays = [prop for prop in _ITEM_KEYS if prop in body]
        if arrays:
            current = self.get_contact(contact_id, arrays)
            for prop in arrays:
                body[prop] = _merge_items(prop, current.get(prop) or [], body[prop])
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
                        "page_size": self.page_size,
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
