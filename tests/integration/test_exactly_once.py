"""Exactly-once effects: duplicates call Keap zero times; retries resume after the last completed step."""

import json
import uuid
from pathlib import Path

import boto3
import pytest

from keap_emulator import FaultPlan
from keap_emulator.server import DEFAULT_API_KEY
from keap_relay.aws.config import Settings
from keap_relay.aws.pipeline import EventFailed, Pipeline
from keap_relay.routing.runner import INTENT

KEY = DEFAULT_API_KEY


@pytest.fixture
def table(dynamo_table):
    return dynamo_table


@pytest.fixture(autouse=True)
def fresh(emu):
    emu.reset()
    emu.set_faults(FaultPlan())


def routes(tmp_path):
    path = Path(tmp_path) / "routes.yaml"
    path.write_text("version: 1\npurchases:\n  - match: {}\n    tags: [201, 202, 203]\n    action_sets: [21]\n")
    return str(path)


def pipeline(emu, table, tmp_path, max_attempts=1, **more):
    settings = Settings(
        kind="purchase",
        keap_api="xmlrpc",  # action sets and the XML-RPC client's retries: XML-RPC only
        keap_url=emu.url,
        routes_file=routes(tmp_path),
        keap_api_key_env=KEY,
        idempotency_table=table,
        **more,
    )
    p = Pipeline("purchase", settings)
    if max_attempts is not None:
        p.runner.keap.client.max_attempts = max_attempts
    return p


def purchase(event_id="o-1", source="shopify", email="buyer@example.com"):
    return {
        "kind": "purchase",
        "source": source,
        "id": event_id,
        "contact": {"email": email},
        "order": {"id": "1001", "total": "49.00", "currency": "USD", "items": [{"sku": "COURSE-101"}]},
    }


def keap_calls(emu):
    return [c for c in emu.calls() if c["method"]]


def test_duplicate_delivery_returns_the_first_result_and_calls_keap_zero_times(emu, table, tmp_path):
    p = pipeline(emu, table, tmp_path)
    first = p.process(purchase())
    made = len(keap_calls(emu))
    assert made == 5
    again = pipeline(emu, table, tmp_path).process(purchase())  # another container, same table
    assert len(keap_calls(emu)) == made
    assert again["contact_ids"] == first["contact_ids"]
    assert again["steps"] == first["steps"]
    [cid] = first["contact_ids"]
    assert len(emu.model.action_set_runs(cid)) == 1


def test_key_is_kind_source_and_id(emu, table, tmp_path):
    p = pipeline(emu, table, tmp_path)
    p.process(purchase("same-id", source="shopify", email="a@example.com"))
    p.process(purchase("same-id", source="stripe", email="b@example.com"))
    assert emu.model.find_ids_by_email("a@example.com") and emu.model.find_ids_by_email("b@example.com")


def test_retry_resumes_after_completed_steps_and_never_reruns_the_action_set(emu, table, tmp_path):
    p = pipeline(emu, table, tmp_path)
    emu.set_faults(FaultPlan(rate_5xx=1.0, methods={"ContactService.addToGroup"}))
    with pytest.raises(EventFailed) as info:
        p.process(purchase("o-2"))
    assert info.value.transient
    [cid] = info.value.result.contact_ids
    assert len(emu.model.action_set_runs(cid)) == 1  # it succeeded; the tags failed
    emu.set_faults(FaultPlan())
    result = p.process(purchase("o-2"), attempts=2)
    assert len(emu.model.action_set_runs(cid)) == 1
    status = {s["key"]: s["status"] for s in result["steps"]}
    assert status[f"{cid}/run_action_set:21"] == "resumed"
    assert status["upsert_contact"] == "resumed"
    assert status[f"{cid}/apply_tag:201"] == "ok"
    assert emu.model.contact_tags(cid) == {201, 202, 203}
    called = [c["method"] for c in keap_calls(emu)]
    assert called.count("ContactService.runActionSequence") == 1


def test_checkpoints_live_beside_the_idempotency_record_with_a_ttl(emu, table, tmp_path):
    pipeline(emu, table, tmp_path).process(purchase("o-3"))
    dynamodb = boto3.client("dynamodb")
    item = dynamodb.get_item(TableName=table, Key={"id": {"S": "checkpoint#purchase#shopify#o-3"}})
    steps = {k: json.loads(v["S"]) for k, v in item["Item"].items() if k.startswith("step:")}
    assert len(steps) == 5 and int(item["Item"]["expiration"]["N"]) > 0
    # The record's id is what earlier releases wrote: an upgrade still knows every event they applied.
    ids = [i["id"]["S"] for i in dynamodb.scan(TableName=table)["Items"] if not i["id"]["S"].startswith("checkpoint#")]
    [record] = ids
    assert record.startswith("test-func.keap_relay.aws.idempotency.Idempotency.wrap.<locals>.apply_once#")


def sqs_record(body, attributes=None):
    return {
        "Records": [
            {
                "messageId": "m0",
                "receiptHandle": "h0",
                "body": json.dumps(body),
                "eventSource": "aws:sqs",
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
                "messageAttributes": attributes or {},
            }
        ]
    }


def dead_letters(sqs, url):
    msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get("Messages", [])
    for m in msgs:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return msgs


@pytest.mark.parametrize("keap_ran_it", [True, False])
def test_an_action_set_whose_answer_was_lost_is_never_rerun_but_dead_lettered_for_a_person(
    emu, table, tmp_path, sqs, keap_ran_it
):
    dlq = sqs.create_queue(QueueName=f"dlq-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    p = pipeline(emu, table, tmp_path, max_attempts=None, dlq_url=dlq)
    event = purchase(f"o-lost-{keap_ran_it}", email=f"lost-{keap_ran_it}@example.com")
    # The connection drops after the request was sent: Keap ran the action set, or never got to it.
    emu.set_faults(FaultPlan(rate_drop=1.0, drop_after_apply=keap_ran_it, methods={"ContactService.runActionSequence"}))
    assert p.handle(sqs_record(event)) == {"batchItemFailures": []}
    emu.set_faults(FaultPlan())
    [cid] = emu.model.find_ids_by_email(event["contact"]["email"])
    assert emu.model.contact_tags(cid) == {201, 202, 203}  # every other step is done
    assert len(emu.model.action_set_runs(cid)) == (1 if keap_ran_it else 0)
    [letter] = dead_letters(sqs, dlq)
    reason = {k: v["StringValue"] for k, v in letter["MessageAttributes"].items()}
    assert reason["ErrorClass"] == "OutcomeUnknown" and reason["Transient"] == "false"
    assert "runActionSequence" in reason["FailedStep"] and "redrive" in reason["ErrorMessage"]

    # Another delivery of the same event does not run it either: it goes back to a person.
    assert p.handle(sqs_record(event)) == {"batchItemFailures": []}
    assert len(emu.model.action_set_runs(cid)) == (1 if keap_ran_it else 0)
    assert len(dead_letters(sqs, dlq)) == 1

    if not keap_ran_it:
        # The person checked Keap and redrove the dead letter (its attributes travel with it): now it runs, once.
        redriven = {
            k: {"stringValue": v["StringValue"], "dataType": v["DataType"]}
            for k, v in letter["MessageAttributes"].items()
        }
        assert p.handle(sqs_record(event, redriven)) == {"batchItemFailures": []}
        assert len(emu.model.action_set_runs(cid)) == 1
        assert dead_letters(sqs, dlq) == []
        assert p.handle(sqs_record(event, redriven)) == {"batchItemFailures": []}  # applied: a duplicate now
        assert len(emu.model.action_set_runs(cid)) == 1


class MemoryCheckpoints:
    """Checkpoints kept in a dict (a second backend of the protocol), counting the writes."""

    def __init__(self):
        self.steps, self.writes, self.values = {}, [], []

    def completed(self):
        return dict(self.steps)

    def record(self, key, result):
        self.writes.append([key])
        self.values.append(result)
        self.steps[key] = result

    def record_many(self, results):
        self.writes.append(sorted(results))
        self.values.append(dict(results))
        self.steps.update(results)


def test_safe_follow_ups_are_checkpointed_in_one_write_once_only_steps_at_once(emu, table, tmp_path):
    from keap_relay.routing.plan import plan
    from keap_relay.routing.routes import load_routes

    p = pipeline(emu, table, tmp_path)
    checkpoints = MemoryCheckpoints()
    result = p.runner.run(plan(purchase("o-w"), load_routes(p.settings.routes_file)), checkpoints)
    [cid] = result.contact_ids
    # The upsert is safe to repeat (its duplicate check finds the contact): it joins the tags' one write.
    # The action set is written twice: its intent before the call, its result after.
    action_set = f"{cid}/run_action_set:21"
    assert sorted(sorted(keys) for keys in checkpoints.writes) == sorted(
        [
            [action_set],
            [action_set],
            sorted(["upsert_contact", f"{cid}/apply_tag:201", f"{cid}/apply_tag:202", f"{cid}/apply_tag:203"]),
        ]
    )
    action_set_writes = [
        value for keys, value in zip(checkpoints.writes, checkpoints.values, strict=True) if keys == [action_set]
    ]
    [step] = [s for s in result.steps if s.key == action_set]
    assert step.status == "ok" and action_set_writes == [INTENT, step.result]  # the result replaces the intent
    # A retry resumes every recorded step and makes no Keap call.
    before = len(keap_calls(emu))
    again = p.runner.run(plan(purchase("o-w"), load_routes(p.settings.routes_file)), checkpoints)
    assert {s.status for s in again.steps} == {"resumed"} and len(keap_calls(emu)) == before


def redriven(letter):
    """A dead letter's attributes as a redrive hands them to the worker."""
    return {
        k: {"stringValue": v["StringValue"], "dataType": v["DataType"]} for k, v in letter["MessageAttributes"].items()
    }


def test_a_step_found_with_its_intent_only_is_never_called_and_goes_to_a_person(emu, table, tmp_path, sqs):
    dlq = sqs.create_queue(QueueName=f"dlq-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    p = pipeline(emu, table, tmp_path, dlq_url=dlq)
    event = purchase("o-intent", email="intent@example.com")
    # What a function killed (or timed out) while Keap had the action set leaves: the contact, and the
    # action set's intent with no result; nothing else was recorded.
    cid = emu.model.add({"Email": "intent@example.com"})
    p.idempotency.checkpoints(event).record(f"{cid}/run_action_set:21", INTENT)

    assert p.handle(sqs_record(event)) == {"batchItemFailures": []}
    assert emu.model.action_set_runs(cid) == []  # never called again
    assert emu.model.contact_tags(cid) == {201, 202, 203}  # the event's other steps are done
    assert [c["method"] for c in keap_calls(emu)].count("ContactService.runActionSequence") == 0
    [letter] = dead_letters(sqs, dlq)
    reason = {k: v["StringValue"] for k, v in letter["MessageAttributes"].items()}
    assert reason["ErrorClass"] == "OutcomeUnknown" and reason["Transient"] == "false"
    assert "runActionSequence" in reason["FailedStep"]
    assert "function ended" in reason["ErrorMessage"] and "redrive" in reason["ErrorMessage"]

    # Another delivery does not run it either.
    assert p.handle(sqs_record(event)) == {"batchItemFailures": []}
    assert emu.model.action_set_runs(cid) == []
    [again] = dead_letters(sqs, dlq)

    # A person checked Keap and redrove it: the step runs, once, and the event is applied.
    assert p.handle(sqs_record(event, redriven(again))) == {"batchItemFailures": []}
    assert len(emu.model.action_set_runs(cid)) == 1
    assert dead_letters(sqs, dlq) == []
    assert p.handle(sqs_record(event, redriven(again))) == {"batchItemFailures": []}  # a duplicate now
    assert len(emu.model.action_set_runs(cid)) == 1


def test_an_intent_whose_call_keap_refused_is_cleared_so_the_retry_runs_it(emu, table, tmp_path):
    p = pipeline(emu, table, tmp_path)
    emu.set_faults(FaultPlan(rate_429=1.0, methods={"ContactService.runActionSequence"}))
    with pytest.raises(EventFailed) as info:
        p.process(purchase("o-429", email="refused@example.com"))
    assert info.value.transient  # throttled: Keap never ran it
    [cid] = info.value.result.contact_ids
    assert emu.model.action_set_runs(cid) == []
    emu.set_faults(FaultPlan())
    result = p.process(purchase("o-429", email="refused@example.com"), attempts=2)
    status = {s["key"]: s["status"] for s in result["steps"]}
    assert status[f"{cid}/run_action_set:21"] == "ok"
    assert len(emu.model.action_set_runs(cid)) == 1


class CountingDynamo:
    """A DynamoDB client that counts the writes it passes on (moto answers them)."""

    WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")

    def __init__(self, client):
        self._client, self.writes = client, []

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if name not in self.WRITES:
            return attr

        def write(**kwargs):
            self.writes.append(name)
            return attr(**kwargs)

        return write


@pytest.mark.parametrize(("rules", "writes"), [("tags: [201, 202]", 3), ("tags: [201, 202]\n    action_sets: [21]", 5)])
def test_dynamodb_writes_per_event(emu, table, tmp_path, rules, writes):
    from keap_relay.aws.idempotency import Idempotency, keep_seconds

    path = Path(tmp_path) / "counted-routes.yaml"
    path.write_text(f"version: 1\npurchases:\n  - match: {{}}\n    {rules}\n")
    p = pipeline(emu, table, tmp_path)
    p.settings.routes_file = str(path)
    counting = CountingDynamo(boto3.client("dynamodb"))
    p._idempotency = Idempotency(table, keep_seconds(p.settings.max_event_age_seconds), client=counting)
    p.process(purchase(f"o-count-{writes}", email=f"count-{writes}@example.com"))
    # The idempotency record (in progress, then done) and one write of the safe steps; an action set adds
    # its intent and its result.
    assert len(counting.writes) == writes
