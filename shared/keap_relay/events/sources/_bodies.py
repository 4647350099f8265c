"""Reading a webhook's body the way its content type says: JSON, form-encoded or multipart fields."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from ..errors import BodyUnparseable, UnsupportedMediaType

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
JSON = "application/json"


def media_type(headers: Mapping[str, str]) -> str:
    """The content type without its parameters, lower-cased ('' when absent)."""
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def require_media_type(headers: Mapping[str, str], accepted: tuple[str, ...]) -> str:
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


# How a body of named fields is read, by content type (Gravity Forms and Jotform send more than one).
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
