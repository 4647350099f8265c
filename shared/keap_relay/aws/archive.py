"""The event archive: every accepted canonical event kept in DynamoDB for ArchiveDays, listed by kind and time,
erased per person.

One item per event and receipt: pk `<kind>#<YYYY-MM-DD>` (the UTC day it was received), sk
`<received, ISO-8601 UTC to the ms>#<source>#<id>`; the canonical event as JSON, its email (lower-cased) for the
GSI `by-email`, and `expires` for the table's TTL. Nothing else: no raw body, no headers. docs/archive.md says
why a DynamoDB table (and not S3 or EventBridge's archive).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..events.canonical import EventInvalid, validate_event
from . import observe
from .idempotency import dynamodb_client
from .invocation import is_eventbridge_event
from .queue import EventFailed, Failure, Replay, Retry

if TYPE_CHECKING:
    from .config import Settings

log = logging.getLogger("keap_relay.pipeline")

DEFAULT_KEEP_DAYS = 30  # the template's ArchiveDays default; also what ARCHIVE_DAYS unset means
EMAIL_INDEX = "by-email"
# The SQS message attribute a replayed event carries (its replay's name): the worker archives it no second time.
BATCH_WRITE_MAX = 25  # DynamoDB's most requests per BatchWriteItem
WRITE_ATTEMPTS = 5  # BatchWriteItem rounds for unprocessed items before giving up
WRITE_BACKOFF_SECONDS = 0.05  # doubled each round: 0.05 + 0.1 + 0.2 + 0.4 s at most, inside any batch's time
# '$' sorts right after the '#' that ends a key's timestamp, so a range ending at "<until>$" holds every item
# received in `until`'s millisecond, whatever its source and id.
_AFTER_STAMP = "$"


class ArchiveError(RuntimeError):
    """The archive could not be written (DynamoDB unavailable, or items left unprocessed after retries)."""


def _error_name(exc: Exception) -> str:
    """AWS's error code (ResourceNotFoundException, ...) or the exception's class: never the request's items."""
    code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
    return str(code or type(exc).__name__)


def _utc(moment: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def stamp(moment: datetime) -> str:
    """`2026-12-01T10:00:00.123Z`: ISO-8601 UTC to the millisecond, which sorts as time does."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%S.") + f"{_utc(moment).microsecond // 1000:03d}Z"


def parse_stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _email_of(event: dict[str, Any]) -> str | None:
    contact = event.get("contact")
    email = contact.get("email") if isinstance(contact, dict) else None
    return email.strip().lower() if isinstance(email, str) and email.strip() else None


@dataclass(frozen=True)
class ArchivedEvent:
    """One archived event: the canonical event as accepted, its source and when the relay first received it."""

    kind: str
    source: str
    event_id: str
    received: datetime  # timezone-aware UTC
    event: dict[str, Any]

    @property
    def email(self) -> str | None:
        return _email_of(self.event)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ArchivedEvent:
        return cls(
            kind=item["kind"]["S"],
            source=item["source"]["S"],
            event_id=item["event_id"]["S"],
            received=parse_stamp(item["received"]["S"]),
            event=json.loads(item["event"]["S"]),
        )


class Archive:
    """The archive table: `put_many` on the worker path, `events` and `forget` for the operator's commands."""

    def __init__(self, table: str, keep_days: int, client: Any | None = None) -> None:
        self.table = table
        self.keep_days = keep_days
        self.client = client or dynamodb_client()  # by default the container's one DynamoDB client

    def __repr__(self) -> str:
        return f"Archive(table={self.table!r}, keep_days={self.keep_days})"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Archive | None:
        """The archive ARCHIVE_TABLE names, kept ARCHIVE_DAYS; None when ARCHIVE_TABLE is unset or empty (off)."""
        env = os.environ if env is None else env
        table = (env.get("ARCHIVE_TABLE") or "").strip()
        if not table:
            return None
        return cls(table, int(env.get("ARCHIVE_DAYS") or DEFAULT_KEEP_DAYS))

    # ------------------------------------------------------------------------------------------------ writing

    def item(self, event: dict[str, Any], received: datetime) -> dict[str, Any]:
        """The DynamoDB item of one canonical event received at `received`."""
        received = _utc(received)
        kind, source, event_id = str(event["kind"]), str(event["source"]), str(event["id"])
        item = {
            "pk": {"S": f"{kind}#{received.date().isoformat()}"},
            "sk": {"S": f"{stamp(received)}#{source}#{event_id}"},
            "kind": {"S": kind},
            "source": {"S": source},
            "event_id": {"S": event_id},
            "received": {"S": stamp(received)},
            "event": {"S": json.dumps(event, separators=(",", ":"), ensure_ascii=False)},
            "expires": {"N": str(int(received.timestamp()) + self.keep_days * 86400)},
        }
        email = _email_of(event)
        if email:
            item["email"] = {"S": email}
        return item

    def put(self, event: dict[str, Any], received: datetime) -> None:
        self.put_many([(event, received)])

    def put_many(self, items: Sequence[tuple[dict[str, Any], datetime]]) -> None:
        """(canonical event, received) pairs; BatchWriteItem in chunks of 25, unprocessed items retried; raises
        ArchiveError on failure. The same event received in the same millisecond is one item (a key may appear
        once per BatchWriteItem), so writing a batch again writes the same items again."""
        unique = {}
        for event, received in items:
            item = self.item(event, received)
            unique[(item["pk"]["S"], item["sk"]["S"])] = {"PutRequest": {"Item": item}}
        self._batch_write(list(unique.values()))

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), BATCH_WRITE_MAX):
            pending = requests[start : start + BATCH_WRITE_MAX]
            for attempt in range(WRITE_ATTEMPTS):
                try:
                    answer = self.client.batch_write_item(RequestItems={self.table: pending})
                except Exception as exc:  # the SDK's errors vary; the table name is not secret, the items are
                    raise ArchiveError(f"cannot write to archive table {self.table}: {_error_name(exc)}") from None
                pending = (answer.get("UnprocessedItems") or {}).get(self.table) or []
                if not pending:
                    break
                if attempt < WRITE_ATTEMPTS - 1:
                    time.sleep(WRITE_BACKOFF_SECONDS * 2**attempt)
            if pending:
                raise ArchiveError(f"archive table {self.table}: {len(pending)} items unprocessed after retries")

    # ------------------------------------------------------------------------------------------------ reading

    def events(
        self, kind: str, since: datetime, until: datetime | None = None, source: str | None = None
    ) -> Iterator[ArchivedEvent]:
        """The kind's events received in [since, until] (until: now), oldest first, of one source if given.

        One Query per UTC day (each day is a partition), sk BETWEEN the two times, paged; `kind` is the canonical
        kind name (form_submission, purchase, unsubscribe)."""
        since = _utc(since)
        until = _utc(until) if until is not None else datetime.now(UTC)
        if until < since:
            return
        low, high = stamp(since), stamp(until) + _AFTER_STAMP
        day = since.date()
        while day <= until.date():
            yield from self._day(kind, day, low, high, source)
            day += timedelta(days=1)

    def _day(self, kind: str, day: date, low: str, high: str, source: str | None) -> Iterator[ArchivedEvent]:
        query: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":pk": {"S": f"{kind}#{day.isoformat()}"},
                ":low": {"S": low},
                ":high": {"S": high},
            },
        }
        if source is not None:
            query["FilterExpression"] = "#source = :source"  # SOURCE is one of DynamoDB's reserved words
            query["ExpressionAttributeNames"] = {"#source": "source"}
            query["ExpressionAttributeValues"][":source"] = {"S": source}
        while True:
            page = self.client.query(**query)
            for item in page.get("Items") or []:
                yield ArchivedEvent.from_item(item)
            if not page.get("LastEvaluatedKey"):
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # ------------------------------------------------------------------------------------------------ erasing

    def _keys_of(self, email: str) -> list[dict[str, Any]]:
        """The keys of every item with this email, from the `by-email` index (keys only)."""
        wanted = email.strip().lower()
        if not wanted:
            return []
        keys: list[dict[str, Any]] = []
        query: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": EMAIL_INDEX,
            "KeyConditionExpression": "email = :email",
            "ExpressionAttributeValues": {":email": {"S": wanted}},
        }
        while True:
            page = self.client.query(**query)
            keys += [{"pk": item["pk"], "sk": item["sk"]} for item in page.get("Items") or []]
            if not page.get("LastEvaluatedKey"):
                return keys
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def held(self, email: str) -> int:
        """How many archived events carry this email (what `forget` would delete now)."""
        return len(self._keys_of(email))

    def forget(self, email: str) -> int:
        """Delete every archived event with this email (any kind, any day); return how many.

        The GSI is eventually consistent: an event archived in the last second may not be found yet."""
        keys = self._keys_of(email)
        self._batch_write([{"DeleteRequest": {"Key": key}} for key in keys])
        return len(keys)


# ---------------------------------------------------------------------------------------------------- the worker
# The worker archives what it receives, whatever the channel (a webhook's queue, an EventBridge rule, a producer
# writing to the queue), before applying it; the webhook path makes no archive call, so its answer waits for none.


def _archive_of(settings: Settings) -> Archive | None:
    return Archive(settings.archive_table, settings.archive_days) if settings.archive_table else None


def _valid(event: Any, kind: str) -> dict[str, Any] | None:
    """The canonical event as the pipeline will apply it; None when invalid (the pipeline dead-letters it)."""
    try:
        return validate_event(event, kind)
    except EventInvalid:
        return None


def eventbridge_time(envelope: dict[str, Any]) -> datetime | None:
    """An EventBridge event's `time` (when it was put on the bus), None when it has none that parses."""
    try:
        return parse_stamp(str(envelope["time"]))
    except (KeyError, ValueError):
        return None


def _newly_received(record: dict[str, Any]) -> tuple[dict[str, Any], datetime] | None:
    """An SQS record's event and when the relay first accepted it, if this receipt is its first archiving.

    Not archived again: a record re-queued by a retry (Retries > 0), a replayed one (it is in the archive
    already) and a dead letter redriven to the queue (ErrorClass). A record SQS redelivers keeps its first
    receipt time, so it is written again as the same item."""
    retry = Retry.of(record)
    if retry.retries or retry.redriven_error or Replay.of(record) is not None:
        return None
    try:
        event = json.loads(record.get("body") or "")
    except ValueError:
        return None
    queued = "FirstSeenAt" in (record.get("messageAttributes") or {}) or (record.get("attributes") or {}).get(
        "SentTimestamp"
    )
    received = datetime.fromtimestamp(retry.first_seen, UTC) if queued else None
    if is_eventbridge_event(event):  # a rule's envelope kept whole (moto ignores InputPath; a DLQ'd delivery)
        received = received or eventbridge_time(event)
        event = event["detail"]
    return event, received or datetime.now(UTC)


def keep_batch(settings: Settings, kind: str, records: Sequence[dict[str, Any]]) -> list[str]:
    """Archive an SQS batch's newly received, valid events in one write before any is applied.

    Returns the message ids to hand back to SQS unapplied: none when the write succeeded (or the archive is
    off), else every record the write was for, to be archived and applied on redelivery. A record on its last
    receive is applied even so, unarchived and logged: SQS would move it to the DLQ without a reason."""
    archive = _archive_of(settings)
    if archive is None:
        return []
    pending: dict[str, tuple[dict[str, Any], datetime]] = {}
    for record in records:
        found = _newly_received(record)
        valid = _valid(found[0], kind) if found else None
        if found and valid is not None:
            pending[str(record.get("messageId"))] = (valid, found[1])
    if not pending:
        return []
    try:
        archive.put_many(list(pending.values()))
    except ArchiveError as exc:
        receives = {str(r.get("messageId")): Retry.of(r).receives for r in records}
        handed_back = [m for m in pending if receives[m] < settings.max_receive_count]
        unarchived = len(pending) - len(handed_back)
        observe.count("ArchiveWriteFailures", kind, len(pending))
        log.error("%s; %d records handed back to SQS, %d applied unarchived", exc, len(handed_back), unarchived)
        return handed_back
    return []


def keep(settings: Settings, kind: str, event: Any, received: datetime | None = None) -> None:
    """Archive one event applied inline (EventBridge, a direct invoke) before it is applied: received is the
    EventBridge event's time, else now. Raises a retryable EventFailed when the archive cannot be written."""
    archive = _archive_of(settings)
    valid = _valid(event, kind) if archive is not None else None
    if archive is None or valid is None:
        return
    try:
        archive.put(valid, received or datetime.now(UTC))
    except ArchiveError as exc:
        observe.count("ArchiveWriteFailures", kind)
        where = {"kind": kind, "source": str(valid["source"]), "event_id": str(valid["id"])}
        raise EventFailed(Failure.retryable("ArchiveUnavailable", str(exc), "archive", **where)) from exc
