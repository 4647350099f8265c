"""The event archive's table (keap_relay.aws.archive) on moto, made from template.yaml's ArchiveTable."""

import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from keap_relay.aws.archive import Archive, ArchivedEvent, ArchiveError

T0 = datetime(2026, 12, 1, 23, 59, 59, 500_000, tzinfo=UTC)  # half a second before a UTC day ends


def event(kind="form_submission", source="generic", email="ada@example.com", event_id=None, **more):
    ev = {"kind": kind, "source": source, "id": event_id or uuid.uuid4().hex, "contact": {"email": email}}
    ev.update(more)
    return ev


@pytest.fixture
def archive(archive_table):
    return Archive(archive_table, keep_days=30)


def items(table):
    return boto3.client("dynamodb").scan(TableName=table)["Items"]


def test_an_archived_event_is_its_canonical_event_source_and_receipt_time_and_nothing_else(archive, archive_table):
    ev = event(email="Ada@Example.COM", form={"id": "f1", "name": "Webinar"}, event_id="evt-1")
    archive.put(ev, T0)
    [item] = items(archive_table)
    assert set(item) == {"pk", "sk", "kind", "source", "event_id", "received", "event", "email", "expires"}
    assert item["pk"] == {"S": "form_submission#2026-12-01"}
    assert item["sk"] == {"S": "2026-12-01T23:59:59.500Z#generic#evt-1"}
    assert item["received"] == {"S": "2026-12-01T23:59:59.500Z"}
    assert item["email"] == {"S": "ada@example.com"}
    assert int(item["expires"]["N"]) == int(T0.timestamp()) + 30 * 86400
    [back] = archive.events("form_submission", T0 - timedelta(seconds=1), T0)
    assert back == ArchivedEvent("form_submission", "generic", "evt-1", T0, ev)
    assert back.email == "ada@example.com"


def test_events_are_listed_oldest_first_across_days_within_the_window_and_of_the_kind(archive):
    times = [T0 + timedelta(seconds=s) for s in (0, 0.2, 0.6, 3600, 86400 * 2)]  # over three UTC days
    forms = [event(event_id=f"f{i}") for i in range(len(times))]
    archive.put_many(list(zip(forms, times, strict=True)))
    archive.put(event(kind="purchase", event_id="p0", order={"id": "1"}), T0)
    listed = list(archive.events("form_submission", T0, T0 + timedelta(days=3)))
    assert [(e.event_id, e.received) for e in listed] == [(f"f{i}", t) for i, t in enumerate(times)]
    # Both ends are in the window, to the millisecond; the day after the last event holds nothing.
    inner = archive.events("form_submission", times[1], times[3])
    assert [e.event_id for e in inner] == ["f1", "f2", "f3"]
    assert [e.event_id for e in archive.events("purchase", T0, T0)] == ["p0"]
    assert list(archive.events("form_submission", times[3], times[1])) == []


def test_until_defaults_to_now(archive):
    now = datetime.now(UTC)
    archive.put_many([(event(event_id="old"), now - timedelta(days=2)), (event(event_id="new"), now)])
    assert [e.event_id for e in archive.events("form_submission", now - timedelta(days=3))] == ["old", "new"]


def test_events_of_one_source_only(archive):
    archive.put_many(
        [
            (event(source="typeform", event_id="t1"), T0),
            (event(source="generic", event_id="g1"), T0 + timedelta(milliseconds=1)),
            (event(source="typeform", event_id="t2"), T0 + timedelta(days=1)),
        ]
    )
    found = archive.events("form_submission", T0, T0 + timedelta(days=1), source="typeform")
    assert [e.event_id for e in found] == ["t1", "t2"]


def test_a_naive_time_is_utc(archive):
    archive.put(event(event_id="n1"), T0.replace(tzinfo=None))
    [found] = archive.events("form_submission", T0.replace(tzinfo=None), T0.replace(tzinfo=None))
    assert found.received == T0 and found.received.tzinfo is not None


def test_put_many_writes_every_item_in_chunks_and_the_same_receipt_once(archive, archive_table):
    many = [(event(event_id=f"e{i:03d}"), T0 + timedelta(milliseconds=i)) for i in range(60)]
    archive.put_many([*many, many[0], many[1]])  # one BatchWriteItem may not hold the same key twice
    archive.put_many(many[:5])  # a batch written again (redelivered) overwrites its own items
    assert len(items(archive_table)) == 60
    assert [e.event_id for e in archive.events("form_submission", T0, T0 + timedelta(seconds=1))] == [
        f"e{i:03d}" for i in range(60)
    ]


def test_events_are_paged(archive):
    # DynamoDB answers at most 1 MB a page; each of these is ~100 kB, so a day's Query takes more than one page.
    big = "x" * 100_000
    archive.put_many([(event(event_id=f"b{i:02d}", note=big), T0 - timedelta(seconds=30 - i)) for i in range(15)])
    assert [e.event_id for e in archive.events("form_submission", T0 - timedelta(minutes=1), T0)] == [
        f"b{i:02d}" for i in range(15)
    ]


def test_forget_erases_exactly_one_persons_events_of_every_kind_and_day(archive, archive_table):
    ada, bob = "ada@example.com", "bob@example.com"
    archive.put_many(
        [
            (event(email=ada, event_id="a1"), T0),
            (event(kind="purchase", email="ADA@example.com", event_id="a2", order={"id": "9"}), T0),
            (event(kind="unsubscribe", email=ada, event_id="a3"), T0 + timedelta(days=5)),
            *[(event(email=ada, event_id=f"many{i}"), T0 + timedelta(minutes=i)) for i in range(30)],
            (event(email=bob, event_id="b1"), T0),
            (event(kind="purchase", email=bob, event_id="b2", order={"id": "8"}), T0),
        ]
    )
    assert archive.forget(" Ada@Example.com ") == 33
    left = {(i["event_id"]["S"], i["email"]["S"]) for i in items(archive_table)}
    assert left == {("b1", bob), ("b2", bob)}
    assert archive.forget(ada) == 0
    assert archive.forget("") == 0


def test_from_env_is_none_when_the_archive_is_off(aws_env):
    assert Archive.from_env({}) is None
    assert Archive.from_env({"ARCHIVE_TABLE": "", "ARCHIVE_DAYS": "30"}) is None
    on = Archive.from_env({"ARCHIVE_TABLE": "t1", "ARCHIVE_DAYS": "7"})
    assert (on.table, on.keep_days) == ("t1", 7)
    assert Archive.from_env({"ARCHIVE_TABLE": "t1"}).keep_days == 30


def test_a_failed_write_raises_archive_error_naming_no_event_content(aws_env):
    missing = Archive(f"no-such-table-{uuid.uuid4().hex[:6]}", 30, boto3.client("dynamodb"))
    with pytest.raises(ArchiveError) as failed:
        missing.put(event(email="secret-person@example.com"), T0)
    assert "secret-person" not in str(failed.value) and missing.table in str(failed.value)


class LeavesItemsUnprocessed:
    """The real DynamoDB client, except that the first `times` BatchWriteItem calls leave their last item
    unprocessed, as DynamoDB does under throttling (moto never does)."""

    def __init__(self, client, times):
        self.client, self.times, self.calls = client, times, 0

    def batch_write_item(self, RequestItems):
        self.calls += 1
        if self.calls > self.times:
            return self.client.batch_write_item(RequestItems=RequestItems)
        ((table, requests),) = RequestItems.items()
        if len(requests) > 1:
            self.client.batch_write_item(RequestItems={table: requests[:-1]})
        return {"UnprocessedItems": {table: requests[-1:]}}

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_unprocessed_items_are_written_again_then_the_write_fails_if_they_stay(archive_table):
    flaky = LeavesItemsUnprocessed(boto3.client("dynamodb"), times=2)
    Archive(archive_table, 30, flaky).put_many([(event(event_id=f"u{i}"), T0) for i in range(3)])
    assert flaky.calls == 3 and len(items(archive_table)) == 3
    stuck = LeavesItemsUnprocessed(boto3.client("dynamodb"), times=99)
    with pytest.raises(ArchiveError, match="unprocessed"):
        Archive(archive_table, 30, stuck).put(event(event_id="never"), T0)
