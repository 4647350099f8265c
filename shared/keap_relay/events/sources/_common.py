"""What the source adapters share: body decoding, constant-time checks and the canonical mapping rules."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from ..errors import BodyUnparseable, SignatureInvalid, UnsupportedMediaType

TOKEN_PARAM = "token"  # noqa: S105 - a query parameter's name: ?token=<secret> for unsigned sources
TEXT_MAX = 1000  # the canonical schema's limit on a text field
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
JSON = "application/json"


# -- headers and bodies ----------------------------------------------------------------------------------


def media_type(headers: Mapping[str, str]) -> str:
    """The content type without its parameters, lower-cased ('' when absent)."""
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def require_media(headers: Mapping[str, str], accepted: tuple[str, ...]) -> str:
    """The request's media type, or UnsupportedMediaType naming the ones this source sends."""
    media = media_type(headers)
    if media not in accepted:
        raise UnsupportedMediaType(
            f"content type {media[:80] or '(none)'!r} not supported here; this source sends {' or '.join(accepted)}"
        )
    return media


def _content_param(headers: Mapping[str, str], name: str) -> str | None:
    for part in headers.get("content-type", "").split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"') or None
    return None


def _charset(headers: Mapping[str, str]) -> str:
    charset = (_content_param(headers, "charset") or "utf-8").lower()
    try:
        "".encode(charset)
    except LookupError:
        raise BodyUnparseable(f"unknown charset {charset[:40]!r} in the content type") from None
    return charset


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def json_body(raw_body: bytes) -> Any:
    """The body as JSON; NaN and Infinity are refused (no one else could read them back)."""
    try:
        return json.loads(raw_body, parse_constant=_no_constants)
    except RecursionError:
        raise BodyUnparseable("body is not JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyUnparseable(f"body is not JSON: {str(exc)[:200]}") from None


def json_object(raw_body: bytes) -> dict[str, Any]:
    """The body as a JSON object (the shape every vendor but SendGrid sends)."""
    body = json_body(raw_body)
    if not isinstance(body, dict):
        raise BodyUnparseable(f"body must be a JSON object, not {type(body).__name__}")
    return body


def form_body(headers: Mapping[str, str], raw_body: bytes) -> dict[str, str]:
    """A form-encoded body as a flat dict of its field names (brackets kept, e.g. `data[email]`).

    A repeated name keeps its last value, as PHP (which most of these senders are written for) does.
    """
    try:
        text = raw_body.decode(_charset(headers))
    except UnicodeDecodeError:
        raise BodyUnparseable("form body is not valid text in its charset") from None
    try:
        return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=5000))
    except ValueError as exc:
        raise BodyUnparseable(f"form body does not parse: {str(exc)[:200]}") from None


def multipart_body(headers: Mapping[str, str], raw_body: bytes) -> dict[str, str]:
    """A multipart/form-data body's text fields by name (file parts are skipped)."""
    boundary = _content_param(headers, "boundary")
    if not boundary or len(boundary) > 200:
        raise BodyUnparseable("multipart body without a usable boundary in its content type")
    head = f'Content-Type: multipart/form-data; boundary="{boundary}"\r\nMIME-Version: 1.0\r\n\r\n'.encode()
    # Imported here: the email policies are only for the few senders of multipart bodies (~4 ms of a cold start).
    from email import parser as email_parser
    from email import policy as email_policy

    try:
        message = email_parser.BytesParser(policy=email_policy.HTTP).parsebytes(head + raw_body)
        parts = list(message.iter_parts()) if message.is_multipart() else []
    except Exception:  # the email package raises many types on garbage; all mean the same thing here
        raise BodyUnparseable("multipart body does not parse") from None
    if not parts:
        raise BodyUnparseable("multipart body has no parts")
    fields: dict[str, str] = {}
    for part in parts:
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.get_filename():
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            fields[name] = payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    return fields


# How a form-like body is read, by content type (Gravity Forms and Jotform send more than one).
FIELD_READERS: dict[str, Callable[[Mapping[str, str], bytes], dict[str, Any]]] = {
    FORM: form_body,
    MULTIPART: multipart_body,
    JSON: lambda _headers, raw: json_object(raw),
}


def fields_body(headers: Mapping[str, str], raw_body: bytes) -> dict[str, Any]:
    """A body of named fields, read the way its content type says."""
    reader = FIELD_READERS.get(media_type(headers))
    if reader is None:  # ingest checks content types first; this is the adapter standing on its own
        raise BodyUnparseable(f"cannot read a body of type {media_type(headers) or '(none)'!r}")
    return reader(headers, raw_body)


# -- secrets and signatures ------------------------------------------------------------------------------


def same(given: str | bytes, expected: str | bytes) -> bool:
    """Constant-time equality that never raises (hmac.compare_digest refuses non-ASCII str)."""
    a = given.encode("utf-8", "surrogatepass") if isinstance(given, str) else given
    b = expected.encode("utf-8", "surrogatepass") if isinstance(expected, str) else expected
    return hmac.compare_digest(a, b)


def hmac_sha256(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def hex_hmac(secret: str, message: bytes) -> str:
    return hmac_sha256(secret, message).hex()


def b64_hmac(secret: str, message: bytes) -> str:
    return base64.b64encode(hmac_sha256(secret, message)).decode("ascii")


def require_header(headers: Mapping[str, str], name: str, shape: str) -> str:
    value = headers.get(name, "").strip()
    if not value:
        raise SignatureInvalid(f"missing {name} header (expected {shape})")
    return value


def verify_body_b64_hmac(headers: Mapping[str, str], raw_body: bytes, secret: str, header: str) -> None:
    """Raise SignatureInvalid unless `header` holds the base64 HMAC-SHA256 of the raw body under `secret`."""
    given = require_header(headers, header, "<base64>")
    if not same(given, b64_hmac(secret, raw_body)):
        raise SignatureInvalid(f"{header} does not match the body")


def verify_token(query: Mapping[str, str], secret: str) -> None:
    """Raise SignatureInvalid unless ?token= equals the source's secret (constant time; never echoed)."""
    given = query.get(TOKEN_PARAM, "")
    if not given:
        raise SignatureInvalid(f"missing ?{TOKEN_PARAM}= in the webhook URL (this source authenticates by URL token)")
    if not same(given, secret):
        raise SignatureInvalid(f"?{TOKEN_PARAM}= does not match this source's secret")


def check_age(timestamp: float, tolerance: float, now: float) -> None:
    """Raise SignatureInvalid when a signed timestamp is further than `tolerance` seconds from `now`."""
    if not math.isfinite(timestamp) or abs(now - timestamp) > tolerance:
        raise SignatureInvalid(f"signed timestamp is outside the {int(tolerance)} s tolerance (clock skew or replay)")


# -- mapping rules ---------------------------------------------------------------------------------------


def text(value: Any) -> str | None:
    """A text field's value: trimmed, numbers written plainly, clipped to the schema's limit; None if empty."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)  # Webflow sends phone numbers as JSON numbers
    if isinstance(value, int | float):
        return str(value) if not isinstance(value, float) or math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:TEXT_MAX] or None


def email_address(value: Any) -> str | None:
    """An email trimmed, with its domain lower-cased (the local part may be case-sensitive)."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    local, at, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}" if at and local else (value or None)


def split_name(full: Any) -> tuple[str | None, str | None]:
    """First word → first name, the rest → last name ('Ana de la Cruz' → 'Ana', 'de la Cruz')."""
    words = (text(full) or "").split()
    if not words:
        return None, None
    return words[0], (" ".join(words[1:]) or None)


# Digits after the decimal point where a currency differs from 2 (Stripe's zero- and three-decimal lists,
# which Lemon Squeezy and Gumroad, both on Stripe, follow too).
MINOR_DIGITS: dict[str, int] = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "VND", "VUV", "XAF", "XOF", "XPF"), 0
    ),
    **dict.fromkeys(("BHD", "JOD", "KWD", "OMR", "TND"), 3),
}
_MONEY_MAX = Decimal("1e12")


def currency_code(value: Any) -> str | None:
    code = text(value)
    return code.upper() if code and re.fullmatch(r"[A-Za-z]{3}", code) else None


def _money(amount: Decimal) -> str | None:
    if not amount.is_finite() or abs(amount) >= _MONEY_MAX:
        return None
    if amount.as_tuple().exponent < -4:  # type: ignore[operator]
        amount = amount.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    return format(amount, "f")


def money(value: Any) -> str | None:
    """A decimal amount in major units (a string such as "403.00" or a number such as 14.99) as a string."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        amount = Decimal(str(value).strip()) if isinstance(value, str | int | float) else None
    except InvalidOperation:
        return None
    return _money(amount) if amount is not None else None


def money_from_minor(value: Any, currency: str | None) -> str | None:
    """An amount in minor units (Stripe's 1199) as major units for its currency ("11.99")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,18}", value.strip()):
        value = int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        return None
    digits = MINOR_DIGITS.get(currency or "", 2)
    return _money(Decimal(value).scaleb(-digits).quantize(Decimal(1).scaleb(-digits)))


_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_NAIVE = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2}(\.\d+)?)")


def iso_time(value: Any, *, naive_is_utc: bool = False) -> str | None:
    """An ISO 8601 time as the schema wants it; a time without zone only when the vendor's is UTC."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if _ISO.fullmatch(value):
        return value
    naive = _NAIVE.fullmatch(value)
    return f"{naive[1]}T{naive[2]}Z" if naive and naive_is_utc else None


def iso_from_unix(value: Any) -> str | None:
    """Seconds since the epoch (int, float or numeric string) as an ISO time in UTC."""
    try:
        seconds = float(value) if isinstance(value, int | float | str) and not isinstance(value, bool) else None
        if seconds is None or not math.isfinite(seconds):
            return None
        moment = datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return moment.isoformat().replace("+00:00", "Z")


def stable_id(*parts: Any) -> str:
    """A stable id from identifying fields, for sources that send none (a retry maps to the same id)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def dig(value: Any, *path: str | int) -> Any:
    """value[p0][p1]... or None where any step is missing or of the wrong type."""
    for step in path:
        if isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value):
            value = value[step]
        elif isinstance(step, str) and isinstance(value, dict):
            value = value.get(step)
        else:
            return None
    return value


def first(*values: Any) -> Any:
    """The first value that is not None or an empty string."""
    return next((v for v in values if v is not None and v != ""), None)


def prune(value: Any) -> Any:
    """Drop None, empty strings and empty dicts, so a canonical event holds only what the vendor sent."""
    if isinstance(value, dict):
        kept = {k: prune(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, "", {})}
    return value


def address(
    line1: Any = None,
    line2: Any = None,
    city: Any = None,
    region: Any = None,
    postal_code: Any = None,
    country_code: Any = None,
) -> dict[str, str]:
    """A canonical address of whichever parts the vendor gave."""
    return prune(
        {
            "line1": text(line1),
            "line2": text(line2),
            "city": text(city),
            "region": text(region),
            "postal_code": text(postal_code),
            "country_code": text(country_code),
        }
    )


def contact(
    email: Any,
    first_name: Any = None,
    last_name: Any = None,
    *,
    name: Any = None,
    phone: Any = None,
    company: Any = None,
    address: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A canonical contact; a full `name` is split only when no first and last name were given."""
    first_name, last_name = text(first_name), text(last_name)
    if not first_name and not last_name and name is not None:
        first_name, last_name = split_name(name)
    return prune(
        {
            "email": email_address(email),
            "first_name": first_name,
            "last_name": last_name,
            "phone": text(phone),
            "company": text(company),
            "address": address or None,
        }
    )


# -- form fields by label --------------------------------------------------------------------------------

# Which contact field a form field is, from the words of its label, key or ref. Checked in this order; a
# rule holds when all words of one of its patterns are in the label and none of its `unless` words are:
# "Company name" is a company before it is a name, "First name" a first name, "Product name" nobody's.
_NOT_A_PERSON = "product form page file event project user site domain campaign team pet child item plan"
LABEL_RULES: tuple[tuple[str, tuple[frozenset[str], ...], frozenset[str]], ...] = tuple(
    (target, tuple(frozenset(p.split()) for p in patterns), frozenset(unless.split()))
    for target, patterns, unless in (
        ("email", ("email", "e mail", "emailaddress"), ""),
        ("first_name", ("first name", "firstname", "given name", "fname", "forename"), _NOT_A_PERSON),
        ("last_name", ("last name", "lastname", "surname", "family name", "lname"), _NOT_A_PERSON),
        ("phone", ("phone", "phonenumber", "telephone", "mobile", "tel", "cell"), ""),
        ("company", ("company", "companyname", "organisation", "organization", "business name", "employer"), ""),
        ("address", ("address",), "ip"),
        ("name", ("name", "fullname", "full name"), _NOT_A_PERSON),
    )
)


def label_words(label: str) -> frozenset[str]:
    """'phoneNumber' / 'Phone_Number' / 'q13_phoneNumber' → {'phone', 'number'}."""
    label = re.sub(r"^q\d+_", "", label)  # Jotform's question-number prefix
    label = re.sub(r"([a-z])([A-Z])", r"\1 \2", label)
    return frozenset(re.findall(r"[a-z0-9]+", label.lower()))


def field_for(*labels: Any) -> str | None:
    """The contact field (a key of LABEL_RULES) that any of `labels` names, or None."""
    words = [label_words(label) for label in labels if isinstance(label, str) and label]
    for target, patterns, unless in LABEL_RULES:
        if any(pattern <= w and not unless & w for w in words for pattern in patterns):
            return target
    return None


def contact_from_fields(items: Iterable[tuple[str | None, Any]]) -> dict[str, Any]:
    """Contact values from (field, value) pairs, the first value of each field winning.

    `field` is a LABEL_RULES target (or None to skip); a `name` value may be a full-name string or a
    {first, last} object; an `address` must already be canonical.
    """
    found: dict[str, Any] = {}
    for target, value in items:
        if target is None or target in found:
            continue
        if target == "name" and isinstance(value, dict):
            if "first_name" not in found and text(value.get("first")):
                found["first_name"] = value.get("first")
            if "last_name" not in found and text(value.get("last")):
                found["last_name"] = value.get("last")
            continue
        if target == "address":
            if isinstance(value, dict) and value:
                found[target] = value
            continue
        if text(value) is not None:
            found[target] = value
    return contact(
        found.get("email"),
        found.get("first_name"),
        found.get("last_name"),
        name=found.get("name"),
        phone=found.get("phone"),
        company=found.get("company"),
        address=found.get("address"),
    )


def canonical_event(
    kind: str,
    source: str,
    event_id: Any,
    occurred_at: str | None,
    contact: dict[str, Any],
    **section: dict[str, Any] | None,
) -> dict[str, Any]:
    """A canonical event; `contact` stays even when empty, so a missing email is reported as such."""
    event: dict[str, Any] = {"kind": kind, "source": source, "id": text(event_id), "occurred_at": occurred_at}
    event = {k: v for k, v in event.items() if v is not None}
    event["contact"] = contact
    for name, value in section.items():
        if value:
            event[name] = value
    return event


def as_dict(value: Any) -> dict[str, Any]:
    """`value` if it is an object, else an empty one (vendors' optional sections, and fuzzers')."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """`value` if it is an array, else an empty one."""
    return value if isinstance(value, list) else []


def quantity(value: Any) -> int | None:
    """A line item's quantity when it is a whole, non-negative number (form bodies send strings)."""
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) < 10:
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def unit_minor(amount: Any, count: int | None) -> int | None:
    """A line's unit price in minor units from its total, when it divides evenly."""
    if isinstance(amount, str) and re.fullmatch(r"-?\d{1,18}", amount.strip()):
        amount = int(amount)
    if not count or not isinstance(amount, int) or isinstance(amount, bool) or amount % count:
        return None
    return amount // count
