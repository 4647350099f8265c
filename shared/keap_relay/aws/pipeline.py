"""One function's pipeline: each trigger (HTTP, SQS, EventBridge, direct) into validate → plan → run."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..events.canonical import EventInvalid, validate_event
from ..events.errors import WebhookRejected
from ..routing.routes import RoutesError, load_routes
from . import http, idempotency, observe, queue
from .config import ConfigError, Settings

if TYPE_CHECKING:  # the planner and runner are the worker path's: a webhook is answered without them
    from ..routing.runner import Checkpoints, RunResult, SequenceRunner

log = logging.getLogger("keap_relay.pipeline")
RETRY_AFTER_SECONDS = "60"  # what a sender is told to wait when Keap or SQS is down


class EventFailed(Exception):
    """An event could not be applied; `failure` says why, `transient` whether a retry may succeed."""

    def __init__(
        self, failure: queue.Failure, result: RunResult | None = None, retry_after: float | None = None
    ) -> None:
        self.failure = failure
        self.result = result
        self.retry_after = retry_after  # when Keap said how long to wait (a 429)
        self.transient = failure.transient
        super().__init__(f"{failure.error_class} at {failure.step}: {failure.message}")


def _trigger(event: Any) -> str:
    """Which trigger delivered `event`: sqs, http, eventbridge or direct (a bare canonical event)."""
    if not isinstance(event, dict):
        return "direct"
    records = event.get("Records")
    if (
        isinstance(records, list)
        and records
        and isinstance(records[0], dict)
        and records[0].get("eventSource") == "aws:sqs"
    ):
        return "sqs"
    if http.is_http_event(event):
        return "http"
    if "detail-type" in event and "detail" in event:
        return "eventbridge"
    return "direct"


class Pipeline:
    """Built once per container; everything heavy (client, routes, validators) on first use."""

    def __init__(self, kind: str, settings: Settings | None = None, runner: SequenceRunner | None = None) -> None:
        self.kind = kind
        self._settings = settings
        self._runner = runner
        self._idempotency: idempotency.Idempotency | None = None
        self._once: Callable[..., dict[str, Any]] | None = None
        self._context: Any = None
        self._rerun_uncertain = False  # set while a redriven OutcomeUnknown dead letter is processed
        self._records_done = 0  # records of the current SQS batch that were started

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_env(self.kind)
        return self._settings

    @property
    def runner(self) -> SequenceRunner:
        if self._runner is None:
            from ..routing.keap_port import build_port
            from ..routing.runner import SequenceRunner

            settings = self.settings
            # The routes check: a rule the chosen API cannot run fails here, before any call, naming the rule.
            load_routes(settings.routes_file, settings.keap_api)
            shared = None
            if settings.keap_rate_limit and settings.idempotency_table:
                from .budget import SharedBudget

                shared = SharedBudget(settings.idempotency_table, settings.keap_rate_limit)
            port = build_port(
                settings.keap_api,
                url=settings.keap_url,
                rest_url=settings.keap_rest_url,
                api_key=settings.keap_api_key(),
                max_calls_per_second=settings.max_calls_per_second,
                rate_limiter=shared,
            )
            self._runner = SequenceRunner(port, settings.keap_concurrency)
        return self._runner

    # -- the worker path ---------------------------------------------------------------------------
    @property
    def idempotency(self) -> idempotency.Idempotency | None:
        """Once-only application per event key, when IDEMPOTENCY_TABLE is set."""
        if self._idempotency is None and self.settings.idempotency_table:
            keep = idempotency.keep_seconds(self.settings.max_event_age_seconds)
            self._idempotency = idempotency.Idempotency(
                self.settings.idempotency_table, keep, self.settings.function_timeout_seconds
            )
        return self._idempotency

    def _apply(self, event: dict[str, Any], checkpoints: Checkpoints | None = None) -> dict[str, Any]:
        from ..routing.plan import plan

        routes = load_routes(self.settings.routes_file, self.settings.keap_api)  # loaded once per container
        result = self.runner.run(plan(event, routes), checkpoints, rerun_uncertain=self._rerun_uncertain)
        log.info(
            "applied %s event %s: contacts %s, %d steps",
            self.kind,
            event.get("id"),
            result.contact_ids,
            len(result.steps),
        )
        return result.to_dict()

    def _apply_once(self, event: dict[str, Any]) -> dict[str, Any]:
        idempotency = self.idempotency
        if idempotency is None:
            return self._apply(event)
        if self._once is None:
            self._once = idempotency.wrap(lambda ev: self._apply(ev, idempotency.checkpoints(ev)))
        return self._once(event, self._context)

    def process(self, event: Any, attempts: int = 1) -> dict[str, Any]:
        """Validate, plan and run one canonical event once; raise EventFailed with the reason on failure.

        A duplicate of an event already applied returns the first result and calls Keap zero times.
        """
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyPersistenceLayerError,
        )

        from ..routing.runner import SequenceFailed

        ident = event if isinstance(event, dict) else {}
        where = {"kind": self.kind, "source": str(ident.get("source") or ""), "event_id": str(ident.get("id") or "")}
        observe.correlate(where["event_id"], self.kind)
        try:
            result = self._apply_once(validate_event(event, self.kind))
            observe.count("EventsApplied", self.kind)
            return result
        except EventInvalid as exc:
            raise EventFailed(queue.Failure("EventInvalid", str(exc), "validate", attempts, False, **where)) from exc
        except (RoutesError, ConfigError) as exc:
            transient = bool(getattr(exc, "transient", False))
            failure = queue.Failure(type(exc).__name__, str(exc), "configure", attempts, transient, **where)
            raise EventFailed(failure) from exc
        except SequenceFailed as exc:
            if exc.step.status == "uncertain":
                observe.count("StepOutcomeUnknown", self.kind)
                log.warning("event %s: %s", where["event_id"], exc.step.error)
            step = f"{exc.step.key} ({exc.step.call})"
            failure = queue.Failure(
                exc.step.error_class or "Error", exc.step.error or "", step, attempts, exc.transient, **where
            )
            raise EventFailed(failure, exc.result, getattr(exc.cause, "retry_after", None)) from exc
        except IdempotencyAlreadyInProgressError as exc:
            # Another delivery of the same event is being applied right now: try again after it.
            failure = queue.Failure(
                "InProgress", "another delivery of this event is being applied", "idempotency", attempts, True, **where
            )
            raise EventFailed(failure) from exc
        except IdempotencyPersistenceLayerError as exc:
            failure = queue.Failure("IdempotencyStoreError", str(exc), "idempotency", attempts, True, **where)
            raise EventFailed(failure) from exc

    def _dead_letter(self, body: str, failure: queue.Failure) -> bool:
        """Send to the DLQ when there is one; False when there is none (the caller must not drop it)."""
        if not self.settings.dlq_url:
            return False
        queue.dead_letter(self.settings.dlq_url, body, failure)
        observe.count("EventsDeadLettered", self.kind)
        log.warning(
            "dead-lettered %s event %s: %s at %s", failure.kind, failure.event_id, failure.error_class, failure.step
        )
        return True

    def _retry_later(self, record: Any, retry: queue.Retry, wait: float | None) -> bool:
        """Re-queue a transiently failed record with a growing delay; False when it must not wait longer."""
        if not self.settings.queue_url or retry.age() > self.settings.max_event_age_seconds:
            return False
        delay = retry.next_delay(self.settings.retry_base_seconds, wait)
        queue.requeue(self.settings.queue_url, record.body, retry.next(delay))
        observe.count("EventsRetried", self.kind)
        log.info("event will be retried in %.0f s (retry %d)", delay, retry.retries + 1)
        return True

    def _out_of_time(self) -> bool:
        remaining = getattr(self._context, "get_remaining_time_in_millis", None)
        if remaining is None or self._records_done == 0:
            return False  # the first record of a batch always runs, so every invocation makes progress
        # One event's worth of time must be left: a third of the function's timeout, at least 5 s.
        return remaining() < max(5000, self.settings.function_timeout_seconds * 1000 // 3)

    def _on_record(self, record: Any) -> None:
        retry = queue.Retry.of(record)
        attempts = retry.attempts
        try:
            event = json.loads(record.body)
        except ValueError as exc:
            failure = queue.Failure(
                "BodyUnparseable", f"message body is not JSON: {exc}", "parse", attempts, False, self.kind
            )
            if not self._dead_letter(record.body, failure):
                raise
            return
        if isinstance(event, dict) and "detail-type" in event and "detail" in event:
            # An EventBridge envelope: moto ignores the rule's InputPath, and a DLQ'd delivery keeps it too.
            event = event["detail"]
        if retry.waiting():
            # Keap's quota is not back yet: wait again without calling Keap.
            queue.requeue(self.settings.queue_url or "", record.body, retry.next(retry.remaining(), same=True))
            return
        if self._out_of_time():
            # Too little of the invocation is left to apply this event (the Keap budget paces a batch): hand it
            # back for the next invocation, without using up a receive, rather than be cut off mid-sequence.
            if self.settings.queue_url:
                queue.requeue(self.settings.queue_url, record.body, retry.next(0, same=True))
                return
            raise TimeoutError("too little time left in this invocation; SQS will redeliver the record")
        from ..routing.runner import OUTCOME_UNKNOWN

        # A person redrove an event whose once-only step had an unknown outcome, having checked Keap: run it.
        self._rerun_uncertain = retry.redriven_error == OUTCOME_UNKNOWN
        self._records_done += 1
        try:
            self.process(event, attempts)
        except EventFailed as exc:
            if exc.transient and self._retry_later(record, retry, exc.retry_after):
                return
            last = retry.receives >= self.settings.max_receive_count
            # Without a queue to re-send to, a transient failure goes back to SQS to be redelivered, unless
            # this was the last receive: then we dead-letter it ourselves, so its reason travels with it.
            if exc.transient and not last and not self.settings.queue_url:
                observe.count("EventsRetried", self.kind)
                raise
            if not self._dead_letter(record.body, exc.failure):
                raise
        finally:
            self._rerun_uncertain = False

    def _on_sqs(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

        self._records_done = 0
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return process_partial_response(
            event=event, record_handler=self._on_record, processor=processor, context=context
        )

    def _inline(self, event: Any) -> dict[str, Any]:
        """Direct invokes and EventBridge: process now; dead-letter permanent failures when a DLQ exists."""
        try:
            return {"status": "applied", "result": self.process(event)}
        except EventFailed as exc:
            if not exc.transient and self._dead_letter(json.dumps(event, default=str), exc.failure):
                return {
                    "status": "dead_lettered",
                    "reason": exc.failure.attributes()["ErrorMessage"]["StringValue"],
                    "error_class": exc.failure.error_class,
                    "step": exc.failure.step,
                }
            raise

    def _on_eventbridge(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        if event.get("detail-type") != self.kind:
            detail = f"detail-type must be {self.kind!r} for this function, got {event.get('detail-type')!r}"
            failure = queue.Failure("EventInvalid", detail, "validate", 1, False, self.kind)
            if self._dead_letter(json.dumps(event.get("detail"), default=str), failure):
                return {"status": "dead_lettered", "reason": detail}
            raise EventFailed(failure)
        return self._inline(event["detail"])

    def _on_direct(self, event: Any, context: Any) -> dict[str, Any]:
        return self._inline(event)

    # -- the ingest path ---------------------------------------------------------------------------
    def _on_http(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        from . import ingest  # the source adapters: only the webhook path reads them

        try:
            accepted = ingest.accept(http.parse_request(event), self.kind, self.settings.webhook_secret)
        except WebhookRejected as exc:
            observe.count("WebhooksRejected", self.kind)
            log.info("rejected webhook: %d %s", exc.status, exc.error)
            return http.error(exc.status, exc.error, exc.detail)
        except ConfigError as exc:  # our side (e.g. the secrets are not set yet): the sender should retry
            log.error("cannot check webhooks: %s", exc)
            return http.error(
                503,
                "unavailable",
                "the webhook secrets cannot be read; retry later",
                {"retry-after": RETRY_AFTER_SECONDS},
            )
        if accepted.reply is not None:
            return http.respond(200, accepted.reply)
        events = accepted.events
        if self.settings.queue_url:
            try:
                for item in events:
                    queue.enqueue(self.settings.queue_url, item)
            except Exception as exc:  # SQS unreachable: the sender must retry, so answer 503
                log.error("enqueue failed: %s", type(exc).__name__)
                return http.error(
                    503, "unavailable", "could not queue the event; retry later", {"retry-after": RETRY_AFTER_SECONDS}
                )
            ids = [item["id"] for item in events]
            observe.count("EventsQueued", self.kind, len(ids))
            return http.respond(accepted.status, {"status": "queued", "id": ids[0], "ids": ids})
        return self._on_http_inline(events)

    def _on_http_inline(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        results = []
        for item in events:
            try:
                results.append(self._inline(item))
            except EventFailed as exc:
                if exc.transient:
                    return http.error(503, "keap_unavailable", str(exc), {"retry-after": RETRY_AFTER_SECONDS})
                return http.error(502, "keap_rejected", str(exc))
        body: dict[str, Any] = {"status": results[0]["status"], "id": events[0]["id"], "results": results}
        return http.respond(200, body)

    def handle(self, event: Any, context: Any = None) -> dict[str, Any]:
        """The Lambda entry point: dispatch on the trigger's shape."""
        handlers: dict[str, Callable[[Any, Any], dict[str, Any]]] = {
            "sqs": self._on_sqs,
            "http": self._on_http,
            "eventbridge": self._on_eventbridge,
            "direct": self._on_direct,
        }
        observe.logger()
        self._context = context
        try:
            return handlers[_trigger(event)](event, context)
        finally:
            observe.flush(self.kind)


@functools.cache
def pipeline_for(kind: str) -> Pipeline:
    """The container's pipeline for a kind (one per container, as Lambda reuses it across invokes)."""
    return Pipeline(kind)


def lambda_handler_for(kind: str) -> Callable[[Any, Any], dict[str, Any]]:
    """A Lambda handler for one kind; functions/<kind>/app.py is just this."""

    def handler(event: Any, context: Any = None) -> dict[str, Any]:
        return pipeline_for(kind).handle(event, context)

    handler.__doc__ = f"Lambda handler for {kind} events (HTTP, SQS, EventBridge or direct)."
    return handler
