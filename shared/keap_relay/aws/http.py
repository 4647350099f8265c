"""API Gateway HTTP API (payload v2) requests in, JSON responses out; bad input becomes a clear 4xx."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from ..events.errors import BodyUnparseable, PayloadTooLarge

MAX_BODY_BYTES = 256 * 1024  # SQS's message limit: a bigger webhook could never be queued


@dataclass(frozen=True)
class Request:
    """The parts of a webhook request the ingest path needs, with the body as the exact bytes sent."""

    method: str
    path: str
    source: str
    headers: dict[str, str]  # lower-cased names
    query: dict[str, str]  # may hold a source's ?token= secret: never logged, never in the repr
    body: bytes

    def __repr__(self) -> str:
        return (
            f"Request(method={self.method!r}, path={self.path!r}, source={self.source!r}, "
            f"headers={sorted(self.headers)}, query={sorted(self.query)}, body=<{len(self.body)} bytes>)"
        )


def is_http_event(event: dict[str, Any]) -> bool:
    return isinstance(event.get("requestContext"), dict) and "http" in event["requestContext"]


def _query(event: dict[str, Any]) -> dict[str, str]:
    """queryStringParameters (repeated names already joined with commas), else the raw query string."""
    params = event.get("queryStringParameters")
    if isinstance(params, dict):
        return {str(k): str(v) for k, v in params.items()}
    query: dict[str, str] = {}
    for name, value in parse_qsl(str(event.get("rawQueryString") or ""), keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    return query


def _body(event: dict[str, Any]) -> bytes:
    raw = event.get("body") or ""
    if not isinstance(raw, str):  # API Gateway always sends a string; anything else is not a webhook body
        raise BodyUnparseable("body must be a string (base64 when isBase64Encoded)")
    if len(raw) > 2 * MAX_BODY_BYTES:  # no need to decode a body that cannot fit either way
        raise PayloadTooLarge(f"body is over {MAX_BODY_BYTES} bytes (256 KiB), the limit")
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise BodyUnparseable("body is marked base64 but is not valid base64") from None
    else:
        body = raw.encode("utf-8", "surrogatepass")
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body is {len(body)} bytes; the limit is {MAX_BODY_BYTES} (256 KiB)")
    return body


def parse_request(event: dict[str, Any]) -> Request:
    """Build a Request from a payload-v2 event; the body stays bytes so signatures see what was signed."""
    http = event.get("requestContext", {}).get("http", {})
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    body = _body(event)
    path = str(event.get("rawPath") or http.get("path") or "")
    source = str((event.get("pathParameters") or {}).get("source") or path.rstrip("/").rsplit("/", 1)[-1])
    return Request(
        method=str(http.get("method") or "POST").upper(),
        path=path,
        source=source,
        headers=headers,
        query=_query(event),
        body=body,
    )


def respond(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A payload-v2 response with a JSON body."""
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", **(headers or {})},
        "body": json.dumps(payload, separators=(",", ":"), default=str),
    }


def error(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The one shape of every refusal: {"error": ..., "detail": ...}."""
    return respond(status, {"error": code, "detail": detail}, headers)
