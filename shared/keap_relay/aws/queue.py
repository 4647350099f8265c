"""The work queue and the dead-letter queue: enqueue canonical events, dead-letter failures with reasons."""

from __future__ import annotations

import functools
import json
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..routing.runner import RunResult

# The message attributes of a dead letter, in the order `keap-relay dlq` shows them. Redrives and operators
# read them for up to 14 days after they were written, so names never change.
DEAD_LETTER_ATTRIBUTES: tuple[str, ...] = (
    "ErrorClass",
    "ErrorMessage",
    "FailedStep",
    "AttemptCount",
    "Transient",
    "Kind",
    "Source",
    "EventId",
    "FailedAt",
)
MAX_ATTRIBUTE_TEXT = 1000  # keep reasons readable and well under SQS's 256 KiB message limit
# The message attributes that mark an event sent by `keap-relay replay`: the replay's name (part of the event's
# idempotency and checkpoint keys) and what it re-applies. Re-queues for retries and dead letters keep them, so a
# retried or redriven replayed event is still that replay.
REPLAY_ATTRIBUTES: tuple[str, ...] = ("ReplayName", "ReplayInclude")


@functools.cache
def sqs_client() -> Any:
    """One SQS client per container (AWS_ENDPOINT_URL points it at moto locally)."""
    import boto3

    return boto3.client("sqs")


@dataclass(frozen=True)
class Replay:
    """The replay an event was sent by: its name, and the parts of the plan it re-applies beside the contact and
    its tags (routing.plan.REPLAY_PARTS)."""

    name: str
    include: tuple[str, ...] = ()

    @classmethod
    def of(cls, record: Any) -> Replay | None:
        """The marker of a queue record (a Lambda SQS record, or its Powertools wrapper); None when not replayed."""
        raw = getattr(record, "raw_event", record)
        attrs = raw.get("messageAttributes") or {}
        name = (attrs.get("ReplayName") or {}).get("stringValue")
        if not name:
            return None
        include = str((attrs.get("ReplayInclude") or {}).get("stringValue") or "")
        return cls(name, tuple(part for part in include.split(",") if part and part != "-"))

    def attributes(self) -> dict[str, dict[str, str]]:
        """The marker as SQS message attributes (an attribute may not be empty: no parts is `-`)."""
        values = {"ReplayName": self.name, "ReplayInclude": ",".join(self.include) or "-"}
        return {name: {"DataType": "String", "StringValue": values[name]} for name in REPLAY_ATTRIBUTES}


@dataclass(frozen=True, kw_only=True)
class Failure:
    """Why an event failed; a dead letter carries it as message attributes beside the original body.

    Built by name: `permanent` (a retry cannot help; a person must look) or `retryable` (Keap or AWS was not
    available; dead-lettered only once its retries ran out), or with `transient=` where the cause decides.
    """

    error_class: str
    message: str
    step: str
    transient: bool
    kind: str
    attempts: int = 1
    source: str = ""
    event_id: str = ""
    replay: Replay | None = None  # a replayed event's dead letter carries its marker, so a redrive replays it

    @classmethod
    def permanent(cls, error_class: str, message: str, step: str, **where: Any) -> Failure:
        """`where`: kind, and attempts, source and event_id when known."""
        return cls(error_class=error_class, message=message, step=step, transient=False, **where)

    @classmethod
    def retryable(cls, error_class: str, message: str, step: str, **where: Any) -> Failure:
        """`where`: kind, and attempts, source and event_id when known."""
        return cls(error_class=error_class, message=message, step=step, transient=True, **where)

    def attributes(self) -> dict[str, dict[str, str]]:
        values = {
            "ErrorClass": self.error_class,
            "ErrorMessage": self.message[:MAX_ATTRIBUTE_TEXT] or "(none)",
            "FailedStep": self.step or "(none)",
            "AttemptCount": str(self.attempts),
            "Transient": "true" if self.transient else "false",
            "Kind": self.kind,
            "Source": self.source or "(unknown)",
            "EventId": self.event_id or "(unknown)",
            "FailedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        attributes = {
            name: {"DataType": "Number" if name == "AttemptCount" else "String", "StringValue": values[name]}
            for name in DEAD_LETTER_ATTRIBUTES
        }
        return attributes if self.replay is None else {**attributes, **self.replay.attributes()}


class EventFailed(Exception):
    """An event could not be applied; `failure` says why, `transient` whether a retry may succeed."""

    def __init__(self, failure: Failure, result: RunResult | None = None, retry_after: float | None = None) -> None:
        self.failure = failure
        self.result = result
        self.retry_after = retry_after  # when Keap said how long to wait (a 429)
        self.transient = failure.transient
        super().__init__(f"{failure.error_class} at {failure.step}: {failure.message}")


def event_attributes(event: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The message attributes a queued canonical event carries: Kind, Source, EventId."""
    return {
        name: {"DataType": "String", "StringValue": str(event.get(key) or "-")}
        for name, key in (("Kind", "kind"), ("Source", "source"), ("EventId", "id"))
    }


def message_body(event: dict[str, Any]) -> str:
    """A canonical event as a work queue's message body (compact JSON)."""
    return json.dumps(event, separators=(",", ":"))


def enqueue(queue_url: str, event: dict[str, Any]) -> str:
    """Send one canonical event to a work queue; returns the SQS message id."""
    response = sqs_client().send_message(
        QueueUrl=queue_url, MessageBody=message_body(event), MessageAttributes=event_attributes(event)
    )
    return str(response["MessageId"])


def dead_letter(dlq_url: str, body: str, failure: Failure) -> str:
    """Send the original body to the DLQ with the failure as attributes; returns the message id."""
    response = sqs_client().send_message(QueueUrl=dlq_url, MessageBody=body, MessageAttributes=failure.attributes())
    return str(response["MessageId"])


MAX_DELAY_SECONDS = 900  # SQS's DelaySeconds limit; longer waits are carried in NotBefore
JITTER = 0.2  # ± share of a delay, so events that failed together do not all return together


@dataclass(frozen=True)
class Retry:
    """How often a queued event has been tried and since when, carried in its message attributes.

    A transient failure is re-sent as a new message (delayed) instead of returned to the queue, so waiting
    out a Keap outage or quota does not use up the queue's receives (maxReceiveCount).
    """

    receives: int  # this message's ApproximateReceiveCount
    retries: int  # how many times the event was re-queued before
    first_seen: float  # epoch seconds the event was first queued
    not_before: float = 0.0  # epoch seconds before which Keap must not be called for it
    now: float = 0.0
    redriven_error: str | None = None  # ErrorClass of a dead letter moved back to the work queue
    replay: Replay | None = None  # the replay that sent the event, kept on every re-queue

    @classmethod
    def of(cls, record: Any, now: float | None = None) -> Retry:
        raw = getattr(record, "raw_event", record)
        attrs = raw.get("attributes") or {}
        message_attrs = raw.get("messageAttributes") or {}

        def attr(name: str, default: float) -> float:
            value = (message_attrs.get(name) or {}).get("stringValue")
            try:
                return float(value) if value is not None else default
            except ValueError:
                return default

        sent = float(attrs.get("SentTimestamp") or 0) / 1000 or time.time()
        return cls(
            receives=int(attrs.get("ApproximateReceiveCount") or 1),
            retries=int(attr("Retries", 0)),
            first_seen=attr("FirstSeenAt", sent),
            not_before=attr("NotBefore", 0.0),
            now=time.time() if now is None else now,
            redriven_error=(message_attrs.get("ErrorClass") or {}).get("stringValue"),
            replay=Replay.of(raw),
        )

    @property
    def attempts(self) -> int:
        return self.retries + self.receives

    def age(self) -> float:
        return self.now - self.first_seen

    def waiting(self) -> bool:
        return self.not_before > self.now + 1

    def remaining(self) -> float:
        return max(0.0, self.not_before - self.now)

    def next_delay(self, base: float, wait: float | None = None) -> float:
        """Keap's own wait when it gave one (a 429), else base doubling per retry, with jitter."""
        if wait is not None and wait > 0:
            return wait
        delay = base * (2 ** min(self.retries, 16))
        return delay * (1 + random.uniform(-JITTER, JITTER))

    def next(self, delay: float, same: bool = False) -> dict[str, Any]:
        """SendMessage arguments (DelaySeconds + attributes) for the re-queued event."""
        not_before = self.now + delay if delay > MAX_DELAY_SECONDS else 0.0
        values = {
            "Retries": str(self.retries if same else self.retries + 1),
            "FirstSeenAt": f"{self.first_seen:.3f}",
            "NotBefore": f"{not_before:.3f}",
        }
        attributes = {k: {"DataType": "Number", "StringValue": v} for k, v in values.items()}
        if self.redriven_error:  # a redriven dead letter stays one until it is applied
            attributes["ErrorClass"] = {"DataType": "String", "StringValue": self.redriven_error}
        if self.replay is not None:
            attributes.update(self.replay.attributes())
        return {"DelaySeconds": int(min(MAX_DELAY_SECONDS, max(0.0, delay))), "MessageAttributes": attributes}


def requeue(queue_url: str, body: str, how: dict[str, Any]) -> str:
    """Send a failed event back to its work queue to be tried again later (see Retry)."""
    response = sqs_client().send_message(QueueUrl=queue_url, MessageBody=body, **how)
    return str(response["MessageId"])
