"""XML-RPC codec for Keap: a methodCall serializer and a methodResponse reader, each a dispatch table.

Decoding is a thin walk over `xmltodict.parse` output (tag → one small function); encoding is a
hand-written serializer (Python type → one small function). Keap's quirks live in the table entries:
untyped `<value>text</value>` strings kept verbatim, whitespace around booleans and ints, its
`YYYYMMDDTHH:MM:SS` dates, and no `<nil/>`.
"""

from __future__ import annotations

import base64
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any
from xml.parsers import expat

import xmltodict

from keap_relay.keap.errors import ENCODE, KeapMalformedResponse, KeapRequestError, KeapUnsafeResponse, error_from_fault

__all__ = ["decode_response", "encode_call", "format_datetime", "parse_datetime"]

_log = logging.getLogger("keap_relay.keap")

# ================================================================================================
# Decoding
# ================================================================================================


class _Unsafe(Exception):
    """Raised from inside expat the moment a DOCTYPE or entity declaration appears."""


def _refuse_doctype(*_args: object) -> None:
    raise _Unsafe("DOCTYPE declarations are not accepted")


def _refuse_entity(*_args: object) -> None:
    raise _Unsafe("entity declarations are not accepted")


class _SafeExpat:
    """Stands in for the `expat` module in `xmltodict.parse`: its parsers refuse any DOCTYPE.

    XML-RPC never needs a DTD, so refusing the DOCTYPE itself stops internal entity expansion
    (billion laughs) and external entities (XXE) before either is declared.
    """

    ExpatError = expat.ExpatError

    @staticmethod
    def ParserCreate(encoding: str | None = None, namespace_separator: str | None = None) -> Any:
        parser = expat.ParserCreate(encoding, namespace_separator)
        parser.StartDoctypeDeclHandler = _refuse_doctype
        parser.EntityDeclHandler = _refuse_entity
        parser.ExternalEntityRefHandler = _refuse_entity
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        return parser


# Options chosen by measurement (bench/bench_codec.py, table in docs/benchmarks-codec.md): attribute
# handling off makes the parse cheaper, which covers keeping string whitespace; force_list for
# value/member/param measured slower than letting the walk accept "one child or a list", so it is not used.
_PARSE_OPTIONS: dict[str, Any] = {
    "expat": _SafeExpat,
    "disable_entities": True,
    "xml_attribs": False,
    "strip_whitespace": False,
}

_TEXT = "#text"  # xmltodict's key for character data beside child elements (whitespace here)


def _value(v: Any) -> Any:
    """Decode one `<value>` as xmltodict gave it: text, None, or {tag: inner} (plus whitespace text)."""
    if v.__class__ is str:
        return v  # untyped string: whitespace is data
    if v is None:
        return ""  # <value/> or <value></value>
    for tag, inner in v.items():
        if tag != _TEXT:
            return _DECODERS[tag](inner)
    raise KeyError("value without a type")  # pragma: no cover - a dict always holds a child element


def _string(inner: Any) -> str:
    if inner is None:
        return ""
    if inner.__class__ is str:
        return inner
    raise TypeError("<string> holds elements")


def _int(inner: Any) -> int:
    return int(inner)


def _boolean(inner: Any) -> bool:
    return _BOOLEANS[inner.strip()]


def _double(inner: Any) -> float:
    return float(inner)


def _datetime(inner: Any) -> datetime:
    return parse_datetime(inner)


def _base64(inner: Any) -> bytes:
    # Line breaks inside the text are normal; anything else outside the alphabet is corruption.
    return base64.b64decode("".join(inner.split()), validate=True) if inner else b""


# The walk below inlines the untyped-string case of _value: most of Keap's data is untyped strings,
# and skipping a call per field is a large share of the walk's cost.


def _struct(inner: Any) -> dict:
    if inner.__class__ is dict:
        members = inner.get("member")
        if members is None:
            return {}
        if members.__class__ is dict:
            members = (members,)
        # A member with two <value>s arrives as a list, which _value refuses (AttributeError).
        return {(m["name"] or "").strip(): v if (v := m["value"]).__class__ is str else _value(v) for m in members}
    if inner is None or not inner.strip():
        return {}  # <struct/>, or only whitespace between the tags
    raise TypeError("<struct> holds text")


def _array(inner: Any) -> list:
    data = inner["data"]
    if data.__class__ is dict:
        if "value" not in data:
            return []  # only whitespace inside <data>
        values = data["value"]
        if values.__class__ is list:
            return [v if v.__class__ is str else _value(v) for v in values]
        return [_value(values)]
    if data is None or not data.strip():
        return []
    raise TypeError("<data> holds text")


def _nil(inner: Any) -> None:
    return None  # Keap never sends it; accepted so a stray <nil/> is not a parse failure


_BOOLEANS: Mapping[str, bool] = {"0": False, "1": True, "false": False, "true": True}

# XML-RPC tag → decoder; tags are as xmltodict reports them, so Keap's spacing never reaches here.
_DECODERS: Mapping[str, Callable[[Any], Any]] = {
    "string": _string,
    "int": _int,
    "i4": _int,
    "i8": _int,
    "boolean": _boolean,
    "double": _double,
    "dateTime.iso8601": _datetime,
    "base64": _base64,
    "struct": _struct,
    "array": _array,
    "nil": _nil,
}


def parse_datetime(text: str) -> datetime:
    """Parse Keap's `YYYYMMDDTHH:MM:SS` (also `YYYY-MM-DDTHH:MM:SS`) into a naive datetime.

    `fromisoformat` (3.11+) reads Keap's mixed basic-date/extended-time form directly and is ~40x
    faster than strptime, which matters in 1,000-contact responses.
    """
    return datetime.fromisoformat(text.strip())


def _unsafe(method: str | None) -> KeapUnsafeResponse:
    return KeapUnsafeResponse(
        "response refused: it declares a DOCTYPE or entities (possible XXE / entity expansion)",
        method=method,
    )


def _is_xml_char(code: int) -> bool:
    """Whether XML 1.0 allows the code point (its `Char` production)."""
    return code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF


def _drop_reference(found: re.Match[bytes]) -> bytes:
    number = found[1]
    try:
        code = int(number[1:], 16) if number[:1] == b"x" else int(number)
    except ValueError:  # pragma: no cover - the pattern admits digits only
        return found[0]
    return found[0] if _is_xml_char(code) else b""


# Keap has been seen answering with characters XML 1.0 forbids (`&#11;` in a contact's field), which no
# XML parser reads. What a body can hold that XML forbids → what it becomes: a reference to a forbidden
# character is dropped, other references stay; a raw forbidden character (controls other than tab/LF/CR,
# UTF-8-encoded surrogates, U+FFFE/FFFF) is dropped.
_FORBIDDEN_IN_BODY: tuple[tuple[re.Pattern[bytes], Callable[[re.Match[bytes]], bytes]], ...] = (
    (re.compile(rb"&#(x[0-9a-fA-F]{1,8}|[0-9]{1,10});"), _drop_reference),
    (re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]|\xed[\xa0-\xbf][\x80-\xbf]|\xef\xbf[\xbe\xbf]"), lambda _: b""),
)


def _without_forbidden(body: bytes | str) -> tuple[bytes, int]:
    """`body` with the characters XML 1.0 forbids dropped, and how many were."""
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    dropped = 0

    def counted(repair: Callable[[re.Match[bytes]], bytes]) -> Callable[[re.Match[bytes]], bytes]:
        def run(found: re.Match[bytes]) -> bytes:
            nonlocal dropped
            kept = repair(found)
            dropped += kept != found[0]
            return kept

        return run

    for pattern, repair in _FORBIDDEN_IN_BODY:
        data = pattern.sub(counted(repair), data)
    return data, dropped


class _Unparsed(Exception):
    """Internal: the body did not parse; the message is the reason (no response data in it)."""


def _parse(body: bytes | str, method: str | None) -> Any:
    """xmltodict's document for `body`; raises _Unparsed with the reason, or KeapUnsafeResponse."""
    try:
        return xmltodict.parse(body, **_PARSE_OPTIONS)
    except _Unsafe:
        raise _unsafe(method) from None
    except expat.ExpatError as exc:
        raise _Unparsed(f"response is not well-formed XML: {exc}") from None
    except ValueError as exc:
        # xmltodict's own entity guard, should expat ever report a declaration before the DOCTYPE.
        if "entities" in str(exc):
            raise _unsafe(method) from None
        raise _Unparsed(f"response could not be parsed: {exc}") from None


def decode_response(body: bytes | str, method: str | None = None) -> Any:
    """Decode a methodResponse body to its one value; a fault is raised as its KeapFault subclass.

    Characters XML 1.0 forbids (which Keap sometimes sends) are dropped and the body read again, with a
    warning that says how many (never what they were next to). Raises KeapUnsafeResponse for
    DOCTYPE/entity bodies and KeapMalformedResponse for anything that is still not a readable XML-RPC
    response (truncated, not XML). `method` only labels the errors.
    """
    try:
        doc = _parse(body, method)
    except _Unparsed as first:
        # The slow path only on failure: a well-formed answer is never scanned twice.
        repaired, dropped = _without_forbidden(body)
        if not dropped:
            raise KeapMalformedResponse(str(first), method=method) from None
        try:
            doc = _parse(repaired, method)
        except _Unparsed as exc:
            raise KeapMalformedResponse(str(exc), method=method) from None
        _log.warning(
            "Keap's answer to %s held %d character(s) XML 1.0 forbids; read with them dropped",
            method or "a call",
            dropped,
        )
    try:
        response = doc["methodResponse"]
        params = response.get("params") if response.__class__ is dict else None
        if params is not None:
            return _value(params["param"]["value"])
        fault = _value(response["fault"]["value"])
        code, text = fault["faultCode"], fault["faultString"]
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as exc:
        # Only element names are quoted: value errors would echo response data (contact details).
        detail = f"no or unexpected element {exc}" if isinstance(exc, KeyError) else type(exc).__name__
        raise KeapMalformedResponse(f"response is not an XML-RPC methodResponse ({detail})", method=method) from None
    raise error_from_fault(code, text, method=method)


# ================================================================================================
# Encoding
# ================================================================================================

_I4_MIN, _I4_MAX = -(2**31), 2**31 - 1

# Characters XML 1.0 cannot carry at all (controls other than tab/LF/CR, surrogates, U+FFFE/FFFF),
# plus the ones that need escaping; one search decides whether a string takes the slow path.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NEEDS_WORK = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# \r is escaped as a character reference: a literal CR would be normalised to LF by any XML parser.
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})


class _Problem(Exception):
    """Internal: an unencodable value; the path is collected on the way out of the containers."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []


_needs_work = _NEEDS_WORK.search


def _escape(text: str) -> str:
    if _needs_work(text) is None:
        return text
    bad = _INVALID_XML.search(text)
    if bad is not None:
        raise _Problem(
            f"string holds character U+{ord(bad.group()):04X} at index {bad.start()}, which XML 1.0 cannot carry"
        )
    return text.translate(_ESCAPES)


def _dump_str(value: str, out: list[str]) -> None:
    out.append(f"<string>{_escape(value)}</string>")


def _dump_bool(value: bool, out: list[str]) -> None:
    out.append("<boolean>1</boolean>" if value else "<boolean>0</boolean>")


def _dump_int(value: int, out: list[str]) -> None:
    if _I4_MIN <= value <= _I4_MAX:
        out.append(f"<int>{int(value)}</int>")
    else:
        raise _Problem("int is outside Keap's 32-bit range (-2**31 .. 2**31-1)")


def _dump_float(value: float, out: list[str]) -> None:
    if math.isfinite(value):
        out.append(f"<double>{float(value)!r}</double>")
    else:
        raise _Problem(f"float {value!r} has no XML-RPC form")


def format_datetime(value: datetime | date) -> str:
    """Keap's dateTime.iso8601 text `YYYYMMDDTHH:MM:SS` (a date is midnight; microseconds are dropped)."""
    # isoformat is C-fast; Keap's form is the ISO one without the date's dashes.
    if isinstance(value, datetime):
        return value.replace(microsecond=0, tzinfo=None).isoformat().replace("-", "", 2)
    return value.isoformat().replace("-", "", 2) + "T00:00:00"


def _dump_datetime(value: datetime, out: list[str]) -> None:
    if value.tzinfo is not None:
        raise _Problem("datetime has a timezone; Keap takes naive app-local (US Eastern) times")
    if value.microsecond:
        raise _Problem("datetime has microseconds; Keap keeps whole seconds (use .replace(microsecond=0))")
    out.append(f"<dateTime.iso8601>{value.isoformat().replace('-', '', 2)}</dateTime.iso8601>")


def _dump_date(value: date, out: list[str]) -> None:
    out.append(f"<dateTime.iso8601>{format_datetime(value)}</dateTime.iso8601>")


def _dump_bytes(value: bytes, out: list[str]) -> None:
    out.append(f"<base64>{base64.b64encode(value).decode('ascii')}</base64>")


def _dump_list(value: Sequence[Any], out: list[str]) -> None:
    append = out.append
    append("<array><data>")
    for i, item in enumerate(value):
        try:
            if item.__class__ is str and _needs_work(item) is None:
                append(f"<value><string>{item}</string></value>")
                continue
            append("<value>")
            (_ENCODERS.get(item.__class__) or _dumper(item))(item, out)
        except _Problem as problem:
            problem.path.append(f"[{i}]")
            raise
        append("</value>")
    append("</data></array>")


# Escaped member names by field name: a relay sends the same few dozen names over and over.
_NAMES: dict[str, str] = {}
_NAMES_MAX = 4096


def _member_name(key: Any) -> str:
    if not isinstance(key, str):
        raise _Problem("struct key is not a string")
    name = _escape(key)
    if key.__class__ is str and len(_NAMES) < _NAMES_MAX:
        _NAMES[key] = name
    return name


def _dump_dict(value: Mapping[Any, Any], out: list[str]) -> None:
    # The hot loop of an `add`/`update` call: strings (most fields) take one append and no calls.
    append = out.append
    append("<struct>")
    for key, item in value.items():
        try:
            name = _NAMES.get(key) if key.__class__ is str else None
            if name is None:
                name = _member_name(key)
            if item.__class__ is str and _needs_work(item) is None:
                append(f"<member><name>{name}</name><value><string>{item}</string></value></member>")
                continue
            append(f"<member><name>{name}</name><value>")
            (_ENCODERS.get(item.__class__) or _dumper(item))(item, out)
        except _Problem as problem:
            problem.path.append(f'["{key}"]' if isinstance(key, str) else f"[{key!r}]")
            raise
        append("</value></member>")
    append("</struct>")


def _dump_none(value: None, out: list[str]) -> None:
    raise _Problem("None cannot be sent: Keap rejects <nil/> (omit the field, or send '' to blank it)")


# Python type → serializer. Exact types hit directly; subclasses (IntEnum, OrderedDict…) are found
# through the MRO once and cached. bool precedes int and datetime precedes date in every MRO.
_ENCODERS: dict[type, Callable[[Any, list[str]], None]] = {
    str: _dump_str,
    bool: _dump_bool,
    int: _dump_int,
    float: _dump_float,
    datetime: _dump_datetime,
    date: _dump_date,
    bytes: _dump_bytes,
    bytearray: _dump_bytes,
    list: _dump_list,
    tuple: _dump_list,
    dict: _dump_dict,
    type(None): _dump_none,
}


def _dumper(value: Any) -> Callable[[Any, list[str]], None]:
    try:
        return _ENCODERS[value.__class__]
    except KeyError:
        pass
    for base in type(value).__mro__[1:]:
        if base in _ENCODERS:
            _ENCODERS[type(value)] = _ENCODERS[base]
            return _ENCODERS[base]
    raise _Problem(f"{type(value).__name__} values have no XML-RPC form")


def encode_call(method: str, params: Sequence[Any]) -> bytes:
    """Serialize a methodCall (UTF-8 bytes with an XML declaration).

    `params` are all of the call's parameters, the key placeholder included, so an error's path
    (`params[1]["Id"]`) counts as the API document does. Raises KeapRequestError (KeapEncodeError) naming that path.
    """
    out = ["<?xml version='1.0' encoding='UTF-8'?>\n<methodCall><methodName>"]
    try:
        out.append(_escape(method))
    except _Problem as problem:
        raise KeapRequestError(f"method name: {problem.reason}", method=method, kind=ENCODE) from None
    out.append("</methodName><params>")
    for i, param in enumerate(params):
        out.append("<param><value>")
        try:
            _dumper(param)(param, out)
        except _Problem as problem:
            path = f"params[{i}]" + "".join(reversed(problem.path))
            raise KeapRequestError(f"{path}: {problem.reason}", method=method, kind=ENCODE) from None
        except RecursionError:
            raise KeapRequestError(
                f"params[{i}]: structure is recursive or too deep", method=method, kind=ENCODE
            ) from None
        out.append("</value></param>")
    out.append("</params></methodCall>\n")
    return "".join(out).encode("utf-8")
