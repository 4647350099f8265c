"""API Gateway HTTP API (payload v2) requests in, JSON responses out; bad input becomes a clear 4xx."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from ..events.errors import BodyUnparseable, PayloadTooLarge

MAX_BODY_BYTES = 256 * 1024  # SQS's message limit: a bigger webhook could never be queued


@dataclass(frozen=True)
class Request:
    """The parts of a webhook request the ingest path needs, with the body as the exact bytes sent."""

    method: str
    path: str
    source: str
    headers: dict[str, str]  # lower-cased names
    query: dict[str, str]
    body: bytes


def is_http_event(event: dict[str, Any]) -> bool:
    return isinstance(event.get("requestContext"), dict) and "http" in event["requestContext"]


def parse_request(event: dict[str, Any]) -> Request:
    """Build a Request from a payload-v2 event; the body stays bytes so signatures see what was signed."""
    http = event.get("requestContext", {}).get("http", {})
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise BodyUnparseable("body is marked base64 but is not valid base64") from None
    else:
        body = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body is {len(body)} bytes; the limit is {MAX_BODY_BYTES} (256 KiB)")
    path = str(event.get("rawPath") or http.get("path") or "")
    source = str((event.get("pathParameters") or {}).get("source") or path.rstrip("/").rsplit("/", 1)[-1])
    return Request(
        method=str(http.get("method") or "POST").upper(),
        path=path,
        source=source,
        headers=headers,
        query={str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()},
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
