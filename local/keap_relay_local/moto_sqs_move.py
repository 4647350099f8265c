"""SQS StartMessageMoveTask / ListMessageMoveTasks / CancelMessageMoveTask for moto, which (5.2.5) lacks them.

`install()` registers the three actions on moto's SQS responses class, so the local stack's moto answers
them the way AWS documents DLQ redrive: an asynchronous task moves the messages that were in the source
(a dead-letter queue) when it started to the destination, oldest first, at most MaxNumberOfMessagesPerSecond,
each as a new message (new id, new sent time, receive count 0) with the same body and message attributes.
Tasks are kept on moto's per-account/region backend, so a moto reset forgets them.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

MOTO_VERSION = "5.2.5"  # the moto this patch is for; a test fails when moto changes, to check it is still needed
ACTIVE = ("RUNNING", "CANCELLING")
MAX_RATE = 500  # AWS's ceiling for MaxNumberOfMessagesPerSecond
DEFAULT_RATE = 500  # AWS picks a rate from the backlog when none is given; locally: as fast as allowed
RECENT_TASKS = 10  # ListMessageMoveTasks returns at most the ten most recent
IDLE_POLL = 0.05  # how often a task looks again for messages that are in flight (received, not yet visible)

_installed = threading.Lock()
_sequence = itertools.count()  # orders tasks started within one millisecond


def _error(code: str, message: str) -> Exception:
    from moto.sqs.exceptions import SQSException

    return SQSException(code, message)


@dataclass
class MoveTask:
    """One message movement task, as ListMessageMoveTasks reports it."""

    source_arn: str
    destination_arn: str | None  # as requested: None means "back to the DLQ's source queue"
    max_per_second: int | None
    message_ids: list[str]  # what was in the source when the task started, oldest first
    task_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    order: int = field(default_factory=lambda: next(_sequence))
    status: str = "RUNNING"
    moved: int = 0
    failure_reason: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def handle(self) -> str:
        # AWS's handle is opaque base64 naming the task and its source; this one is shaped the same way.
        raw = json.dumps({"taskId": self.task_id, "sourceArn": self.source_arn}, separators=(",", ":"))
        return base64.b64encode(raw.encode()).decode()

    def entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Status": self.status,
            "SourceArn": self.source_arn,
            "ApproximateNumberOfMessagesMoved": self.moved,
            "ApproximateNumberOfMessagesToMove": len(self.message_ids),
            "StartedTimestamp": self.started_ms,
        }
        if self.status == "RUNNING":
            out["TaskHandle"] = self.handle  # AWS gives the handle only while a task can be cancelled
        if self.destination_arn:
            out["DestinationArn"] = self.destination_arn
        if self.max_per_second is not None:
            out["MaxNumberOfMessagesPerSecond"] = self.max_per_second
        if self.failure_reason:
            out["FailureReason"] = self.failure_reason
        return out


def _tasks(backend: Any) -> list[MoveTask]:
    return backend.__dict__.setdefault("_keap_relay_move_tasks", [])


def _queue_of(arn: str) -> tuple[Any, Any]:
    """(backend, queue) for arn:aws:sqs:<region>:<account>:<name>; ResourceNotFoundException otherwise."""
    from moto.sqs.exceptions import QueueDoesNotExist
    from moto.sqs.models import sqs_backends

    parts = str(arn or "").split(":")
    if len(parts) != 6 or parts[:3] != ["arn", "aws", "sqs"]:
        raise _error("InvalidParameterValue", f"Value {arn} for parameter SourceArn/DestinationArn is invalid.")
    region, account, name = parts[3], parts[4], parts[5]
    backend = sqs_backends[account][region]
    try:
        return backend, backend.get_queue(name)
    except QueueDoesNotExist:
        raise _error("ResourceNotFoundException", "The resource that you specified does not exist.") from None


def start(source_arn: str, destination_arn: str | None, max_per_second: int | None) -> MoveTask:
    """StartMessageMoveTask: validate as AWS does, then move in a background thread."""
    backend, source = _queue_of(source_arn)
    origins = [q for q in backend.queues.values() if q.dead_letter_queue is source]
    if not origins:
        raise _error("InvalidParameterValue", "Source queue must be configured as a Dead Letter Queue.")
    if max_per_second is not None and not 1 <= int(max_per_second) <= MAX_RATE:
        raise _error(
            "InvalidParameterValue",
            f"Value {max_per_second} for parameter MaxNumberOfMessagesPerSecond is invalid. "
            f"Reason: must be between 1 and {MAX_RATE}.",
        )
    if destination_arn:
        dest_backend, destination = _queue_of(destination_arn)
    elif len(origins) == 1:
        # Messages a DLQ received are redriven to where they came from; with one source queue that is it.
        dest_backend, destination = backend, origins[0]
    else:
        raise _error(
            "InvalidParameterValue",
            "this local SQS cannot tell which of several source queues a message came from; give DestinationArn",
        )
    if destination.fifo_queue != source.fifo_queue:
        raise _error("InvalidParameterValue", "The source and destination queues must be of the same type.")
    tasks = _tasks(backend)
    if any(t.source_arn == source_arn and t.status in ACTIVE for t in tasks):
        raise _error(
            "InvalidParameterValue",
            "There is already a task running. Only one active task is allowed for a source queue arn at a given time.",
        )
    snapshot = [m.id for m in sorted(source._messages, key=lambda m: m.sent_timestamp or 0)]
    task = MoveTask(source_arn, destination_arn or None, int(max_per_second) if max_per_second else None, snapshot)
    tasks.append(task)
    threading.Thread(
        target=_run, args=(task, source, dest_backend, destination), name=f"sqs-move-{task.task_id[:8]}", daemon=True
    ).start()
    return task


def _take(source: Any, message_id: str) -> tuple[str, Any]:
    """('gone'|'busy'|'ok', message): a message still in the source and visible is removed and returned."""
    with source._messages_lock:
        message = next((m for m in source._messages if m.id == message_id), None)
        if message is None:
            return "gone", None
        if not message.visible or message.delayed:
            return "busy", None
        source._messages.remove(message)
        source.pending_messages.discard(message)
        return "ok", message


def _run(task: MoveTask, source: Any, dest_backend: Any, destination: Any) -> None:
    interval = 1.0 / (task.max_per_second or DEFAULT_RATE)
    waiting = list(task.message_ids)
    try:
        while waiting:
            still: list[str] = []
            for message_id in waiting:
                if task.cancel.is_set():
                    task.status = "CANCELLED"
                    return
                state, message = _take(source, message_id)
                if state == "busy":
                    still.append(message_id)  # received by someone (a `dlq list`): moved once visible again
                    continue
                if state == "gone":
                    continue  # deleted (purged, or consumed) since the task started: nothing to move
                dest_backend.send_message(
                    destination.name,
                    message.body,
                    message_attributes=deepcopy(message.message_attributes),
                    group_id=message.group_id,
                    deduplication_id=message.deduplication_id,
                )
                task.moved += 1
                time.sleep(interval)
            waiting = still
            if waiting:
                time.sleep(IDLE_POLL)
        task.status = "COMPLETED"
    except Exception as exc:  # a task that cannot go on says why, as AWS's FailureReason does
        task.failure_reason = f"{type(exc).__name__}: {exc}"
        task.status = "FAILED"


def list_tasks(source_arn: str, max_results: int | None) -> list[MoveTask]:
    """ListMessageMoveTasks: the most recent tasks of a source, newest first."""
    backend, _ = _queue_of(source_arn)
    count = 1 if max_results is None else int(max_results)
    if not 1 <= count <= RECENT_TASKS:
        raise _error("InvalidParameterValue", f"Value {count} for parameter MaxResults is invalid (1-10).")
    mine = [t for t in _tasks(backend) if t.source_arn == source_arn]
    return sorted(mine, key=lambda t: t.order, reverse=True)[:count]


def cancel(handle: str) -> MoveTask:
    """CancelMessageMoveTask: stop a running task; the messages it moved stay moved."""
    try:
        ident = json.loads(base64.b64decode(handle.encode(), validate=True))
        backend, _ = _queue_of(ident["sourceArn"])
    except (ValueError, KeyError, TypeError):
        raise _error("ResourceNotFoundException", "The resource that you specified does not exist.") from None
    task = next((t for t in _tasks(backend) if t.task_id == ident.get("taskId")), None)
    if task is None:
        raise _error("ResourceNotFoundException", "The resource that you specified does not exist.")
    if task.status != "RUNNING":
        raise _error("InvalidParameterValue", f"Only a RUNNING task can be cancelled; this one is {task.status}.")
    task.status = "CANCELLING"
    task.cancel.set()
    return task


# ---------------------------------------------------------------------------------------------------- moto wiring


def _action(run: Callable[[Callable[[str], Any]], dict[str, Any]]) -> Callable[[Any], Any]:
    """An SQSResponse method: `run` reads the request's parameters and returns the answer's fields."""

    def action(self: Any) -> Any:
        from moto.core.responses import ActionResult

        return ActionResult(run(self._get_param))

    return action


# SQS action (snake case, as moto dispatches) → its implementation.
ACTIONS = {
    "start_message_move_task": _action(
        lambda p: {"TaskHandle": start(p("SourceArn"), p("DestinationArn"), p("MaxNumberOfMessagesPerSecond")).handle}
    ),
    "list_message_move_tasks": _action(
        lambda p: {"Results": [t.entry() for t in list_tasks(p("SourceArn"), p("MaxResults"))]}
    ),
    "cancel_message_move_task": _action(lambda p: {"ApproximateNumberOfMessagesMoved": cancel(p("TaskHandle")).moved}),
}


def install() -> None:
    """Add the actions to moto's SQS responses class (idempotent; moto's own, if it ever has them, win)."""
    from moto.sqs.responses import SQSResponse

    with _installed:
        for name, implementation in ACTIONS.items():
            if not hasattr(SQSResponse, name):
                setattr(SQSResponse, name, implementation)
