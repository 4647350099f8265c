"""XML-RPC Contact fields as a REST v2 contact body: field names, array items, length limits, country codes.

Pure functions and tables, no I/O: the REST client sends what they build, and the routes check asks
`maps_to_v2` whether a routes file's fields exist over REST.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from keap_relay.keap.errors import UNKNOWN_FIELD, KeapRequestError

__all__ = ["ITEM_KEYS", "country_code", "maps_to_v2", "merge_items", "to_v2_contact"]

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
ITEM_KEYS: Mapping[str, tuple[str, ...]] = {
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
    merge_items when `keep_empty`. Raises KeapRequestError (KeapUnknownField) for a field with no v2
    counterpart or a custom field the app does not have.
    """
    body: dict[str, Any] = {}
    arrays: dict[str, dict[str, dict[str, Any]]] = {}
    custom: list[dict[str, Any]] = []
    for name, value in data.items():
        if name.startswith("_"):
            field_id = custom_field_ids.get(name)
            if field_id is None:
                raise KeapRequestError(f"custom field {name} is not in the app's contact model", kind=UNKNOWN_FIELD)
            if value != "" or keep_empty:
                custom.append({"id": field_id, "content": value})
            continue
        target = V2_FIELDS.get(name)
        if target is None:
            raise KeapRequestError(f"Contact field {name} has no REST v2 counterpart", kind=UNKNOWN_FIELD)
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


def merge_items(
    prop: str, current: Sequence[Mapping[str, Any]], sent: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Items after an update: the stored ones with the sent values laid over them (`""` removes a value).

    v2 replaces a whole array on update ("any item not listed will be removed"); XML-RPC's update leaves
    fields it is not given alone, so the stored items are sent back with the changes.
    """
    slot_key, keep = _SLOT_KEY[prop], ITEM_KEYS[prop]
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
