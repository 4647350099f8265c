"""A replayed event through the real pipeline (emulator over HTTP, SQS and DynamoDB on moto): applied once per
replay name, only the replayed parts of its plan, its marker kept on retries and dead letters."""

import json
import uuid
from pathlib import Path

import boto3
import pytest

from keap_emulator import FaultPlan
from keap_emulator.server import DEFAULT_API_KEY
from keap_relay.aws.config import Settings
from keap_relay.aws.pipeline import Pipeline
from keap_relay.aws.queue import Replay

KEY = DEFAULT_API_KEY
ROUTES = "version: 1\npurchases:\n  - match: {}\n    tags: [201, 202]\n    action_sets: [21]\n    campaigns: [11]\n"


@pytest.fixture(autouse=True)
def fresh(emu):
    emu.reset()
    emu.set_faults(FaultPlan())


def pipeline(emu, table, tmp_path, routes=ROUTES, **more):
    path = Path(tmp_path) / f"routes-{uuid.uuid4().hex[:6]}.yaml"  # routes are loaded once per path
    path.write_text(routes)
    settings = Settings(
        kind="purchase",
        keap_api="xmlrpc",  # action sets and legacy sequences: XML-RPC
        keap_url=emu.url,
        routes_file=str(path),
        keap_api_key_env=KEY,
        idempotency_table=table,
        retry_base_seconds=0,
        **more,
    )
    p = Pipeline("purchase", settings)
    p.runner.keap.client.max_attempts = 1
    return p


def purchase(email):
    return {
        "kind": "purchase",
        "source": "shopify",
        "id": f"o-{uuid.uuid4().hex[:8]}",
        "contact": {"email": email},
        "order": {"id": "1001", "total": "49.00", "items": [{"sku": "COURSE-101"}]},
    }


def methods(emu):
    return [c["method"] for c in emu.calls() if c["method"]]


def marked(replay, **extra):
    """A Lambda SQS record's message attributes for a replayed event."""
    attributes = {**replay.attributes(), **extra}
    return {name: {"stringValue": v["StringValue"], "dataType": v["DataType"]} for name, v in attributes.items()}


def sqs_record(body, attributes):
    record = {
        "messageId": "m0",
        "receiptHandle": "h0",
        "body": json.dumps(body),
        "eventSource": "aws:sqs",
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
        "messageAttributes": attributes,
    }
    return {"Records": [record]}


def test_a_replay_applies_an_applied_event_again_once_per_name_and_only_its_parts(emu, dynamo_table, tmp_path):
    p = pipeline(emu, dynamo_table, tmp_path)
    event = purchase("replayed@example.com")
    p.process(event)
    [cid] = emu.model.find_ids_by_email("replayed@example.com")
    emu.model.remove_from_group(cid, 202)  # someone removed a tag the routes give
    assert len(emu.model.action_set_runs(cid)) == 1
    before = len(methods(emu))

    p.process(event)  # a duplicate delivery: nothing
    assert len(methods(emu)) == before

    p.process(event, replay=Replay("fix-tags"))
    made = methods(emu)[before:]
    assert sorted(made) == ["ContactService.addToGroup", "ContactService.addToGroup", "ContactService.addWithDupCheck"]
    assert emu.model.contact_tags(cid) == {201, 202}
    assert len(emu.model.action_set_runs(cid)) == 1  # a once-only step is not replayed by default

    p.process(event, replay=Replay("fix-tags"))  # the same replay again: nothing
    assert len(methods(emu)) == before + 3
    p.process(event, replay=Replay("fix-all", ("sequences", "once-only")))  # another replay: its own parts
    assert len(emu.model.action_set_runs(cid)) == 2

    dynamodb = boto3.client("dynamodb")
    ids = {item["id"]["S"] for item in dynamodb.scan(TableName=dynamo_table)["Items"]}
    key = f"purchase#shopify#{event['id']}"
    assert {f"checkpoint#{key}", f"checkpoint#{key}#fix-tags", f"checkpoint#{key}#fix-all"} <= ids
    assert len([i for i in ids if not i.startswith("checkpoint#")]) == 3  # one idempotency record per name


def test_a_transiently_failed_replayed_record_is_requeued_with_its_marker(emu, dynamo_table, tmp_path, sqs):
    work = sqs.create_queue(QueueName=f"work-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    p = pipeline(emu, dynamo_table, tmp_path, queue_url=work)
    emu.set_faults(FaultPlan(rate_5xx=1.0, methods={"ContactService.addToGroup"}))
    replay = Replay("fix-tags", ("sequences",))
    assert p.handle(sqs_record(purchase("retry@example.com"), marked(replay))) == {"batchItemFailures": []}
    [message] = sqs.receive_message(QueueUrl=work, MessageAttributeNames=["All"])["Messages"]
    attributes = {name: value["StringValue"] for name, value in message["MessageAttributes"].items()}
    assert attributes["Retries"] == "1"
    assert (attributes["ReplayName"], attributes["ReplayInclude"]) == ("fix-tags", "sequences")


def test_a_replayed_event_that_fails_for_good_is_dead_lettered_with_its_marker_and_a_redrive_replays_it(
    emu, dynamo_table, tmp_path, sqs
):
    dlq = sqs.create_queue(QueueName=f"dlq-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    broken = "version: 1\npurchases:\n  - match: {}\n    tags: [201]\n    campaigns: [99]\n"
    p = pipeline(emu, dynamo_table, tmp_path, routes=broken, dlq_url=dlq)
    event = purchase("dead@example.com")
    replay = Replay("fix-sequences", ("sequences",))
    assert p.handle(sqs_record(event, marked(replay))) == {"batchItemFailures": []}
    [letter] = sqs.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"])["Messages"]
    attributes = {name: value["StringValue"] for name, value in letter["MessageAttributes"].items()}
    assert attributes["ReplayName"] == "fix-sequences" and attributes["ReplayInclude"] == "sequences"
    assert "Loading" in attributes["ErrorClass"] + attributes["ErrorMessage"]

    # The routes fixed, the letter redriven with its attributes: applied as that replay, once.
    fixed = pipeline(emu, dynamo_table, tmp_path, dlq_url=dlq)
    redriven = {
        n: {"stringValue": v["StringValue"], "dataType": v["DataType"]} for n, v in letter["MessageAttributes"].items()
    }
    assert fixed.handle(sqs_record(event, redriven)) == {"batchItemFailures": []}
    [cid] = emu.model.find_ids_by_email("dead@example.com")
    assert [s["sequence_id"] for s in emu.model.sequence_starts(cid) if s["outcome"] != "already_active"] == [11]
    assert emu.model.action_set_runs(cid) == []  # once-only steps were not part of this replay
    item = boto3.client("dynamodb").get_item(
        TableName=dynamo_table, Key={"id": {"S": f"checkpoint#purchase#shopify#{event['id']}#fix-sequences"}}
    )
    assert "Item" in item


def test_the_replay_command_reads_the_record_the_function_wrote(emu, dynamo_table, tmp_path):
    from keap_relay_ops.replay import Applied, Target

    p = pipeline(emu, dynamo_table, tmp_path)
    done, other = purchase("applied@example.com"), purchase("not-applied@example.com")
    p.process(done, replay=Replay("check"))
    p.process(other)  # applied, but not by this replay
    from keap_relay.aws.archive import Archive

    archive = Archive("unused", 30, boto3.client("dynamodb"))  # the target's DynamoDB client is the archive's
    target = Target(None, None, archive, dynamo_table, "test-func")  # tests' AWS_LAMBDA_FUNCTION_NAME
    check = Applied(target, "check")
    assert check.completed([check.record_id(done), check.record_id(other)]) == {check.record_id(done)}
