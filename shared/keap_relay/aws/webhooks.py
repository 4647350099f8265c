"""The webhook answers: 202 once queued, 200 once applied inline, 4xx refused, 503 when the sender must retry."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..events.errors import WebhookRejected
from . import http, observe, queue
from .config import ConfigError
from .invocation import Invocation
from .queue import EventFailed
from .worker import apply_inline

if TYPE_CHECKING:
    from .pipeline import Pipeline

log = logging.getLogger("keap_relay.pipeline")
RETRY_AFTER_SECONDS = "60"  # what a sender is told to wait when Keap or SQS is down


def _retry_later(code: str, detail: str) -> dict[str, Any]:
    return http.error(503, code, detail, {"retry-after": RETRY_AFTER_SECONDS})


def on_http(pipeline: Pipeline, event: dict[str, Any], invocation: Invocation) -> dict[str, Any]:
    """A webhook through API Gateway: verified and parsed, then queued (or, without a queue, applied now)."""
    response = _answer(pipeline, event, invocation)
    observe.webhook_answered(pipeline.kind, int(response["statusCode"]))
    return response


def _answer(pipeline: Pipeline, event: dict[str, Any], invocation: Invocation) -> dict[str, Any]:
    from . import ingest  # the source adapters: only the webhook path reads them

    try:
        accepted = ingest.accept(http.parse_request(event), pipeline.kind, pipeline.settings.webhook_secret)
    except WebhookRejected as exc:
        observe.count("WebhooksRejected", pipeline.kind)
        log.info("rejected webhook: %d %s", exc.status, exc.error)
        return http.error(exc.status, exc.error, exc.detail)
    except ConfigError as exc:  # our side (e.g. the secrets are not set yet): the sender should retry
        log.error("cannot check webhooks: %s", exc)
        return _retry_later("unavailable", "the webhook secrets cannot be read; retry later")
    if accepted.reply is not None:
        return http.respond(200, accepted.reply)
    events = accepted.events
    queue_url = pipeline.settings.queue_url
    if not queue_url:
        return _apply_now(pipeline, events, invocation)
    try:
        for item in events:
            queue.enqueue(queue_url, item)
    except Exception as exc:  # SQS unreachable: the sender must retry, so answer 503
        log.error("enqueue failed: %s", type(exc).__name__)
        return _retry_later("unavailable", "could not queue the event; retry later")
    ids = [item["id"] for item in events]
    observe.count("EventsQueued", pipeline.kind, len(ids))
    observe.count("WebhooksAccepted", pipeline.kind)
    return http.respond(accepted.status, {"status": "queued", "id": ids[0], "ids": ids})


def _apply_now(pipeline: Pipeline, events: list[dict[str, Any]], invocation: Invocation) -> dict[str, Any]:
    """No work queue (sam local, tests): apply the events before answering; Keap's failure is the sender's 5xx."""
    results = []
    for item in events:
        try:
            results.append(apply_inline(pipeline, item, invocation))
        except EventFailed as exc:
            if exc.transient:
                return _retry_later("keap_unavailable", str(exc))
            return http.error(502, "keap_rejected", str(exc))
    observe.count("WebhooksAccepted", pipeline.kind)
    body: dict[str, Any] = {"status": results[0]["status"], "id": events[0]["id"], "results": results}
    return http.respond(200, body)
