"""The work queue and the dead-letter queue: enqueue canonical events, dead-letter failures with reasons."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from typing import Any

MAX_ATTRIBUTE_TEXT = 1000  # keep reasons readable and well under SQS's 256 KiB message limit


@functools.cache
def sqs_client() -> Any:
    """One SQS client per container (AWS_ENDPOINT_URL points it at moto locally)."""
    import boto3

    return boto3.client("sqs")


@dataclass(frozen=True)
class Failure:
    """Why an event went to the DLQ; sent as message attributes beside the original body."""

    error_class: str
    message: str
    step: str
    attempts: int
    transient: bool
    kind: str
    source: str = ""
    event_id: str = ""

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
        return {
            name: {"DataType": "Number" if name == "AttemptCount" else "String", "StringValue": value}
            for name, value in values.items()
        }


def enqueue(queue_url: str, event: dict[str, Any]) -> str:
    """Send one canonical event to a work queue; returns the SQS message id."""
    attributes = {
        name: {"DataType": "String", "StringValue": str(event.get(key) or "-")}
        for name, key in (("Kind", "kind"), ("Source", "source"), ("EventId", "id"))
    }
    response = sqs_client().send_message(
        QueueUrl=queue_url, MessageBody=json.dumps(event, separators=(",", ":")), MessageAttributes=attributes
    )
    return str(response["MessageId"])


def dead_letter(dlq_url: str, body: str, failure: Failure) -> str:
    """Send the original body to the DLQ with the failure as attributes; returns the message id."""
    response = sqs_client().send_message(QueueUrl=dlq_url, MessageBody=body, MessageAttributes=failure.attributes())
    return str(response["MessageId"])
