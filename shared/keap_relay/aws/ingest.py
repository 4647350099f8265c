"""The ingest path's decision: which events a webhook request carries, or why it is refused."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..events.canonical import EventInvalid, validate_event
from ..events.errors import EventRejected, MethodNotAllowed, SignatureInvalid, UnknownSource
from ..events.sources import adapter
from .http import Request


@dataclass
class Accepted:
    """What an accepted request yields: canonical events to queue, or a reply owed without any event."""

    events: list[dict[str, Any]] = field(default_factory=list)
    reply: dict[str, Any] | None = None  # e.g. a vendor's URL-validation ping: answered 200, nothing queued


def accept(request: Request, kind: str, secret_for: Callable[[str], str | None]) -> Accepted:
    """Verify and parse one webhook request for a function of `kind`; raise WebhookRejected to refuse it."""
    source = adapter(request.source)
    if source is None:
        raise UnknownSource(f"no source named {request.source!r}")
    if request.method != "POST":
        raise MethodNotAllowed(f"{request.method} is not accepted here; webhooks are POSTed")
    secret = secret_for(request.source)
    if not secret:
        raise SignatureInvalid(f"no webhook secret is configured for source {request.source!r}")
    source.verify(request.headers, request.body, secret)
    events = source.parse(request.headers, request.body)
    for event in events:
        event.setdefault("kind", kind)
        event.setdefault("source", request.source)
        try:
            validate_event(event, kind)
        except EventInvalid as exc:
            raise EventRejected(str(exc)) from None
    return Accepted(events)
