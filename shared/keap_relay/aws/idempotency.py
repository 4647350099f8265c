"""Idempotency and step checkpoints: each event applied once per key, a retry resuming after its recorded steps."""

from __future__ import annotations

import copy
import functools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Keap is called again for a duplicate only after this long; webhook senders retry for up to 3 days
# (Stripe), and an event may wait out a Keap outage in its queue before it is applied.
MIN_KEEP_SECONDS = 3 * 86400
CHECKPOINT_PREFIX = "checkpoint#"
STEP_PREFIX = "step:"
IDENTITY_PATH = "[kind, source, id]"  # the idempotency key: kind + source + the source's id
# The name Powertools gave the once-only function when the first records were written: a record's id is
# `<Lambda function>.<this>#<hash of the key>`, so it stays as it is, or an upgrade would apply every event
# of the last days again.
RECORD_FUNCTION_NAME = "keap_relay.aws.idempotency.Idempotency.wrap.<locals>.apply_once"
DIRECT_RUN_TIMEOUT_SECONDS = 30  # a run with no Lambda context, unless FUNCTION_TIMEOUT_SECONDS says otherwise


def event_key(event: dict[str, Any], replay: str | None = None) -> str:
    """kind#source#id: what makes two deliveries the same event; kind#source#id#<name> for one replay's delivery."""
    key = f"{event.get('kind')}#{event.get('source')}#{event.get('id')}"
    return key if replay is None else f"{key}#{replay}"


def identity(event: dict[str, Any], replay: str | None = None) -> dict[str, Any]:
    """What Powertools reads the key from (IDENTITY_PATH): the event itself, so an ordinary event's record id stays
    as it always was; for a replay, the event's kind and source and its id with `#<replay name>`."""
    if replay is None:
        return event
    return {"kind": event.get("kind"), "source": event.get("source"), "id": f"{event.get('id')}#{replay}"}


@functools.cache
def dynamodb_client() -> Any:
    import boto3

    return boto3.client("dynamodb")


def keep_seconds(max_event_age_seconds: int) -> int:
    """How long results and checkpoints are kept: past the oldest age an event may still be applied at."""
    return max(MIN_KEEP_SECONDS, max_event_age_seconds + 86400)


class DynamoCheckpoints:
    """Completed steps of one event, one attribute per step on a `checkpoint#<key>` item of the table."""

    def __init__(self, table: str, key: str, keep: int, client: Any | None = None) -> None:
        self.table = table
        self.item_id = CHECKPOINT_PREFIX + key
        self.keep = keep
        self.client = client or dynamodb_client()

    def completed(self) -> dict[str, Any]:
        item = self.client.get_item(TableName=self.table, Key={"id": {"S": self.item_id}}, ConsistentRead=True).get(
            "Item", {}
        )
        return {
            name[len(STEP_PREFIX) :]: json.loads(value["S"])
            for name, value in item.items()
            if name.startswith(STEP_PREFIX)
        }

    def record(self, key: str, result: Any) -> None:
        self.record_many({key: result})

    def record_many(self, results: dict[str, Any]) -> None:
        """Record several completed steps in one update of the event's checkpoint item."""
        names = {f"#s{i}": STEP_PREFIX + key for i, key in enumerate(results)}
        values = {f":r{i}": {"S": json.dumps(result, default=str)} for i, result in enumerate(results.values())}
        sets = ", ".join(f"#s{i} = :r{i}" for i in range(len(results)))
        self.client.update_item(
            TableName=self.table,
            Key={"id": {"S": self.item_id}},
            UpdateExpression=f"SET {sets}, #exp = :exp",
            ExpressionAttributeNames={**names, "#exp": "expiration"},
            ExpressionAttributeValues={**values, ":exp": {"N": str(int(time.time()) + self.keep)}},
        )


@dataclass
class _Context:
    """Stands in for a LambdaContext where there is none (direct runs), so an in-progress record of a
    crashed run expires after one function timeout instead of blocking the event for days."""

    timeout_seconds: int
    function_name: str = "keap-relay"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:keap-relay"
    aws_request_id: str = "local"

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class Idempotency:
    """Applies each event at most once per event key; a duplicate gets the first result, no Keap call."""

    def __init__(self, table: str, keep: int, timeout_seconds: int | None = None, client: Any | None = None) -> None:
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
        )

        self.table = table
        self.keep = keep
        self.timeout_seconds = timeout_seconds or DIRECT_RUN_TIMEOUT_SECONDS
        self.config = IdempotencyConfig(
            event_key_jmespath=IDENTITY_PATH, expires_after_seconds=keep, raise_on_no_idempotency_key=True
        )
        self.store = DynamoDBPersistenceLayer(table_name=table, boto3_client=client or dynamodb_client())

    def apply_once(
        self,
        event: dict[str, Any],
        apply: Callable[[dict[str, Any], DynamoCheckpoints], dict[str, Any]],
        context: Any = None,
        replay: str | None = None,
    ) -> dict[str, Any]:
        """`apply(event, checkpoints)`, unless the event was applied before: then its first result, no Keap call.

        `context` is this invocation's Lambda context: an in-progress record expires when the invocation
        would have timed out. The config holding it is this call's own, as invocations may run at once.
        `replay` names the replay that sent the event: it is applied once per replay, with checkpoints of its own.
        """
        from aws_lambda_powertools.utilities.idempotency import idempotent_function

        config = copy.copy(self.config)
        config.register_lambda_context(context or _Context(self.timeout_seconds))
        once = idempotent_function(
            _call,
            data_keyword_argument="event",
            config=config,
            persistence_store=self.store,
            key_prefix=f"{os.environ.get('AWS_LAMBDA_FUNCTION_NAME', 'test-func')}.{RECORD_FUNCTION_NAME}",
        )
        run = apply if replay is None else (lambda _identity, checkpoints: apply(event, checkpoints))
        return once(event=identity(event, replay), apply=run, checkpoints=self.checkpoints(event, replay))

    def checkpoints(self, event: dict[str, Any], replay: str | None = None) -> DynamoCheckpoints:
        return DynamoCheckpoints(self.table, event_key(event, replay), self.keep, self.store.client)


def _call(
    event: dict[str, Any], apply: Callable[..., dict[str, Any]], checkpoints: DynamoCheckpoints
) -> dict[str, Any]:
    """The function Powertools runs once per key: `event` is what it hashes, the rest is passed through."""
    return apply(event, checkpoints)
