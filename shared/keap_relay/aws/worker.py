"""The worker's retry and dead-letter policy: SQS batches, EventBridge events and direct invokes."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import archive, observe, queue
from .invocation import Invocation, is_eventbridge_event
from .queue import EventFailed

if TYPE_CHECKING:
    from .pipeline import Pipeline

log = logging.getLogger("keap_relay.pipeline")


@dataclass
class Delivery:
    """One event as the worker hands it to the pipeline, with what its record says about applying it."""

    event: Any
    attempts: int = 1
    rerun_uncertain: bool = False  # a person redrove it after an unknown outcome: run those steps again
    replay: queue.Replay | None = None  # the replay that sent it (keap-relay replay): its own key, a filtered plan


def _dead_letter(pipeline: Pipeline, body: str, failure: queue.Failure) -> bool:
    """Send to the DLQ when there is one; False when there is none (the caller must not drop the event)."""
    settings = pipeline.settings
    if not settings.dlq_url:
        return False
    queue.dead_letter(settings.dlq_url, body, failure)
    observe.count("EventsDeadLettered", pipeline.kind)
    log.warning(
        "dead-lettered %s event %s: %s at %s", failure.kind, failure.event_id, failure.error_class, failure.step
    )
    return True


def _retry_later(pipeline: Pipeline, body: str, retry: queue.Retry, wait: float | None) -> bool:
    """Re-queue a transiently failed record with a growing delay; False when it must not wait longer."""
    settings = pipeline.settings
    if not settings.queue_url or retry.age() > settings.max_event_age_seconds:
        return False
    delay = retry.next_delay(settings.retry_base_seconds, wait)
    queue.requeue(settings.queue_url, body, retry.next(delay))
    observe.count("EventsRetried", pipeline.kind)
    log.info("event will be retried in %.0f s (retry %d)", delay, retry.retries + 1)
    return True


def _prepare(pipeline: Pipeline, record: Any, invocation: Invocation) -> tuple[queue.Retry, Delivery] | None:
    """A record's event, ready to apply; None when the record is settled already (dead-lettered, waiting, handed
    back for the next invocation); raising returns it to SQS."""
    from ..routing.runner import OUTCOME_UNKNOWN

    settings = pipeline.settings
    retry = queue.Retry.of(record)
    # Each receive reports the event's age since it was first queued: a retry is a new message, so SQS's
    # own oldest-message age starts again at every retry and would hide an outage.
    observe.count("EventAge", pipeline.kind, round(retry.age(), 1))
    try:
        event = _event_in(record.body)
    except ValueError as exc:
        failure = queue.Failure.permanent(
            "BodyUnparseable", f"message body is not JSON: {exc}", "parse", kind=pipeline.kind, attempts=retry.attempts
        )
        if not _dead_letter(pipeline, record.body, failure):
            raise
        return None
    if retry.waiting():
        # Keap's quota is not back yet: wait again without calling Keap.
        queue.requeue(settings.queue_url or "", record.body, retry.next(retry.remaining(), same=True))
        return None
    if invocation.out_of_time(settings.function_timeout_seconds):
        # Too little of the invocation is left to apply this event (the Keap budget paces a batch): hand it
        # back for the next invocation, without using up a receive, rather than be cut off mid-sequence.
        if settings.queue_url:
            queue.requeue(settings.queue_url, record.body, retry.next(0, same=True))
            return None
        raise TimeoutError("too little time left in this invocation; SQS will redeliver the record")
    # A person redrove an event whose once-only step had an unknown outcome, having checked Keap: run it.
    rerun = retry.redriven_error == OUTCOME_UNKNOWN
    return retry, Delivery(event, retry.attempts, rerun_uncertain=rerun, replay=retry.replay)


def _on_failure(pipeline: Pipeline, record: Any, retry: queue.Retry, exc: EventFailed) -> None:
    """A record whose event failed: re-queued, dead-lettered, or (raising) handed back to SQS."""
    settings = pipeline.settings
    if exc.transient and _retry_later(pipeline, record.body, retry, exc.retry_after):
        return
    last = retry.receives >= settings.max_receive_count
    # Without a queue to re-send to, a transient failure goes back to SQS to be redelivered, unless
    # this was the last receive: then we dead-letter it ourselves, so its reason travels with it.
    if exc.transient and not last and not settings.queue_url:
        observe.count("EventsRetried", pipeline.kind)
        raise exc
    if not _dead_letter(pipeline, record.body, exc.failure):
        raise exc


def _on_record(pipeline: Pipeline, record: Any, invocation: Invocation) -> None:
    """One record of a batch: applied, waited for, handed back, re-queued or dead-lettered; raising returns it."""
    prepared = _prepare(pipeline, record, invocation)
    if prepared is None:
        return
    retry, delivery = prepared
    invocation.records_started += 1
    try:
        pipeline.process(
            delivery.event,
            delivery.attempts,
            context=invocation.context,
            rerun_uncertain=delivery.rerun_uncertain,
            replay=delivery.replay,
        )
    except EventFailed as exc:
        _on_failure(pipeline, record, retry, exc)


def _apply_batch(pipeline: Pipeline, event: dict[str, Any], invocation: Invocation) -> dict[str, BaseException | None]:
    """The records of a batch applied together (REST v2): message id -> None when settled, else what to raise."""
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    settled: dict[str, BaseException | None] = {}
    ready: list[tuple[Any, queue.Retry, Delivery]] = []
    for raw in event.get("Records") or []:
        record = SQSRecord(raw)
        try:
            prepared = _prepare(pipeline, record, invocation)
        except Exception as exc:  # handed back to SQS, as a record handler raising would be
            settled[record.message_id] = exc
            continue
        settled[record.message_id] = None
        if prepared is not None:
            ready.append((record, *prepared))
    if not ready:
        return settled
    invocation.records_started += len(ready)
    try:
        outcomes = pipeline.process_batch([delivery for _, _, delivery in ready], context=invocation.context)
    except Exception as exc:  # nothing of the batch is known to be done: every record goes back to SQS
        log.exception("batch of %d %s events failed", len(ready), pipeline.kind)
        return {**settled, **{record.message_id: exc for record, _, _ in ready}}
    for (record, retry, _), outcome in zip(ready, outcomes, strict=True):
        if isinstance(outcome, EventFailed):
            try:
                _on_failure(pipeline, record, retry, outcome)
            except Exception as exc:
                settled[record.message_id] = exc
    return settled


def _batched(pipeline: Pipeline, event: dict[str, Any]) -> bool:
    """Whether a batch's events are applied together: on REST v2 (many contacts a call), more than one."""
    return pipeline.settings.keap_api == "rest" and len(event.get("Records") or []) > 1


def _event_in(body: str) -> Any:
    """The event a record carries: its JSON body, or the `detail` of an EventBridge envelope (moto ignores the
    rule's InputPath, and a DLQ'd delivery keeps it too). ValueError when the body is not JSON."""
    event = json.loads(body)
    return event["detail"] if is_eventbridge_event(event) else event


def _identity(body: str) -> dict[str, str]:
    """The event's source and id for a dead letter, when the body is an event (empty when it is not)."""
    try:
        event = _event_in(body)
    except ValueError:
        return {}
    if not isinstance(event, dict):
        return {}
    return {"source": str(event.get("source") or ""), "event_id": str(event.get("id") or "")}


def _hand_on_last_receives(pipeline: Pipeline, records: list[dict[str, Any]]) -> set[str]:
    """Records SQS will not deliver again if this invocation dies, handed on before any is worked on.

    A record reaches its last receive when the function ended (killed, out of memory, timed out) while the
    record was in its batch, receive after receive: the worker never got to it, so it could not say why. Died
    once more, SQS would move it to the DLQ with no reason (the fault run saw it). So it is sent again as a
    fresh message now (its first-queued time kept: MAX_EVENT_AGE_SECONDS bounds an event that kills every
    function), or, past that age, dead-lettered with the reason. Returns the message ids settled here."""
    settings = pipeline.settings
    if not settings.queue_url:
        return set()  # nowhere to send it again: the record's own last-receive handling applies
    settled: set[str] = set()
    for record in records:
        retry = queue.Retry.of(record)
        if retry.receives < settings.max_receive_count:
            continue
        body = str(record.get("body") or "")
        if retry.age() <= settings.max_event_age_seconds:
            queue.requeue(settings.queue_url, body, retry.next(0, same=True))
            log.warning("a record on its last receive (%d) was sent again as a new message", retry.receives)
        else:
            message = (
                f"the function ended {retry.receives} times while this event was in its batch (killed, out of "
                f"memory or timed out) and it is older than {settings.max_event_age_seconds} s"
            )
            failure = queue.Failure.permanent(
                "FunctionEnded", message, "receive", kind=pipeline.kind, attempts=retry.attempts, **_identity(body)
            )
            if not _dead_letter(pipeline, body, failure):
                continue  # no DLQ: SQS's own redrive is all that is left
        settled.add(str(record.get("messageId")))
    return settled


def on_sqs(pipeline: Pipeline, event: dict[str, Any], invocation: Invocation) -> dict[str, Any]:
    """A batch of the work queue: each record applied, re-queued or dead-lettered; the rest reported failed."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    handed_on = _hand_on_last_receives(pipeline, event["Records"])
    event = {**event, "Records": [r for r in event["Records"] if r.get("messageId") not in handed_on]}
    # The batch's new events are archived first, in one write; if it fails, they go back to SQS unapplied.
    handed_back = archive.keep_batch(pipeline.settings, pipeline.kind, event["Records"])
    event = {**event, "Records": [r for r in event["Records"] if r.get("messageId") not in handed_back]}
    if not event["Records"]:  # all settled or handed back above (Powertools refuses an empty batch)
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in handed_back]}
    if _batched(pipeline, event):
        settled = _apply_batch(pipeline, event, invocation)

        def handler(record: Any) -> None:
            error = settled.get(record.message_id)
            if error is not None:
                raise error

    else:

        def handler(record: Any) -> None:
            _on_record(pipeline, record, invocation)

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response = process_partial_response(
        event=event, record_handler=handler, processor=processor, context=invocation.context
    )
    response["batchItemFailures"] += [{"itemIdentifier": message_id} for message_id in handed_back]
    return response


def apply_inline(
    pipeline: Pipeline, event: Any, invocation: Invocation, received: datetime | None = None
) -> dict[str, Any]:
    """Process now (no queue between); dead-letter a permanent failure when a DLQ exists, raise the rest.

    The event is archived first (received: the EventBridge event's time, else now)."""
    archive.keep(pipeline.settings, pipeline.kind, event, received)
    try:
        return {"status": "applied", "result": pipeline.process(event, context=invocation.context)}
    except EventFailed as exc:
        if not exc.transient and _dead_letter(pipeline, json.dumps(event, default=str), exc.failure):
            return {
                "status": "dead_lettered",
                "reason": exc.failure.attributes()["ErrorMessage"]["StringValue"],
                "error_class": exc.failure.error_class,
                "step": exc.failure.step,
            }
        raise


def on_eventbridge(pipeline: Pipeline, event: dict[str, Any], invocation: Invocation) -> dict[str, Any]:
    """An event a rule delivered: applied inline, if it is this function's kind."""
    if event.get("detail-type") != pipeline.kind:
        detail = f"detail-type must be {pipeline.kind!r} for this function, got {event.get('detail-type')!r}"
        failure = queue.Failure.permanent("EventInvalid", detail, "validate", kind=pipeline.kind)
        if _dead_letter(pipeline, json.dumps(event.get("detail"), default=str), failure):
            return {"status": "dead_lettered", "reason": detail}
        raise EventFailed(failure)
    return apply_inline(pipeline, event["detail"], invocation, archive.eventbridge_time(event))


def on_direct(pipeline: Pipeline, event: Any, invocation: Invocation) -> dict[str, Any]:
    """A direct invoke (sam local invoke, tests): the canonical event applied inline."""
    return apply_inline(pipeline, event, invocation)
