"""A batch of events applied together on REST v2: one call per tag or sequence, each event once, per-contact
answers read contact by contact (the emulator over HTTP, DynamoDB on moto)."""

import json
import uuid
from pathlib import Path

import pytest

from keap_emulator import FaultPlan
from keap_emulator.faults import ContactFault, contact_faults
from keap_emulator.server import DEFAULT_API_KEY
from keap_relay.aws.config import Settings
from keap_relay.aws.pipeline import Pipeline
from keap_relay.aws.queue import Replay
from keap_relay.routing.runner import INTENT

KEY = DEFAULT_API_KEY
FORMS = "forms:\n  - match: {}\n    tags: [101, 102, 103]\n    sequences: [{campaign: 5, sequence: 11}]\n"
GOALS = "purchases:\n  - match: {}\n    tags: [201]\n    goals: [{integration: keaprelay, call_name: newcustomer}]\n"


@pytest.fixture(autouse=True)
def fresh(emu):
    contact_faults(emu.model).clear()
    yield
    contact_faults(emu.model).clear()


def pipeline(emu, table, tmp_path, rules=FORMS, kind="form_submission", **more):
    path = Path(tmp_path) / f"routes-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(f"version: 1\n{rules}")
    settings = Settings(
        kind=kind,
        keap_api="rest",
        keap_url=emu.url,
        routes_file=str(path),
        keap_api_key_env=KEY,
        idempotency_table=table,
        **more,
    )
    p = Pipeline(kind, settings)
    p.runner.keap.client.max_attempts = 1  # a 5xx fails the step at once: the redelivery is what is tested
    return p


def form(n, email=None, first_name=None):
    contact = {"email": email or f"person-{n}@example.com"}
    if first_name:
        contact["first_name"] = first_name
    return {"kind": "form_submission", "source": "generic", "id": f"f-{n}", "contact": contact, "form": {"id": "x"}}


def purchase(n):
    return {
        "kind": "purchase",
        "source": "shopify",
        "id": f"o-{n}",
        "contact": {"email": f"buyer-{n}@example.com"},
        "order": {"id": str(n), "total": "9.00", "currency": "USD", "items": [{"sku": "S"}]},
    }


def batch(events, attributes=None):
    """The SQS event Lambda hands the worker for these message bodies, message ids m0, m1, ...; `attributes`:
    message id -> its message attributes as Lambda hands them."""
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"h{i}",
                "body": json.dumps(event),
                "eventSource": "aws:sqs",
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
                "messageAttributes": (attributes or {}).get(f"m{i}", {}),
            }
            for i, event in enumerate(events)
        ]
    }


def failed(answer):
    return sorted(item["itemIdentifier"] for item in answer["batchItemFailures"])


def rest_calls(emu):
    return [(c["method"], c["path"].rsplit("/v2", 1)[-1]) for c in emu.calls() if c["surface"] == "rest"]


def contact_of(emu, email):
    [cid] = emu.model.find_ids_by_email(email)
    return cid


def test_ten_form_events_make_ten_upserts_and_one_call_per_tag_and_sequence(emu, dynamo_table, tmp_path):
    events = [form(n) for n in range(10)]
    assert failed(pipeline(emu, dynamo_table, tmp_path).handle(batch(events))) == []
    calls = [method for method, _ in rest_calls(emu) if method != "rest.retrieveContactModel"]
    assert calls.count("rest.createContact") == 10
    assert calls.count("rest.applyTags") == 3 and calls.count("rest.addContactsToSequence") == 1
    assert len(calls) == 14  # 1.4 calls an event
    for event in events:
        cid = contact_of(emu, event["contact"]["email"])
        assert emu.model.contact_tags(cid) == {101, 102, 103}
        assert [row["sequence_id"] for row in emu.model.enrolments(cid)] == [11]


@pytest.mark.parametrize("outcome", ["FAILED", "QUEUED_FOR_LATER"])
def test_one_contact_refused_in_a_batch_while_the_others_are_applied(emu, dynamo_table, tmp_path, outcome):
    refused = emu.model.add({"Email": "person-1@example.com"})
    contact_faults(emu.model).set(refused, ContactFault(outcome=outcome))
    answer = pipeline(emu, dynamo_table, tmp_path).handle(batch([form(n) for n in range(4)]))
    # Its event alone fails (transient: it goes back to SQS); the others are applied.
    assert failed(answer) == ["m1"]
    assert emu.model.contact_tags(refused) == set() and emu.model.enrolments(refused) == []
    for n in (0, 2, 3):
        assert emu.model.contact_tags(contact_of(emu, f"person-{n}@example.com")) == {101, 102, 103}
    # Each unclear answer was asked again for that contact alone: 4 grouped calls, then 4 one-contact calls.
    calls = [method for method, _ in rest_calls(emu)]
    assert calls.count("rest.applyTags") == 6 and calls.count("rest.addContactsToSequence") == 2


def test_an_unclear_outcome_is_settled_by_the_one_contact_call(emu, dynamo_table, tmp_path):
    contact = emu.model.add({"Email": "person-2@example.com"})
    # Refused in a group, applied alone: the one-contact call's SUCCESS decides.
    contact_faults(emu.model).set(contact, ContactFault(outcome="FAILED", in_groups_only=True))
    assert failed(pipeline(emu, dynamo_table, tmp_path).handle(batch([form(n) for n in range(3)]))) == []
    assert emu.model.contact_tags(contact) == {101, 102, 103}
    assert [row["sequence_id"] for row in emu.model.enrolments(contact)] == [11]


def test_a_4xx_for_a_whole_group_is_split_to_find_the_contact_at_fault(emu, dynamo_table, tmp_path, sqs):
    dlq = sqs.create_queue(QueueName=f"dlq-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    bad = emu.model.add({"Email": "person-0@example.com"})
    contact_faults(emu.model).set(bad, ContactFault(status=400))
    answer = pipeline(emu, dynamo_table, tmp_path, dlq_url=dlq).handle(batch([form(n) for n in range(3)]))
    assert failed(answer) == []  # the bad one is dead-lettered with its reason; the others are applied
    for n in (1, 2):
        assert emu.model.contact_tags(contact_of(emu, f"person-{n}@example.com")) == {101, 102, 103}
    assert emu.model.contact_tags(bad) == set()
    [letter] = sqs.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"])["Messages"]
    assert json.loads(letter["Body"])["id"] == "f-0"
    reason = {k: v["StringValue"] for k, v in letter["MessageAttributes"].items()}
    assert reason["Transient"] == "false" and "400" in reason["ErrorMessage"]
    # Per target: the group's call (400), then one call per contact.
    assert sum(m == "rest.applyTags" for m, _ in rest_calls(emu)) == 3 * (1 + 3)


def test_a_redelivered_batch_resumes_without_repeating(emu, dynamo_table, tmp_path):
    p = pipeline(emu, dynamo_table, tmp_path)
    events = [form(n) for n in range(5)]
    emu.set_faults(FaultPlan(rate_5xx=1.0, methods={"rest.addContactsToSequence"}))
    assert failed(p.handle(batch(events))) == [f"m{i}" for i in range(5)]  # transient: back to SQS
    emu.set_faults(FaultPlan())
    before = len(rest_calls(emu))
    again = pipeline(emu, dynamo_table, tmp_path)  # another container, the same table
    assert failed(again.handle(batch(events))) == []
    # Upserts and tags are resumed from the checkpoints: the sequence is the only call made.
    assert [m for m, _ in rest_calls(emu)[before:] if m != "rest.retrieveContactModel"] == [
        "rest.addContactsToSequence"
    ]
    assert {len(emu.model.tag_applications(contact_of(emu, e["contact"]["email"]))) for e in events} == {3}
    # A third delivery: every event is a duplicate, answered from its record with no Keap call.
    before = len(rest_calls(emu))
    assert failed(again.handle(batch(events))) == [] and len(rest_calls(emu)) == before


def test_two_deliveries_of_one_event_in_one_batch_are_applied_once(emu, dynamo_table, tmp_path):
    answer = pipeline(emu, dynamo_table, tmp_path).handle(batch([form(1), form(2), form(1)]))
    assert failed(answer) == []
    assert sum(m == "rest.createContact" for m, _ in rest_calls(emu)) == 2
    cid = contact_of(emu, "person-1@example.com")
    assert len(emu.model.tag_applications(cid)) == 3 and len(emu.model.sequence_starts(cid)) == 1


def test_two_events_for_one_email_in_one_batch_make_one_contact(emu, dynamo_table, tmp_path):
    events = [form(1, "same@example.com", "Ada"), form(2, "same@example.com", "Augusta"), form(3)]
    assert failed(pipeline(emu, dynamo_table, tmp_path).handle(batch(events))) == []
    cid = contact_of(emu, "same@example.com")  # one contact: the upserts ran one after the other
    assert emu.model.get_contact(cid)["FirstName"] == "Augusta"  # the later event's fields last
    assert emu.model.contact_tags(cid) == {101, 102, 103}
    assert sum(m == "rest.applyTags" for m, _ in rest_calls(emu)) == 3


def test_two_events_for_one_refused_contact_are_asked_about_it_once_and_both_wait(emu, dynamo_table, tmp_path):
    refused = emu.model.add({"Email": "same@example.com"})
    contact_faults(emu.model).set(refused, ContactFault(outcome="FAILED"))
    events = [form(1, "same@example.com"), form(2, "same@example.com"), form(3)]
    assert failed(pipeline(emu, dynamo_table, tmp_path).handle(batch(events))) == ["m0", "m1"]
    assert emu.model.contact_tags(contact_of(emu, "person-3@example.com")) == {101, 102, 103}
    # Per target: the group's call, then one call for the refused contact, shared by its two events.
    assert sum(m == "rest.applyTags" for m, _ in rest_calls(emu)) == 3 * 2


def test_a_goal_in_a_batch_is_achieved_once_per_event_and_never_repeated(emu, dynamo_table, tmp_path):
    p = pipeline(emu, dynamo_table, tmp_path, rules=GOALS, kind="purchase")
    events = [purchase(n) for n in range(3)]
    emu.set_faults(FaultPlan(rate_5xx=1.0, methods={"rest.applyTags"}))
    assert failed(p.handle(batch(events))) == ["m0", "m1", "m2"]
    emu.set_faults(FaultPlan())
    cids = [contact_of(emu, e["contact"]["email"]) for e in events]
    assert [len(emu.model.goal_runs(cid)) for cid in cids] == [1, 1, 1]  # one call per contact, not grouped
    # Its intent was recorded before the call, then its result: found on the redelivery, it is not repeated.
    step = p.idempotency.checkpoints(events[0]).completed()[f"{cids[0]}/achieve_goal:keaprelay:newcustomer"]
    assert step != INTENT and isinstance(step, list)
    assert failed(p.handle(batch(events))) == []
    assert [len(emu.model.goal_runs(cid)) for cid in cids] == [1, 1, 1]
    assert all(emu.model.contact_tags(cid) == {201} for cid in cids)


def test_a_replayed_event_in_a_batch_is_applied_once_per_replay_with_its_own_plan(emu, dynamo_table, tmp_path):
    p = pipeline(emu, dynamo_table, tmp_path)
    assert failed(p.handle(batch([form(1)]))) == []
    cid = contact_of(emu, "person-1@example.com")
    emu.model.remove_tag_many(101, [cid], "test")  # someone took a tag off in Keap
    replayed = {
        k: {"stringValue": v["StringValue"], "dataType": "String"} for k, v in Replay("fix").attributes().items()
    }
    # The same event replayed beside its own redelivery and a new event: the redelivery is a duplicate, the
    # replay runs under its own key with the default replay plan (the contact and its tags, no sequence).
    assert failed(p.handle(batch([form(1), form(1), form(2)], {"m1": replayed}))) == []
    assert emu.model.contact_tags(cid) == {101, 102, 103}
    assert len(emu.model.sequence_starts(cid)) == 1
    assert emu.model.contact_tags(contact_of(emu, "person-2@example.com")) == {101, 102, 103}
    before = len(rest_calls(emu))
    assert failed(p.handle(batch([form(1)], {"m0": replayed}))) == []  # the same replay again: nothing
    assert len(rest_calls(emu)) == before
