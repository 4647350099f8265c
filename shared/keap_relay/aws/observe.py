"""Powertools Logger and Metrics for the functions: JSON logs correlated by event id, EMF counts per kind."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

SERVICE = "keap-relay"
NAMESPACE = "KeapRelay"


@functools.cache
def logger() -> Any:
    """The Powertools Logger; the library's own `keap_relay.*` loggers write through its JSON formatter."""
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

    powertools = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE))
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
