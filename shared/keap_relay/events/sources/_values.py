"""Reading vendors' values the canonical schema's way: text, emails, names, money, times, ids and nested fields."""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

TEXT_MAX = 1000  # the canonical schema's limit on a text field


def clean_text(value: Any) -> str | None:
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
    words = (clean_text(full) or "").split()
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
_WHOLE_NUMBER = re.compile(r"-?\d{1,18}")


def currency_code(value: Any) -> str | None:
    """A three-letter currency code, upper-cased, or None."""
    code = clean_text(value)
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


def _whole_number(value: Any) -> Any:
    """`value` as an int when it is a whole number written as a string of digits; else as it is."""
    return int(value) if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip()) else value


def money_from_minor(value: Any, currency: str | None) -> str | None:
    """An amount in minor units (Stripe's 1199) as major units for its currency ("11.99")."""
    if isinstance(value, bool):
        return None
    value = _whole_number(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        return None
    digits = MINOR_DIGITS.get(currency or "", 2)
    return _money(Decimal(value).scaleb(-digits).quantize(Decimal(1).scaleb(-digits)))


def quantity(value: Any) -> int | None:
    """A line item's quantity when it is a whole, non-negative number (form bodies send strings)."""
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) < 10:
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def unit_price_minor(amount: Any, count: int | None) -> int | None:
    """A line's unit price in minor units from its total, when it divides evenly."""
    amount = _whole_number(amount)
    if not count or not isinstance(amount, int) or isinstance(amount, bool) or amount % count:
        return None
    return amount // count


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


def value_at(value: Any, *path: str | int) -> Any:
    """value[p0][p1]... or None where any step is missing or of the wrong type."""
    for step in path:
        if isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value):
            value = value[step]
        elif isinstance(step, str) and isinstance(value, dict):
            value = value.get(step)
        else:
            return None
    return value


def first_present(*values: Any) -> Any:
    """The first value that is not None or an empty string."""
    return next((v for v in values if v is not None and v != ""), None)


def without_empty(value: Any) -> Any:
    """`value` without None, empty strings and empty dicts, at any depth of dicts: a canonical event holds
    only what the vendor sent."""
    if isinstance(value, dict):
        kept = {k: without_empty(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, "", {})}
    return value


def as_dict(value: Any) -> dict[str, Any]:
    """`value` if it is an object, else an empty one (vendors' optional sections, and fuzzers')."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """`value` if it is an array, else an empty one."""
    return value if isinstance(value, list) else []
