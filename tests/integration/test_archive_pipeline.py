"""The worker archives every accepted event, whatever the channel, before applying it: SQS batches, EventBridge
events and direct invokes through the real pipeline (emulator over HTTP, SQS and DynamoDB on moto)."""

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from test_metrics import emitted
from test_pipeline_triggers import drain, form_event, http_event, pipeline, queues, sqs_event

from keap_emulator import FaultPlan
from keap_relay.aws.archive import Archive
from keap_relay.aws.config import Settings
from keap_relay.aws.queue import REPLAY_ATTRIBUTES
from keap_relay.events.sources import typeform

ROOT = Path(__file__).resolve().parents[2]
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def fresh_world(emu):
    emu.reset()
    emu.set_faults(FaultPlan())


def archived(table):
    """Every archived form event of the last and next day, oldest first."""
    now = datetime.now(UTC)
    return list(Archive(table, 30).events("form_submission", now - 3 * DAY, now + DAY))


def attribute(value, data_type="String"):
    return {"stringValue": str(value), "dataType": data_type}


def batch_with_attributes(*records):
    """An SQS event of (canonical event, message attributes) records."""
    event = sqs_event([body for body, _ in records])
    for record, (_, attributes) in zip(event["Records"], records, strict=True):
        record["messageAttributes"] = attributes
    return event


def test_an_sqs_batch_archives_its_new_valid_events_once_and_applies_them(emu, archive_table):
    new = [form_event(email=f"new{i}@example.com") for i in range(3)]
    retried, replayed, redriven = (form_event(email=f"{w}@example.com") for w in ("retried", "replayed", "redriven"))
    invalid = form_event(email="not-an-email")
    first_seen = time.time() - 3600
    event = batch_with_attributes(
        *[(ev, {}) for ev in new],
        (retried, {"Retries": attribute(1, "Number"), "FirstSeenAt": attribute(first_seen, "Number")}),
        (replayed, {REPLAY_ATTRIBUTES[0]: attribute("fix-tags")}),
        (redriven, {"ErrorClass": attribute("KeapUnavailable")}),
        (invalid, {}),
    )
    sent = datetime.fromtimestamp(int(event["Records"][0]["attributes"]["SentTimestamp"]) / 1000, UTC)
    p = pipeline("form_submission", emu, archive_table=archive_table)
    assert p.handle(event) == {"batchItemFailures": [{"itemIdentifier": "m6"}]}  # the invalid one: no DLQ here
    assert [(a.event_id, a.received, a.event) for a in archived(archive_table)] == [
        (ev["id"], sent, ev) for ev in sorted(new, key=lambda ev: ev["id"])
    ]
    for who in ("new0", "new1", "new2", "retried", "replayed", "redriven"):
        assert emu.model.find_ids_by_email(f"{who}@example.com"), who


def test_a_record_handed_back_before_keeps_its_first_receipt_time(emu, archive_table):
    ev = form_event()
    first_seen = 1795687333.25  # 2026-11-26T07:22:13.250Z: a record handed back unapplied carries it, Retries 0
    event = batch_with_attributes(
        (ev, {"Retries": attribute(0, "Number"), "FirstSeenAt": attribute(f"{first_seen:.3f}", "Number")})
    )
    pipeline("form_submission", emu, archive_table=archive_table).handle(event)
    since = datetime(2026, 11, 26, tzinfo=UTC)
    [kept] = Archive(archive_table, 30).events("form_submission", since, since + DAY)
    assert kept.received == datetime.fromtimestamp(first_seen, UTC)


def test_an_eventbridge_event_is_archived_at_its_time_and_applied(emu, archive_table):
    envelope = json.loads((ROOT / "events" / "forms" / "eventbridge.json").read_text())
    out = pipeline("form_submission", emu, archive_table=archive_table).handle(envelope)
    assert out["status"] == "applied"
    since = datetime(2026, 11, 26, tzinfo=UTC)
    [kept] = Archive(archive_table, 30).events("form_submission", since, since + DAY)
    assert (kept.event_id, kept.received, kept.event) == (
        envelope["detail"]["id"],
        datetime(2026, 11, 26, 10, 7, 2, tzinfo=UTC),
        envelope["detail"],
    )


def test_a_direct_invoke_is_archived_now_and_applied(emu, archive_table):
    ev = form_event()
    before = datetime.now(UTC)
    assert pipeline("form_submission", emu, archive_table=archive_table).handle(ev)["status"] == "applied"
    [kept] = archived(archive_table)
    assert kept.event == ev and before - timedelta(milliseconds=1) <= kept.received <= datetime.now(UTC)


def test_an_invalid_event_is_not_archived(emu, archive_table, sqs):
    work, dlq = queues(sqs, "forms")
    p = pipeline("form_submission", emu, archive_table=archive_table, queue_url=work, dlq_url=dlq)
    assert p.handle(form_event(email="nope"))["status"] == "dead_lettered"
    assert p.handle(sqs_event([form_event(email="nope"), "{not json"])) == {"batchItemFailures": []}
    assert archived(archive_table) == []
    assert len(drain(sqs, dlq)) == 3


def test_nothing_is_archived_when_the_archive_is_off(emu, archive_table):
    p = pipeline("form_submission", emu, archive_table=None)
    p.handle(form_event())
    p.handle(sqs_event([form_event()]))
    assert boto3.client("dynamodb").scan(TableName=archive_table)["Items"] == []
    assert Settings.from_env("form_submission", {"ARCHIVE_TABLE": "", "ARCHIVE_DAYS": "0"}).archive_table is None


def test_the_webhook_path_writes_no_archive_and_the_worker_archives_the_canonical_event_only(emu, sqs, archive_table):
    """A Typeform webhook: its raw body and signature header are not in the archive, only the canonical event."""
    secret = "typeform-secret-for-archive"
    sample = json.loads((ROOT / "events" / "forms" / "http-typeform.json").read_text())
    raw = sample["body"].encode()
    headers = typeform.sign(raw, secret)
    work, _ = queues(sqs, "forms")
    p = pipeline("form_submission", emu, queue_url=work, archive_table=archive_table)
    p.settings.webhook_secrets_env = json.dumps({"typeform": secret})
    answer = p.handle(http_event("forms", raw, headers=headers, source="typeform"))
    assert answer["statusCode"] == 202
    assert archived(archive_table) == []  # the webhook answered without writing to the archive
    messages = drain(sqs, work)
    records = sqs_event([m["Body"] for m in messages])
    assert p.handle(records) == {"batchItemFailures": []}
    [kept] = archived(archive_table)
    assert kept.event == json.loads(messages[0]["Body"]) and kept.source == "typeform"
    [item] = boto3.client("dynamodb").scan(TableName=archive_table)["Items"]
    stored = json.dumps(item)
    for secret_or_raw in (secret, headers["typeform-signature"], "form_response", '"token"', "a3a12ec67a1365927098"):
        assert secret_or_raw not in stored


def test_a_batch_whose_archive_write_fails_goes_back_to_sqs_unapplied(emu, aws_env, caplog, capsys, monkeypatch):
    """The archive table is missing: the new records are handed back, nothing of them applied; a retried record
    (archived when it was first received) is applied; a record on its last receive is applied unarchived."""
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    new = form_event(email="new@example.com")
    retried = form_event(email="retried@example.com")
    event = batch_with_attributes((new, {}), (retried, {"Retries": attribute(2, "Number")}))
    p = pipeline("form_submission", emu, archive_table="no-such-archive", max_receive=5)
    assert p.handle(event) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert not emu.model.find_ids_by_email("new@example.com")
    assert emu.model.find_ids_by_email("retried@example.com")
    last = sqs_event([form_event(email="last@example.com")], receive_count=5)
    assert p.handle(last) == {"batchItemFailures": []}
    assert emu.model.find_ids_by_email("last@example.com")
    said = [r.getMessage() for r in caplog.records if "archive table no-such-archive" in r.getMessage()]
    assert [s.split("; ")[1] for s in said] == [
        "1 records handed back to SQS, 0 applied unarchived",
        "0 records handed back to SQS, 1 applied unarchived",
    ]
    assert not any("@example.com" in s for s in said)
    # Each invocation counts the events it could not archive (the retried record needed no archiving).
    failures = ("ArchiveWriteFailures", (("service", "form_submission"),))
    assert emitted(capsys.readouterr().out)[failures] == [1.0, 1.0]


def test_an_inline_event_whose_archive_write_fails_is_not_applied_and_fails_retryably(
    emu, aws_env, capsys, monkeypatch
):
    from keap_relay.aws.queue import EventFailed

    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)

    p = pipeline("form_submission", emu, archive_table="no-such-archive")
    with pytest.raises(EventFailed) as failed:
        p.handle(form_event(email="inline@example.com"))
    assert failed.value.transient and failed.value.failure.error_class == "ArchiveUnavailable"
    assert not emu.model.find_ids_by_email("inline@example.com")
    # A webhook applied inline (no queue: sam local) tells its sender to retry.
    answer = p.handle(http_event("forms", form_event(email="hook@example.com")))
    assert answer["statusCode"] == 503
    assert not emu.model.find_ids_by_email("hook@example.com")
    assert emitted(capsys.readouterr().out)[("ArchiveWriteFailures", (("service", "form_submission"),))] == [1.0, 1.0]
