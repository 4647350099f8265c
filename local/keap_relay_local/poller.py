"""The SQS event source mapping Lambda runs for us in AWS: receive a batch, invoke, delete the successes."""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .fnhost import FunctionError

log = logging.getLogger("keap_relay_local.poller")

SQS_RECEIVE_MAX = 10  # one ReceiveMessage call returns at most ten messages

# SQS message-attribute value fields → the key Lambda uses for them in an SQS event record.
_ATTRIBUTE_FIELDS = {
    "StringValue": "stringValue",
    "BinaryValue": "binaryValue",
    "StringListValues": "stringListValues",
    "BinaryListValues": "binaryListValues",
    "DataType": "dataType",
}


def lambda_message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """SQS MessageAttributes in the shape Lambda puts them in an event record."""
    out = {}
    for name, value in attributes.items():
        record: dict[str, Any] = {"stringListValues": [], "binaryListValues": []}
        for sqs_key, lambda_key in _ATTRIBUTE_FIELDS.items():
            if sqs_key in value:
                raw = value[sqs_key]
                if isinstance(raw, bytes):
                    raw = base64.b64encode(raw).decode()
                record[lambda_key] = raw
        out[name] = record
    return out


def build_sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The Lambda SQS event for a batch returned by ReceiveMessage."""
    records = []
    for message in messages:
        body = message.get("Body", "")
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": body,
                "attributes": dict(message.get("Attributes") or {}),
                "messageAttributes": lambda_message_attributes(message.get("MessageAttributes") or {}),
                "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),  # noqa: S324
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def failed_message_ids(result: Any, message_ids: list[str], report_item_failures: bool) -> set[str]:
    """Which messages stay on the queue after an invocation returned `result`.

    Lambda's rules: without ReportBatchItemFailures any successful return deletes the batch; with it,
    listed ids stay, and a malformed response (empty, or an id not in the batch) fails the whole batch.
    """
    if not report_item_failures or not isinstance(result, dict):
        return set()
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    try:
        ids = {item["itemIdentifier"] for item in failures}
    except (TypeError, KeyError):
        return set(message_ids)
    if not ids <= set(message_ids) or any(not i for i in ids):
        return set(message_ids)
    return ids


@dataclass
class PollerStats:
    batches: int = 0
    records: int = 0
    deleted: int = 0
    failed_records: int = 0  # records left on the queue by a partial batch response
    failed_invocations: int = 0  # invocations that errored: their whole batch stays


class QueuePoller:
    """One thread that feeds one queue to one function, like an SQS event source mapping."""

    def __init__(
        self,
        function: str,
        *,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        invoke: Callable[[str, dict[str, Any]], Any],
        region: str,
        batch_size: int = 10,
        batching_window: float = 0,
        report_item_failures: bool = True,
        wait_seconds: int = 1,
    ) -> None:
        self.function = function
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.stats = PollerStats()
        self._sqs = sqs
        self._invoke = invoke
        self._region = region
        self._batch_size = batch_size
        self._window = batching_window
        self._report = report_item_failures
        self._wait = wait_seconds
        self._stop = threading.Event()
        self._busy = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        """A batch is received and not yet settled (invoked, deleted or released)."""
        return self._busy.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"poller-{self.function}", daemon=True)
        self._thread.start()

    def signal_stop(self) -> None:
        """Ask the thread to finish after its current long poll or batch."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _receive(self, count: int, wait: int) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(count, SQS_RECEIVE_MAX),
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return response.get("Messages") or []

    def _collect(self) -> list[dict[str, Any]]:
        batch = self._receive(self._batch_size, self._wait)
        if not batch:
            return batch
        self._busy.set()
        deadline = time.monotonic() + self._window
        by_id = {m["MessageId"]: m for m in batch}
        # A batch larger than ten, or a batching window, takes more than one receive.
        while len(by_id) < self._batch_size and not self._stop.is_set():
            more = self._receive(self._batch_size - len(by_id), 0)
            if not more and time.monotonic() >= deadline:
                break
            # A message whose visibility ran out during the window comes again: one record, newest handle.
            by_id.update((m["MessageId"], m) for m in more)
            if not more:
                time.sleep(0.05)
        return list(by_id.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._collect()
                if batch:
                    self._deliver(batch)
            except Exception:  # the event source keeps polling whatever one batch did
                if not self._stop.is_set():
                    log.exception("poller %s: receive/delete failed", self.function)
                    self._stop.wait(0.5)
            finally:
                self._busy.clear()

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        event = build_sqs_event(batch, self.queue_arn, self._region)
        ids = [m["MessageId"] for m in batch]
        self.stats.batches += 1
        self.stats.records += len(batch)
        try:
            result = self._invoke(self.function, event)
        except FunctionError as exc:
            # A failed invocation leaves the whole batch: it returns after the visibility timeout.
            self.stats.failed_invocations += 1
            log.warning("poller %s: invocation of %d records failed (%s)", self.function, len(batch), exc)
            return
        failed = failed_message_ids(result, ids, self._report)
        self.stats.failed_records += len(failed)
        done = [m for m in batch if m["MessageId"] not in failed]
        for start in range(0, len(done), SQS_RECEIVE_MAX):
            chunk = done[start : start + SQS_RECEIVE_MAX]
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        self.stats.deleted += len(done)
        if failed:
            log.info("poller %s: %d of %d records failed back to the queue", self.function, len(failed), len(batch))
