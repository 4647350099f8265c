"""One invocation: which trigger delivered its event, and the state that is its own, passed along, never shared."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import http

MIN_LEFT_MS = 5000  # below this, no event of a batch is started after the first


def trigger_of(event: Any) -> str:
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
    if is_eventbridge_event(event):
        return "eventbridge"
    return "direct"


def is_eventbridge_event(event: Any) -> bool:
    """An EventBridge envelope: as a rule delivers it, or as a queue or a dead letter kept it."""
    return isinstance(event, dict) and "detail-type" in event and "detail" in event


@dataclass
class Invocation:
    """What belongs to one invocation. The container's Pipeline serves every invocation, and the local
    function host runs several at once on threads, so none of this may live on it."""

    context: Any = None
    started_with_ms: int | None = None  # what the Lambda context had left at the start
    records_started: int = 0

    @classmethod
    def start(cls, context: Any) -> Invocation:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        return cls(context, int(remaining()) if remaining is not None else None)

    def out_of_time(self, timeout_override_seconds: int | None = None) -> bool:
        """Whether too little time is left to start another event of the batch.

        The function's timeout is FUNCTION_TIMEOUT_SECONDS when set, else what the context had left at the
        start; without a context (a direct run) nothing is ever cut off.
        """
        remaining = getattr(self.context, "get_remaining_time_in_millis", None)
        timeout = timeout_override_seconds * 1000 if timeout_override_seconds else self.started_with_ms
        if remaining is None or timeout is None or self.records_started == 0:
            return False  # the first record of a batch always runs, so every invocation makes progress
        # One event's worth of time must be left: a third of the function's timeout, at least 5 s.
        return remaining() < max(MIN_LEFT_MS, timeout // 3)
