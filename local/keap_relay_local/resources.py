"""moto in server mode on 127.0.0.1, and the template's queues, rules and table created in it."""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from .motohttp import MotoHTTPServer
from .template import StackSpec, TableSpec

log = logging.getLogger("keap_relay_local.aws")

# moto keeps one global state per process: two stacks at once would share (and reset) each other's queues.
_ACTIVE = threading.Lock()

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's well-known dummy credentials
    "AWS_SESSION_TOKEN": "testing",
}


def client(service: str, endpoint_url: str, region: str) -> Any:
    """A boto3 client that can only reach moto (dummy credentials, explicit endpoint)."""
    return boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=region,
    ).client(
        service,
        endpoint_url=endpoint_url,
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30),
    )


class MotoServer:
    """moto on 127.0.0.1 with kept-alive connections; one per process at a time (moto's state is global).

    moto's own ThreadedMotoServer closes the connection after every answer, so each AWS call of a poller or
    function would pay a TCP connect that botocore does not pay against AWS; motohttp serves the same app
    with waitress, which keeps connections alive.
    """

    def __init__(self, port: int = 0) -> None:
        self._server = MotoHTTPServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._started = False

    @property
    def url(self) -> str:
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def start(self) -> None:
        if not _ACTIVE.acquire(blocking=False):
            raise RuntimeError("a local stack (moto) is already running in this process; stop it first")
        try:
            self._server.start()
        except BaseException:
            _ACTIVE.release()
            raise
        self._started = True
        self.reset()  # state left by an earlier stack or a mock_aws test in this process

    def reset(self) -> None:
        url = self.url + "/moto-api/reset"  # loopback, built above
        request = urllib.request.Request(url, method="POST", data=b"")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass

    def stop(self) -> None:
        if not self._started:
            return
        try:
            self.reset()
        finally:
            self._server.stop()
            self._started = False
            _ACTIVE.release()


@dataclass
class Deployed:
    """Where the template's resources live in moto."""

    queue_urls: dict[str, str] = field(default_factory=dict)  # logical id → URL
    queue_arns: dict[str, str] = field(default_factory=dict)
    table_names: dict[str, str] = field(default_factory=dict)
    rule_names: dict[str, str] = field(default_factory=dict)


# Target properties moto does not apply, rewritten into ones it does. InputPath becomes the equivalent
# InputTransformer, so the queue receives the same body EventBridge would put there.
def _input_path_as_transformer(target: dict[str, Any]) -> dict[str, Any]:
    path = target.pop("InputPath")
    target["InputTransformer"] = {"InputPathsMap": {"selected": path}, "InputTemplate": "<selected>"}
    return target


_TARGET_REWRITES = {"InputPath": _input_path_as_transformer}


def provision(spec: StackSpec, endpoint_url: str, region: str, visibility_timeout: int | None) -> Deployed:
    """Create every queue, rule and table of the template in moto.

    `visibility_timeout` replaces the template's value on the work queues (the ones a function polls),
    so that a record failed back to the queue is retried after seconds rather than minutes.
    """
    sqs = client("sqs", endpoint_url, region)
    deployed = Deployed()
    work_queues = {fn.queue for fn in spec.functions.values() if fn.queue}
    # Dead-letter queues first: a redrive policy names its target's ARN.
    ordered = sorted(spec.queues.values(), key=lambda q: q.dlq is not None)
    for queue in ordered:
        attributes = dict(queue.attributes)
        if visibility_timeout is not None and queue.logical_id in work_queues:
            attributes["VisibilityTimeout"] = str(visibility_timeout)
        if queue.dlq is not None:
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": deployed.queue_arns[queue.dlq], "maxReceiveCount": queue.max_receive_count}
            )
        url = sqs.create_queue(QueueName=queue.name, Attributes=attributes)["QueueUrl"]
        deployed.queue_urls[queue.logical_id] = url
        deployed.queue_arns[queue.logical_id] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]

    events = client("events", endpoint_url, region)
    for rule in spec.rules.values():
        if rule.event_bus != "default":
            events.create_event_bus(Name=rule.event_bus)
        events.put_rule(
            Name=rule.name,
            EventPattern=json.dumps(rule.event_pattern),
            State=rule.state,
            EventBusName=rule.event_bus,
        )
        targets = []
        for target in rule.targets:
            if target.queue is None or target.queue not in deployed.queue_arns:
                log.warning("rule %s: target is not a queue of the template; skipped locally", rule.logical_id)
                continue
            props = {
                k: v
                for k, v in target.properties.items()
                if k in ("Id", "InputPath", "InputTransformer", "SqsParameters", "Input")
            }
            for key, rewrite in _TARGET_REWRITES.items():
                if key in props:
                    props = rewrite(props)
            targets.append({**props, "Arn": deployed.queue_arns[target.queue]})
        if targets:
            events.put_targets(Rule=rule.name, EventBusName=rule.event_bus, Targets=targets)
        deployed.rule_names[rule.logical_id] = rule.name

    dynamodb = client("dynamodb", endpoint_url, region)
    for table in spec.tables.values():
        create_table(dynamodb, table)
        deployed.table_names[table.logical_id] = table.name
    return deployed


def create_table(dynamodb: Any, table: TableSpec, name: str | None = None) -> str:
    """Create one of the template's tables (keys, indexes, TTL) in moto, as `name` if given; returns its name."""
    name = name or table.name
    props = dict(table.properties)
    ttl = props.pop("TimeToLiveSpecification", None)
    dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **props)
    if ttl and ttl.get("Enabled"):
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
        )
    return name
