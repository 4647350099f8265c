"""Idempotency and step checkpoints: each event applied once per key, a retry resuming after its recorded steps."""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("keap_relay.pipeline")

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
BATCH_GET_MAX = 100  # keys one BatchGetItem may ask for
BATCH_CALLS_AT_ONCE = 10  # an SQS batch's claims, or its results, in flight at once (BatchSize is at most 10)
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
    """Completed steps of one event, one attribute per step on a `checkpoint#<key>` item of the table.

    `completed` is what a batch read found (no read of its own then); with `pending`, the safe steps'
    writes (`record_many`) wait there to be sent with the batch's others, all at once (CheckpointWrites).
    Once-only steps (`record`: an intent, then its result) are written at once: Keap is called after.
    """

    def __init__(
        self,
        table: str,
        key: str,
        keep: int,
        client: Any | None = None,
        *,
        completed: dict[str, Any] | None = None,
        pending: CheckpointWrites | None = None,
    ) -> None:
        self.table = table
        self.item_id = CHECKPOINT_PREFIX + key
        self.keep = keep
        self.client = client or dynamodb_client()
        self._completed = completed
        self._pending = pending

    def completed(self) -> dict[str, Any]:
        if self._completed is not None:
            return dict(self._completed)
        item = self.client.get_item(TableName=self.table, Key={"id": {"S": self.item_id}}, ConsistentRead=True).get(
            "Item", {}
        )
        return steps_of(item)

    def record(self, key: str, result: Any) -> None:
        self.client.update_item(**self.update({key: result}))

    def record_many(self, results: dict[str, Any]) -> None:
        """Record several completed steps in one update of the event's checkpoint item (or the batch's one)."""
        if self._pending is not None:
            self._pending.add(self, results)
        else:
            self.client.update_item(**self.update(results))

    def update(self, results: dict[str, Any]) -> dict[str, Any]:
        """The UpdateItem arguments that record `results` on this event's item (and push its expiry on)."""
        names = {f"#s{i}": STEP_PREFIX + key for i, key in enumerate(results)}
        values = {f":r{i}": {"S": json.dumps(result, default=str)} for i, result in enumerate(results.values())}
        sets = ", ".join(f"#s{i} = :r{i}" for i in range(len(results)))
        return {
            "TableName": self.table,
            "Key": {"id": {"S": self.item_id}},
            "UpdateExpression": f"SET {sets}, #exp = :exp",
            "ExpressionAttributeNames": {**names, "#exp": "expiration"},
            "ExpressionAttributeValues": {**values, ":exp": {"N": str(int(time.time()) + self.keep)}},
        }


def steps_of(item: dict[str, Any]) -> dict[str, Any]:
    """The completed steps a checkpoint item holds."""
    return {
        name[len(STEP_PREFIX) :]: json.loads(value["S"]) for name, value in item.items() if name.startswith(STEP_PREFIX)
    }


class CheckpointWrites:
    """The safe steps a batch completed, per event, held until the batch's outcomes are recorded: then one
    UpdateItem per event, all sent at once (one round trip). A TransactWriteItems would be one call, but
    DynamoDB bills its writes twice, and moto copies every table for each one (seconds once a table holds
    thousands of items), which would make every local run and benchmark measure moto."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[DynamoCheckpoints, dict[str, Any]]] = {}

    def add(self, checkpoints: DynamoCheckpoints, results: dict[str, Any]) -> None:
        with self._lock:
            _, known = self._items.setdefault(checkpoints.item_id, (checkpoints, {}))
            known.update(results)

    def take(self) -> list[dict[str, Any]]:
        """The UpdateItem arguments of everything pending, forgotten here."""
        with self._lock:
            items, self._items = self._items, {}
        return [checkpoints.update(results) for checkpoints, results in items.values()]


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


@dataclass
class Claim:
    """One event's claim on its key: `result` when it was applied before (a duplicate), `error` when it cannot
    be applied now (another delivery holds it, or the store failed), else `checkpoints` to apply it with."""

    event: dict[str, Any]
    data: dict[str, Any]  # what the record's key is read from (identity): the event, or a replay's own
    checkpoints: DynamoCheckpoints | None = None
    result: dict[str, Any] | None = None
    error: Exception | None = None
    writes: CheckpointWrites | None = None  # where its batch's safe steps wait to be written together

    @property
    def granted(self) -> bool:
        return self.result is None and self.error is None


class Idempotency:
    """Applies each event at most once per event key; a duplicate gets the first result, no Keap call.

    Powertools' idempotency policy and its DynamoDB layer, driven through the layer's own verbs
    (save_inprogress, save_success, delete_record) rather than its decorator, so that a batch claims its
    events and finishes them together, and the critical path of an event is one round trip before its first
    Keap call (the claims, the batch's checkpoint read, alongside each other) and one after its last (the
    results and the checkpoint write, alongside each other). What the decorator guaranteed holds: a record
    is in progress until the invocation would time out (the Lambda context's remaining time), a duplicate
    gets the first result without calling Keap, a failure deletes the record (its checkpoints, in an item of
    their own, stay), and records keep the decorator's ids (RECORD_FUNCTION_NAME) and layout.
    """

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
        prefix = f"{os.environ.get('AWS_LAMBDA_FUNCTION_NAME', 'test-func')}.{RECORD_FUNCTION_NAME}"
        self.store.configure(self.config, key_prefix=prefix)

    def checkpoints(self, event: dict[str, Any], replay: str | None = None) -> DynamoCheckpoints:
        return DynamoCheckpoints(self.table, event_key(event, replay), self.keep, self.store.client)

    def claim(
        self,
        events: list[dict[str, Any]],
        context: Any = None,
        alongside: Callable[[], None] | None = None,
        replays: list[str | None] | None = None,
    ) -> list[Claim]:
        """Claim every event's key (in progress until this invocation would time out) and read the checkpoints
        of the batch in one call, all at once. `context` is the invocation's Lambda context; `alongside` runs at
        the same time (the Keap budget's booking), and its failure is only logged. `replays[i]` names the replay
        that sent event i (None: an ordinary delivery): a replay is applied once per name, with checkpoints of
        its own."""
        remaining = (context or _Context(self.timeout_seconds)).get_remaining_time_in_millis()
        pending = CheckpointWrites()
        names = replays or [None] * len(events)
        keys = [CHECKPOINT_PREFIX + event_key(event, name) for event, name in zip(events, names, strict=True)]
        data = [identity(event, name) for event, name in zip(events, names, strict=True)]
        pool = _pool()
        read = pool.submit(self._read_checkpoints, keys)
        extra = pool.submit(alongside) if alongside is not None else None
        claims = [pool.submit(self._claim, e, d, remaining) for e, d in zip(events[1:], data[1:], strict=True)]
        first = self._claim(events[0], data[0], remaining)  # the calling thread makes one itself
        claimed = [first] + [future.result() for future in claims]
        if extra is not None and extra.exception() is not None:
            log.warning("booking Keap calls ahead failed (%s); they are booked as they are made", extra.exception())
        try:
            found = read.result()
        except Exception as exc:  # the store failed: nothing is applied; the claims are let go again
            from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyPersistenceLayerError

            self.finish(claimed, [exc] * len(claimed))
            error = IdempotencyPersistenceLayerError("Failed to read the events' checkpoints", exc)
            return [Claim(event, d, error=error) for event, d in zip(events, data, strict=True)]
        for claim, key in zip(claimed, keys, strict=True):
            if claim.granted:
                claim.checkpoints = DynamoCheckpoints(
                    self.table,
                    key[len(CHECKPOINT_PREFIX) :],
                    self.keep,
                    self.store.client,
                    completed=found.get(key, {}),
                    pending=pending,
                )
                claim.writes = pending
        return claimed

    def _claim(self, event: dict[str, Any], data: dict[str, Any], remaining_ms: int) -> Claim:
        """Powertools' own sequence: put the in-progress record; if one exists, its status decides."""
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyItemAlreadyExistsError,
            IdempotencyPersistenceLayerError,
        )
        from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS

        for _ in range(2):  # a record that expired between the put and the read is claimed on a second try
            try:
                self.store.save_inprogress(data=data, remaining_time_in_millis=remaining_ms)
                return Claim(event, data)
            except IdempotencyItemAlreadyExistsError as exc:
                try:
                    record = exc.old_data_record or self.store.get_record(data=data)
                except Exception as read_error:
                    return Claim(
                        event, data, error=IdempotencyPersistenceLayerError("Failed to read the record", read_error)
                    )
                if record is None:
                    continue
                if record.status == STATUS_CONSTANTS["COMPLETED"]:
                    return Claim(event, data, result=record.response_json_as_dict() or {})
                expiry = record.in_progress_expiry_timestamp
                if record.status == STATUS_CONSTANTS["INPROGRESS"] and (expiry is None or expiry >= time.time() * 1000):
                    message = f"Execution already in progress with idempotency key: {event_key(data)}"
                    return Claim(event, data, error=IdempotencyAlreadyInProgressError(message))
            except Exception as exc:
                return Claim(
                    event, data, error=IdempotencyPersistenceLayerError("Failed to save in progress record", exc)
                )
        return Claim(
            event, data, error=IdempotencyAlreadyInProgressError(f"the record of {event_key(data)} keeps changing")
        )

    def _read_checkpoints(self, item_ids: list[str]) -> dict[str, dict[str, Any]]:
        """checkpoint item id -> its completed steps, for every id that has an item, in BatchGetItem calls."""
        found: dict[str, dict[str, Any]] = {}
        wanted = list(dict.fromkeys(item_ids))
        for start in range(0, len(wanted), BATCH_GET_MAX):
            keys: list[dict[str, Any]] = [{"id": {"S": i}} for i in wanted[start : start + BATCH_GET_MAX]]
            for _ in range(10):  # DynamoDB may leave keys unprocessed under load: ask again for them
                answer = self.store.client.batch_get_item(
                    RequestItems={self.table: {"Keys": keys, "ConsistentRead": True}}
                )
                for item in answer.get("Responses", {}).get(self.table, []):
                    found[item["id"]["S"]] = steps_of(item)
                keys = answer.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
                if not keys:
                    break
            if keys:
                raise RuntimeError(f"DynamoDB left {len(keys)} checkpoint reads unprocessed")
        return found

    def finish(self, claims: list[Claim], outcomes: list[Any]) -> None:
        """Record each granted claim's outcome: a result (dict) completes it, an exception lets it go.

        The batch's checkpoints are written first for failed events (a retry must find them before it can
        claim the key again), alongside the results of the applied ones.
        """
        granted = [(c, o) for c, o in zip(claims, outcomes, strict=True) if c.granted]
        if not granted:
            return
        from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyPersistenceLayerError

        pool = _pool()
        batches = {id(c.writes): c.writes for c, _ in granted if c.writes is not None}.values()
        futures = [pool.submit(self.store.client.update_item, **u) for w in batches for u in w.take()]
        for claim, outcome in granted:
            if not isinstance(outcome, BaseException):
                futures.append(pool.submit(self.store.save_success, claim.data, outcome))
        errors = [f.exception() for f in futures]
        try:
            for claim, outcome in granted:
                if isinstance(outcome, BaseException):
                    self.store.delete_record(data=claim.data, exception=outcome)
        except Exception as exc:
            errors.append(exc)
        error = next((e for e in errors if e is not None), None)
        if error is not None:
            raise IdempotencyPersistenceLayerError("Failed to record the events' outcomes", error) from error


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """Threads for the calls of a batch that go to DynamoDB at once (claims, reads, results)."""
    return ThreadPoolExecutor(BATCH_CALLS_AT_ONCE, thread_name_prefix="idempotency")
