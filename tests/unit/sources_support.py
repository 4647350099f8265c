"""Helpers for the source tests: send a vendor's body through ingest signed the vendor's way, read what it queued."""

from __future__ import annotations

import json
from typing import Any

from keap_relay.aws import ingest
from keap_relay.aws.http import Request
from keap_relay.events.kinds import by_name
from keap_relay.events.sources import sign_request

# A P-256 key pair made for these tests (PKCS#8 private, SPKI public), as SendGrid's verification key would be.
SG_PRIVATE = (
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgFS2AtgOdXgpQY6nshgvScf4ka1JwBGyVzp9wH3m8mdqhRANCAAQS8yRYl"
    "R7NL51L9P8RiHRDs1HhfnlSsJeFd/ctVCg5OA/F1YydgKy+wBdle4DyQToO5/iM3PfoN4PHDv02kikY"
)
SG_PUBLIC = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEvMkWJUezS+dS/T/EYh0Q7NR4X55UrCXhXf3LVQoOTgPxdWMnYCsvsAXZXuA8kE6Duf4jNz3"
    "6DeDxw79NpIpGA=="
)


def accept(
    kind: str,
    source: str,
    body: Any,
    *,
    secret: str,
    verify_with: str | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    method: str = "POST",
    **kw: Any,
) -> ingest.Accepted:
    """What ingest makes of `body` (bytes, or JSON to serialise) POSTed to the kind's URL for `source`, signed
    with `secret` through the adapter's sign() (`kw` go to it) and checked with `verify_with` (default `secret`);
    `headers` and `query` replace the signed ones."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    signed = sign_request(source, raw, secret, **kw)
    hdrs = {k.lower(): v for k, v in (signed.headers if headers is None else headers).items()}
    query = signed.query if query is None else query
    request = Request(method, f"/{by_name(kind).folder}/{source}", source, hdrs, query, signed.body)
    return ingest.accept(request, kind, {source: verify_with or secret}.get)


def mapped(accepted: ingest.Accepted, source: str, *, kind: str) -> list[dict[str, Any]]:
    """The events queued, each checked to be of `kind` from `source`, without those two keys."""
    assert accepted.reply is None, accepted.reply
    assert all((event["kind"], event["source"]) == (kind, source) for event in accepted.events), accepted.events
    return [{k: v for k, v in event.items() if k not in ("kind", "source")} for event in accepted.events]


def one_mapped(accepted: ingest.Accepted, source: str, *, kind: str) -> dict[str, Any]:
    """The one event queued, checked to be of `kind` from `source`, without those two keys."""
    [event] = mapped(accepted, source, kind=kind)
    return event


def only_event(accepted: ingest.Accepted) -> dict[str, Any]:
    """The one event queued."""
    assert accepted.reply is None, accepted.reply
    [event] = accepted.events
    return event


def ignored(accepted: ingest.Accepted, *words: str) -> None:
    """Assert the delivery was answered `ignored`, with nothing queued, in a detail naming each of `words`."""
    assert accepted.events == [] and accepted.reply["status"] == "ignored"
    assert all(word in accepted.reply["detail"] for word in words), accepted.reply["detail"]
