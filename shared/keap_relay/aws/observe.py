"""Powertools Logger and Metrics for the functions: JSON logs correlated by event id, EMF counts per kind."""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from typing import Any

SERVICE = "keap-relay"
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


@functools.cache
def metrics(kind: str) -> Any:
    """Metrics of one kind; the kind is the `service` dimension, so the three functions chart apart."""
    from aws_lambda_powertools import Metrics

    return Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE), service=kind)


def count(name: str, kind: str, value: int = 1) -> None:
    """Add to a count: EventsApplied, EventsFailed, EventsDeadLettered, EventsQueued, WebhooksRejected."""
    from aws_lambda_powertools.metrics import MetricUnit

    metrics(kind).add_metric(name=name, unit=MetricUnit.Count, value=value)


def flush(kind: str) -> None:
    """Write the invocation's metrics (EMF on stdout); nothing is written when nothing was counted."""
    m = metrics(kind)
    if m.metric_set:
        m.flush_metrics()


def correlate(event_id: str | None, kind: str) -> None:
    """Every log line of this event carries its id as the correlation id."""
    log = logger()
    log.set_correlation_id(event_id or None)
    log.append_keys(kind=kind)
