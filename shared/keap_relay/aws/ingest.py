"""The ingest path's decision: which events a webhook request carries, or why it is refused."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..events.canonical import EventInvalid, validate_event
from ..events.errors import (
    BodyUnparseable,
    EventIgnored,
    EventRejected,
    MethodNotAllowed,
    SignatureInvalid,
    UnknownSource,
    WebhookRejected,
)
from ..events.kinds import kind_named
from ..events.sources import DEFAULT_SUCCESS_STATUS, TOKEN_PARAM, Source, source_spec, sources_for, verify_token
from .http import Request

log = logging.getLogger("keap_relay.ingest")


@dataclass
class Accepted:
    """What an accepted request yields: canonical events to queue, or a reply owed without any event.

    `status` is what to answer once the events are queued: 202, or 200 for the vendors that count
    nothing else as delivered (Elementor, Gumroad, Lemon Squeezy, Mailgun).
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    reply: dict[str, Any] | None = None  # a vendor's URL check or an ignored event: answered 200, nothing queued
    status: int = DEFAULT_SUCCESS_STATUS


def _source(request: Request, kind: str) -> Source:
    spec = source_spec(request.source)
    if spec is None:
        raise UnknownSource(
            f"no source named {request.source[:64]!r}; "
            f"/{kind_named(kind).folder}/ accepts: {', '.join(sources_for(kind))}"
        )
    if kind not in spec.kinds:
        where = " or ".join(f"/{kind_named(k).folder}/{spec.name}" for k in spec.kinds)
        raise UnknownSource(f"source {spec.name!r} does not send {kind} events here; its URL is {where}")
    if request.method not in spec.methods:
        raise MethodNotAllowed(
            f"{request.method[:16]} is not accepted here; {spec.name} webhooks are {' or '.join(spec.methods)}"
        )
    return spec


def _secret(spec: Source, secret_for: Callable[[str], str | None]) -> str:
    secret = secret_for(spec.name)
    if not secret:
        raise SignatureInvalid(f"no webhook secret is configured for source {spec.name!r}")
    return secret


def _guard(step: str, spec: Source, call: Callable[[], Any], fallback: type[WebhookRejected]) -> Any:
    """Run an adapter's verify or parse; an unexpected error in it is our bug, never the sender's crash:
    it is logged (its type only, not the body) and answered with `fallback`."""
    try:
        return call()
    except (WebhookRejected, EventIgnored):
        raise
    except Exception as exc:
        log.warning("%s adapter failed in %s on a request: %s", spec.name, step, type(exc).__name__)
        raise fallback(f"the request could not be read as a {spec.name} webhook ({step})") from None


def _validate(events: list[dict[str, Any]], spec: Source, kind: str) -> None:
    for number, event in enumerate(events, 1):
        event.setdefault("kind", kind)
        event.setdefault("source", spec.name)
        where = f"event {number} of {len(events)}: " if len(events) > 1 else ""
        try:
            validate_event(event, kind)
        except EventInvalid as exc:
            hint = spec.field_hints.get(exc.field)
            hint = f" ({spec.name} sends it as {hint})" if hint and exc.reason == "is required" else ""
            # jsonschema quotes the offending value: clipped, as a sender may have sent 256 KiB of it
            raise EventRejected(f"{where}{str(exc)[:300]}{hint}") from None
        except Exception as exc:  # a validator bug must not become a 5xx for the sender
            log.warning("validating a %s event failed: %s", spec.name, type(exc).__name__)
            raise EventRejected(f"{where}the event could not be validated") from None


def accept(request: Request, kind: str, secret_for: Callable[[str], str | None]) -> Accepted:
    """Verify and parse one webhook request for a function of `kind`; raise WebhookRejected to refuse it.

    Order: the source and method; a vendor's handshake, which passes whatever authentication the vendor
    can give it (URL-token sources' checks carry the token, signed sources' pings are unsigned); the
    token or signature; then the body. Nothing about the body is said to a sender not yet authenticated
    (but Mailgun's signature is inside the body: one that is not JSON is a 400 there).
    """
    spec = _source(request, kind)
    by_token = spec.by_token and (TOKEN_PARAM in request.query or not spec.by_signature)
    if by_token:
        verify_token(request.query, _secret(spec, secret_for))
    reply = spec.handshake(request.method, request.headers, request.body) if spec.handshake else None
    if reply is not None:
        return Accepted(reply=reply, status=200)
    if request.method != "POST":
        raise MethodNotAllowed(f"{request.method[:16]} is only for {spec.name}'s URL check; events are POSTed")
    if not by_token:
        secret = _secret(spec, secret_for)
        _guard("verify", spec, lambda: spec.module.verify(request.headers, request.body, secret), SignatureInvalid)
    try:
        events = _guard("parse", spec, lambda: spec.module.parse(request.headers, request.body), BodyUnparseable)
    except EventIgnored as exc:
        return Accepted(reply={"status": "ignored", "detail": exc.detail}, status=200)
    if not isinstance(events, list) or not events:
        return Accepted(
            reply={"status": "ignored", "detail": f"no {kind} event in this {spec.name} delivery"}, status=200
        )
    _validate(events, spec, kind)
    return Accepted(events, status=spec.success_status)
