"""`keap-relay status`: a stack's state on one screen (events waiting, dead letters and why, alarms) and an exit
status to act on: 0 fine, 1 needs a person, 2 could not check.

It reads queue attributes, CloudWatch (in AWS) and peeks at the dead letters; it never receives from a work
queue, which would hide the messages from the function and spend their receives.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from keap_relay.aws import observe
from keap_relay.events.kinds import KINDS
from keap_relay.keap.defaults import XMLRPC_SUNSET

from .dlq import DeadLetterQueue, _duration, aws_queues, human_age, local_queues
from .output import show
from .where import add_where, stack_outputs, stack_parameters

# The functions' metrics namespace when the stack does not say (its MetricsNamespace output): stacks deployed
# before the namespace was made per stack used this one.
NAMESPACE = observe.NAMESPACE
NAMESPACE_OUTPUT = "MetricsNamespace"
PEEK_LIMIT = 100  # dead letters read for their reasons; the count is SQS's, whatever the number
TOP_REASONS = 3
AGE_WINDOW = 15 * 60  # the event ages looked at: the last 15 minutes' maximum
APPLIED_LOOKBACK = 7 * 86400  # how far back to look for the last applied event
APPLIED_PERIOD = 300  # ... at 5-minute resolution
QUOTA_LOOKBACK = 86400  # Keap's quota is a day's
DEFAULT_MAX_AGE = "1h"

QUEUE_COUNTS = {
    "ApproximateNumberOfMessages": "waiting",
    "ApproximateNumberOfMessagesDelayed": "delayed",
    "ApproximateNumberOfMessagesNotVisible": "in_flight",
}
LOCALLY = "not available locally (moto keeps no CloudWatch metrics or alarms)"
XMLRPC_NOTE = (
    f"this stack drives Keap's XML-RPC (KeapApi=xmlrpc), which Keap retires on {XMLRPC_SUNSET} (as reported; "
    "brownouts before): run `keap-relay routes migrate --to rest`, then deploy with KeapApi=rest (docs/rest-v2.md)"
)
SQS_AGE_NOTE = (
    "SQS's ApproximateAgeOfOldestMessage restarts when a retry is re-sent as a new message; "
    "EventAge (from when the event was first seen) does not"
)


@dataclass
class KindState:
    """One kind: its work queue's counts, its dead letters and their reasons, and (in AWS) its metrics."""

    kind: str
    waiting: int
    delayed: int
    in_flight: int
    dead_letters: int
    reasons: list[tuple[str, int]]  # ErrorClass and how many, most first, of the letters peeked
    peeked: int
    oldest_age: float | None = None  # seconds: the larger of EventAge and SQS's age, when either is known
    age_source: str | None = None
    last_applied: float | None = None  # the start of the last 5 minutes with an EventsApplied datapoint

    def as_json(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["reasons"] = [{"error_class": name, "count": count} for name, count in self.reasons]
        shown["last_applied"] = _iso(self.last_applied)
        return shown


@dataclass
class StackState:
    """What `status` found; `problems` is why a person is needed (empty: healthy)."""

    where: str
    aws: bool
    max_age: float
    kinds: list[KindState]
    quota_left: float | None = None
    alarms: list[str] | None = None  # the names of the stack's alarms in ALARM; None: not available
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        found = [f"{k.kind}: {_plural(k.dead_letters, 'dead letter')}" for k in self.kinds if k.dead_letters]
        found += [
            f"{k.kind}: an event waiting {human_age(k.oldest_age)} (over {human_age(self.max_age)})"
            for k in self.kinds
            if k.oldest_age is not None and k.oldest_age > self.max_age
        ]
        found += [f"alarm {name} is firing" for name in self.alarms or []]
        return found

    def as_json(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "healthy": not self.problems,
            "problems": self.problems,
            "max_age_seconds": self.max_age,
            "kinds": [k.as_json() for k in self.kinds],
            "keap_quota_left": self.quota_left,
            "alarms_firing": self.alarms,
            "notes": self.notes,
        }


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _plural(number: int, what: str) -> str:
    return f"{number} {what}" + ("" if number == 1 else "s")


# ---------------------------------------------------------------------------------------------------- reading


def kind_state(queues: DeadLetterQueue) -> KindState:
    """The work queue's counts (attributes only) and the dead letters' reasons (peeked, then released)."""
    attrs = queues.sqs.get_queue_attributes(QueueUrl=queues.queue_url, AttributeNames=list(QUEUE_COUNTS))
    counts = {name: int(attrs["Attributes"].get(attr, 0)) for attr, name in QUEUE_COUNTS.items()}
    dead = queues.count()
    letters = queues.letters(PEEK_LIMIT) if dead else []
    reasons = Counter(letter.error_class for letter in letters).most_common(TOP_REASONS)
    return KindState(queues.kind.folder, **counts, dead_letters=dead, reasons=reasons, peeked=len(letters))


class Metrics:
    """The stack's CloudWatch: the latest datapoint of each metric asked for, and its alarms firing."""

    def __init__(self, cloudwatch: Any, namespace: str = NAMESPACE) -> None:
        self.cloudwatch, self.namespace = cloudwatch, namespace

    def latest(self, window: float, period: int, stats: dict[str, dict[str, Any]]) -> dict[str, tuple[float, float]]:
        """Query id → (timestamp, value) of its newest datapoint in the last `window` seconds; no data, no key."""
        if not stats:
            return {}
        # CloudWatch answers whole periods: the end rounded up to the minute includes the datapoint just sent.
        end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        queries = [
            {"Id": query_id, "MetricStat": {**stat, "Period": period}, "ReturnData": True}
            for query_id, stat in stats.items()
        ]
        found: dict[str, tuple[float, float]] = {}
        paging: dict[str, Any] = {}
        while True:
            response = self.cloudwatch.get_metric_data(
                MetricDataQueries=queries,
                StartTime=end - timedelta(seconds=window),
                EndTime=end,
                ScanBy="TimestampDescending",
                **paging,
            )
            for result in response.get("MetricDataResults") or []:
                if result.get("Timestamps") and result["Id"] not in found:
                    found[result["Id"]] = (result["Timestamps"][0].timestamp(), float(result["Values"][0]))
            if not response.get("NextToken"):
                return found
            paging = {"NextToken": response["NextToken"]}

    def quota_left(self) -> float | None:
        """The newest KeapQuotaLeft, whatever its dimensions (it is one metric for the stack's key)."""
        listed = self.cloudwatch.list_metrics(Namespace=self.namespace, MetricName="KeapQuotaLeft").get("Metrics") or []
        stats = {f"q{i}": {"Metric": metric, "Stat": "Minimum"} for i, metric in enumerate(listed[:10])}
        points = self.latest(QUOTA_LOOKBACK, APPLIED_PERIOD, stats)
        return max(points.values())[1] if points else None

    def alarms_firing(self, names: list[str]) -> list[str]:
        firing: list[str] = []
        for start in range(0, len(names), 100):  # DescribeAlarms takes at most 100 names
            response = self.cloudwatch.describe_alarms(
                AlarmNames=names[start : start + 100], AlarmTypes=["MetricAlarm", "CompositeAlarm"]
            )
            for alarm in [*response.get("MetricAlarms", []), *response.get("CompositeAlarms", [])]:
                if alarm.get("StateValue") == "ALARM":
                    firing.append(str(alarm["AlarmName"]))
        return sorted(firing)


def _metric(name: str, stat: str, namespace: str, **dimensions: str) -> dict[str, Any]:
    return {
        "Metric": {
            "Namespace": namespace,
            "MetricName": name,
            "Dimensions": [{"Name": key, "Value": value} for key, value in dimensions.items()],
        },
        "Stat": stat,
    }


def add_metrics(states: list[KindState], queues: list[DeadLetterQueue], metrics: Metrics) -> None:
    """Each kind's oldest event age and last applied event, from CloudWatch (the functions' EMF and AWS/SQS)."""
    ages: dict[str, dict[str, Any]] = {}
    applied: dict[str, dict[str, Any]] = {}
    for index, (kind, queue) in enumerate(zip(KINDS, queues, strict=True)):
        ages[f"event{index}"] = _metric("EventAge", "Maximum", metrics.namespace, service=kind.name)
        queue_name = queue.queue_url.rstrip("/").rsplit("/", 1)[-1]
        ages[f"sqs{index}"] = _metric("ApproximateAgeOfOldestMessage", "Maximum", "AWS/SQS", QueueName=queue_name)
        applied[f"applied{index}"] = _metric("EventsApplied", "Sum", metrics.namespace, service=kind.name)
    age_points = metrics.latest(AGE_WINDOW, 60, ages)
    applied_points = metrics.latest(APPLIED_LOOKBACK, APPLIED_PERIOD, applied)
    for index, state in enumerate(states):
        known = [
            (point[1], source)
            for source, point in (
                ("EventAge", age_points.get(f"event{index}")),
                ("SQS ApproximateAgeOfOldestMessage", age_points.get(f"sqs{index}")),
            )
            if point is not None
        ]
        if known:
            state.oldest_age, state.age_source = max(known)
        if f"applied{index}" in applied_points:
            state.last_applied = applied_points[f"applied{index}"][0]


def stack_alarms(cloudformation: Any, stack: str) -> list[str]:
    """The names of the alarms the stack created."""
    names: list[str] = []
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack):
        for resource in page.get("StackResourceSummaries") or []:
            if resource.get("ResourceType") in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"):
                names.append(str(resource["PhysicalResourceId"]))
    return names


def read_aws(stack: str, region: str | None, max_age: float) -> StackState:
    import boto3

    cloudformation = boto3.client("cloudformation", region_name=region)
    sqs = boto3.client("sqs", region_name=region)
    # dlq's discovery: the stack's <Kind>QueueUrl / <Kind>DLQUrl outputs.
    queues = [aws_queues(kind.folder, stack=stack, sqs=sqs, cloudformation=cloudformation) for kind in KINDS]
    states = [kind_state(queue) for queue in queues]
    namespace = stack_outputs(cloudformation, stack).get(NAMESPACE_OUTPUT, NAMESPACE)
    keap_api = stack_parameters(cloudformation, stack).get("KeapApi")
    metrics = Metrics(boto3.client("cloudwatch", region_name=region), namespace)
    add_metrics(states, queues, metrics)
    state = StackState(f"stack {stack}", True, max_age, states, metrics.quota_left())
    state.alarms = metrics.alarms_firing(stack_alarms(cloudformation, stack))
    if any(k.age_source == "SQS ApproximateAgeOfOldestMessage" for k in states):
        state.notes.append(SQS_AGE_NOTE)
    if keap_api == "xmlrpc":
        state.notes.append(XMLRPC_NOTE)
    return state


def read_local(endpoint_url: str | None, region: str | None, root: Path | None, max_age: float) -> StackState:
    queues = [local_queues(kind.folder, endpoint_url, region=region, root=root) for kind in KINDS]
    state = StackState(queues[0].where, False, max_age, [kind_state(queue) for queue in queues])
    state.notes.append(f"event ages, last applied, Keap quota and alarms: {LOCALLY}")
    return state


# ---------------------------------------------------------------------------------------------------- printing


def _age(seconds: float | None, known: bool) -> str:
    if seconds is None:
        return "-" if known else "n/a"
    return human_age(seconds)


def _reasons(state: KindState) -> str:
    shown = ", ".join(f"{count} {name}" for name, count in state.reasons)
    if state.peeked < state.dead_letters:
        shown += f"; of the oldest {state.peeked}"
    return shown


def _lines(state: StackState, now: float) -> Iterable[Any]:
    table = Table(
        "kind",
        "waiting",
        "delayed",
        "in flight",
        "oldest",
        "last applied",
        "dead letters (top reasons)",
        box=box.SIMPLE,
    )
    for k in state.kinds:
        applied = (
            "n/a"
            if not state.aws
            else ("none in 7d" if k.last_applied is None else f"<{human_age(now - k.last_applied)} ago")
        )
        table.add_row(
            k.kind,
            str(k.waiting),
            str(k.delayed),
            str(k.in_flight),
            _age(k.oldest_age, state.aws),
            applied,
            str(k.dead_letters) + (f" ({_reasons(k)})" if k.dead_letters else ""),
        )
    yield f"keap-relay status: {state.where}"
    yield table
    if state.aws:
        yield "Keap quota left: " + (
            "unknown (no KeapQuotaLeft data in the last day)" if state.quota_left is None else f"{state.quota_left:g}"
        )
        yield "alarms firing: " + (", ".join(state.alarms or []) or "none")
    for note in state.notes:
        yield f"note: {note}"
    problems = state.problems
    yield "needs a person: " + "; ".join(problems) if problems else "healthy"
    if any(k.dead_letters for k in state.kinds):
        yield "see `keap-relay dlq list --kind KIND` for each dead letter and docs/operations.md for what to do"


def run(args: argparse.Namespace) -> int:
    from botocore.exceptions import EndpointConnectionError

    try:
        if args.stack:
            region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            state = read_aws(args.stack, region, args.max_age)
        else:
            state = read_local(args.endpoint_url, args.region, args.root, args.max_age)
    except EndpointConnectionError as exc:
        hint = "" if args.stack else " Is the local stack running (`keap-relay run`)? For AWS give --stack NAME."
        raise ConnectionError(f"{exc}.{hint}") from exc
    if args.json:
        print(json.dumps(state.as_json(), indent=2))
    else:
        show(*_lines(state, time.time()))
    return 1 if state.problems else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`keap-relay status`'s options (an entry of keap_relay_ops.cli.COMMANDS)."""
    parser.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    age = "an event waiting longer needs a person (7d, 12h, 30m, 45s; default %(default)s); known in AWS only"
    parser.add_argument("--max-age", type=_duration, default=DEFAULT_MAX_AGE, metavar="AGE", help=age)
    add_where(
        parser,
        stack_help="a deployed keap-relay stack in AWS (CloudFormation outputs)",
        endpoint_help="a local SQS endpoint, e.g. a test stack's moto",
    )
    parser.set_defaults(handler=run)
