"""Powertools Logger and Metrics for the functions: JSON logs correlated by event id, EMF counts per kind."""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import Any

SERVICE = "keap-relay"
# Without POWERTOOLS_METRICS_NAMESPACE (tests, a bare invoke); the template gives each stack its own,
# KeapRelay/<stack name>, so two stacks in one account and region never share a series.
NAMESPACE = "KeapRelay"


_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret (the Keap key, a webhook secret) so no log line can ever carry it."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Text safe to log: known secrets replaced, email addresses masked (ada@example.com → a***@example.com)."""
    for secret in tuple(_secrets):
        text = text.replace(secret, "***")
    return _EMAIL.sub(r"\1***@\2", text)


class RedactingFilter(logging.Filter):
    """Applied to every record that reaches the function's log handler, whoever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.getMessage())
            record.args = ()
        return True


@functools.cache
def logger() -> Any:
    """The Powertools Logger; the library's own `keap_relay.*` loggers write through its JSON formatter."""
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

    powertools = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE))
    powertools.registered_handler.addFilter(RedactingFilter())
    logging.getLogger("keap_relay")  # registers the parent so its children inherit the handler
    copy_config_to_registered_loggers(source_logger=powertools, include={"keap_relay"})
    return powertools


@dataclass(frozen=True)
class Metric:
    """One metric the functions emit (EMF, namespace POWERTOOLS_METRICS_NAMESPACE): the dashboard, the alarms
    and the docs are checked against this table, so a metric is added here or nowhere."""

    name: str
    unit: str  # a CloudWatch unit (aws_lambda_powertools.metrics.MetricUnit value)
    what: str
    # Dimensions: `service` is the kind (form_submission, ...) or, for the stack-level ones, STACK_SERVICE.
    dimensions: tuple[str, ...] = ("service",)
    stack_level: bool = False  # one series for the stack, whichever function emits it


STACK_SERVICE = SERVICE  # the `service` dimension of the stack-level metrics (no kind: the key is shared)
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("WebhooksAccepted", "Count", "webhooks whose events were queued (or applied, without a queue)"),
        Metric("WebhooksRejected", "Count", "webhooks refused with a 4xx (signature, body, source)"),
        Metric("WebhookResponses", "Count", "every webhook answer, by HTTP status", ("service", "status")),
        Metric("EventsQueued", "Count", "canonical events put on the work queue by the webhook path"),
        Metric("EventsApplied", "Count", "events whose Keap sequence ran to the end"),
        Metric("EventsRetried", "Count", "transient failures sent back to wait and be tried again"),
        Metric("EventsDeadLettered", "Count", "events moved to the DLQ with their reason"),
        Metric("StepOutcomeUnknown", "Count", "once-only steps whose outcome Keap left unknown (a person checks)"),
        Metric(
            "ArchiveWriteFailures",
            "Count",
            "events the worker could not archive: handed back to wait, or applied unarchived on their last receive",
        ),
        Metric("KeapCalls", "Count", "HTTP exchanges with Keap that got an answer"),
        Metric("KeapCallsRateLimited", "Count", "of those, the ones Keap answered 429"),
        Metric("WebhookDuration", "Milliseconds", "time of one webhook invocation (verify, parse, enqueue)"),
        Metric("WorkerDuration", "Milliseconds", "time of one worker invocation (a batch, an EventBridge event)"),
        Metric("EventAge", "Seconds", "age of an event (now - first queued) each time the worker receives it"),
        Metric(
            "KeapQuotaLeft",
            "Count",
            "calls left in Keap's quota window (x-keap-product-quota-available)",
            stack_level=True,
        ),
        Metric(
            "KeapQuotaLeftPercent",
            "Percent",
            "the same as a share of the window's limit (quota-limit)",
            stack_level=True,
        ),
    )
}
DURATION_OF_PATH: dict[str, str] = {
    "http": "WebhookDuration",
    "sqs": "WorkerDuration",
    "eventbridge": "WorkerDuration",
    "direct": "WorkerDuration",
}


def namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)


@functools.cache
def metrics(kind: str) -> Any:
    """Metrics of one kind; the kind is the `service` dimension, so the three functions chart apart."""
    from aws_lambda_powertools import Metrics

    return Metrics(namespace=namespace(), service=kind)


def _metric(name: str, dimensions: tuple[str, ...]) -> Metric:
    metric = METRICS[name]  # a KeyError here is a metric missing from the table
    if metric.dimensions != dimensions:
        raise ValueError(f"metric {name} has dimensions {metric.dimensions}, not {dimensions}")
    return metric


def count(name: str, kind: str, value: float = 1) -> None:
    """Add a value of one of the kind's METRICS (a count, a duration, an age) to this invocation's metrics."""
    metric = _metric(name, ("service",))
    metrics(kind).add_metric(name=name, unit=metric.unit, value=value)


def _single(name: str, value: float, dimensions: dict[str, str]) -> None:
    """One metric in a blob of its own, for dimensions other than the invocation's (written at once)."""
    from aws_lambda_powertools.metrics import single_metric

    metric = _metric(name, tuple(dimensions))
    with single_metric(name=name, unit=metric.unit, value=value, namespace=namespace(), default_dimensions=dimensions):
        pass


def webhook_answered(kind: str, status: int) -> None:
    """Count a webhook answer under its HTTP status (WebhookResponses, dimensions service and status)."""
    _single("WebhookResponses", 1, {"service": kind, "status": str(status)})


def _lower(info: Any) -> tuple[float, int]:
    # Answers on the runner's threads arrive in any order: the latest window's smallest count is the truth.
    return (info.quota_expiry_time or 0.0, -info.quota_available)


class KeapTally:
    """What one kind's Keap client saw since the last flush: calls, 429s and the latest quota headers.

    The client calls `saw` after each exchange, from the runner's threads as well: hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.rate_limited = 0
        self.quota: Any = None  # the RateInfo with the least quota left (of the latest window)

    def saw(self, status: int, info: Any) -> None:
        with self._lock:
            self.calls += 1
            self.rate_limited += status == 429
            if (
                info is not None
                and info.quota_available is not None
                and (self.quota is None or _lower(info) > _lower(self.quota))
            ):
                self.quota = info

    def take(self) -> tuple[int, int, Any]:
        with self._lock:
            taken = (self.calls, self.rate_limited, self.quota)
            self.calls, self.rate_limited, self.quota = 0, 0, None
            return taken


_tallies: dict[str, KeapTally] = {}


def watch_keap(client: Any, kind: str) -> None:
    """Have a Keap client report its exchanges (keap/ knows nothing of AWS: it calls `on_response`)."""
    if client is None:  # a port without a client of ours (a test's stand-in): nothing to watch
        return
    tally = _tallies.setdefault(kind, KeapTally())
    client.on_response = tally.saw


def _flush_keap(kind: str) -> None:
    tally = _tallies.get(kind)
    if tally is None:
        return
    calls, rate_limited, quota = tally.take()
    if calls:
        count("KeapCalls", kind, calls)
        count("KeapCallsRateLimited", kind, rate_limited)
    if quota is not None:
        # Keap's quota belongs to the key, which all three functions share: one series for the stack.
        stack = {"service": STACK_SERVICE}
        _single("KeapQuotaLeft", quota.quota_available, stack)
        if quota.quota_limit:
            _single("KeapQuotaLeftPercent", round(100 * quota.quota_available / quota.quota_limit, 2), stack)


def flush(kind: str) -> None:
    """Write the invocation's metrics (EMF on stdout); nothing is written when nothing was counted."""
    _flush_keap(kind)
    m = metrics(kind)
    if m.metric_set:
        m.flush_metrics()


def correlate(event_id: str | None, kind: str) -> None:
    """Every log line of this event carries its id as the correlation id."""
    log = logger()
    log.set_correlation_id(event_id or None)
    log.append_keys(kind=kind)
