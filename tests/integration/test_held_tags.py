"""Tags a contact already holds, by its own upsert's answer on REST v2 (fields=id,tag_ids), are not applied again:
alone and in a batch, checkpointed so a redelivery does not call them either; XML-RPC, whose upsert answers an
id alone, skips nothing (the emulator over HTTP, DynamoDB on moto)."""

from test_batch_rest import KEY, batch, contact_of, failed, form, pipeline, rest_calls

from keap_emulator import FaultPlan
from keap_relay.routing.batch import BatchItem, BatchRunner
from keap_relay.routing.keap_port import build_port
from keap_relay.routing.plan import plan
from keap_relay.routing.routes import parse_routes
from keap_relay.routing.runner import HELD, HELD_RECORD, SequenceRunner

TAGS = "forms:\n  - match: {}\n    tags: [101, 102]\n    sequences: [{campaign: 5, sequence: 11}]\n"
ROUTES = parse_routes({"version": 1, "forms": [{"match": {}, "tags": [101, 102]}]}, "routes.yaml")


def holding(emu, email, *tags):
    """A contact already in Keap with these tags."""
    cid = emu.model.add({"Email": email})
    for tag in tags:
        emu.model.apply_tag_many(tag, [cid], "test")
    return cid


def apply_tags(emu):
    """The applyTags calls made, as the tag each names."""
    return [int(path.split("/")[2]) for method, path in rest_calls(emu) if method == "rest.applyTags"]


def listed(emu, tag, *cids):
    """The contacts of `cids` that some applyTags call for `tag` listed (the emulator logs each application)."""
    return [
        cid
        for cid in cids
        if any(row["tag_id"] == tag and row["via"] != "test" for row in emu.model.tag_applications(cid))
    ]


def test_a_tag_the_contact_holds_is_not_applied_and_its_step_is_held(emu, dynamo_table, tmp_path):
    cid = holding(emu, "person-1@example.com", 101)
    answer = pipeline(emu, dynamo_table, tmp_path, rules=TAGS).handle(form(1))
    assert answer["status"] == answer["result"]["status"] == "applied"
    steps = {step["key"]: step for step in answer["result"]["steps"]}
    assert steps[f"{cid}/apply_tag:101"]["status"] == HELD and steps[f"{cid}/apply_tag:102"]["status"] == "ok"
    # The upsert's own answer told the tags (no read of its own); 101 was not applied again.
    calls = [m for m, _ in rest_calls(emu)]  # the follow-ups run at once, in any order
    assert calls[0] == "rest.createContact"
    assert sorted(calls[1:]) == ["rest.addContactsToSequence", "rest.applyTags"]
    assert apply_tags(emu) == [102]
    assert emu.model.contact_tags(cid) == {101, 102}


def test_a_redelivered_event_does_not_call_a_held_step(emu, dynamo_table, tmp_path):
    cid = holding(emu, "person-1@example.com", 101)
    p = pipeline(emu, dynamo_table, tmp_path, rules=TAGS)
    emu.set_faults(FaultPlan(rate_5xx=1.0, methods={"rest.addContactsToSequence"}))
    assert failed(p.handle(batch([form(1)]))) == ["m0"]  # transient: back to SQS
    assert p.idempotency.checkpoints(form(1)).completed()[f"{cid}/apply_tag:101"] == HELD_RECORD
    emu.set_faults(FaultPlan())
    before = len(rest_calls(emu))
    assert failed(pipeline(emu, dynamo_table, tmp_path, rules=TAGS).handle(batch([form(1)]))) == []
    # The upsert (whose answer is not kept) and both tags are resumed: the sequence is the only call.
    assert [m for m, _ in rest_calls(emu)[before:] if m != "rest.retrieveContactModel"] == [
        "rest.addContactsToSequence"
    ]
    assert apply_tags(emu) == [102]


def test_a_batch_applies_a_tag_only_to_the_contacts_lacking_it(emu, dynamo_table, tmp_path):
    held_both = holding(emu, "person-0@example.com", 101, 102)
    held_one = holding(emu, "person-1@example.com", 101)
    events = [form(n) for n in range(4)]
    answer = pipeline(emu, dynamo_table, tmp_path, rules=TAGS).handle(batch(events))
    assert failed(answer) == []
    fresh = [contact_of(emu, f"person-{n}@example.com") for n in (2, 3)]
    # One call for 101, listing the two new contacts; one for 102, listing those and the one lacking it.
    assert sorted(apply_tags(emu)) == [101, 102]
    assert listed(emu, 101, held_both, held_one, *fresh) == fresh
    assert listed(emu, 102, held_both, held_one, *fresh) == [held_one, *fresh]
    for cid in (held_both, held_one, *fresh):
        assert emu.model.contact_tags(cid) == {101, 102}


def test_a_batch_whose_contacts_all_hold_a_tag_makes_no_call_for_it(emu, dynamo_table, tmp_path):
    cids = [holding(emu, f"person-{n}@example.com", 101) for n in range(3)]
    p = pipeline(emu, dynamo_table, tmp_path, rules=TAGS)
    assert failed(p.handle(batch([form(n) for n in range(3)]))) == []
    assert apply_tags(emu) == [102]
    assert listed(emu, 101, *cids) == [] and listed(emu, 102, *cids) == cids
    # Each event's held step is checkpointed as done.
    completed = p.idempotency.checkpoints(form(0)).completed()
    assert completed[f"{cids[0]}/apply_tag:101"] == HELD_RECORD


def test_an_upsert_answer_without_tag_ids_skips_nothing(emu, dynamo_table, tmp_path):
    cid = holding(emu, "person-1@example.com", 101, 102)
    emu.leave_out("tag_ids")  # Keap answered without the property asked for
    answer = pipeline(emu, dynamo_table, tmp_path, rules=TAGS).handle(form(1))
    assert answer["status"] == answer["result"]["status"] == "applied"
    assert {step["status"] for step in answer["result"]["steps"]} == {"ok"}
    assert sorted(apply_tags(emu)) == [101, 102]
    held = [holding(emu, f"person-{n}@example.com", 101) for n in (2, 3)]
    assert failed(pipeline(emu, dynamo_table, tmp_path, rules=TAGS).handle(batch([form(2), form(3)]))) == []
    assert listed(emu, 101, cid, *held) == [cid, *held]


def test_xmlrpc_applies_every_tag_the_contact_may_hold(emu):
    cids = [holding(emu, f"person-{n}@example.com", 101, 102) for n in range(2)]
    runner = SequenceRunner(build_port("xmlrpc", url=emu.url, api_key=KEY))
    result = runner.run(plan(form(0), ROUTES))
    assert [step.status for step in result.steps] == ["ok", "ok", "ok"]
    BatchRunner(runner).run([BatchItem(plan(form(n), ROUTES)) for n in range(2)])
    add_to_group = [c for c in emu.calls() if c["method"] == "ContactService.addToGroup"]
    assert len(add_to_group) == 2 + 2 * 2  # every tag, every contact, every time: its upsert tells no tags
    assert all(emu.model.contact_tags(cid) == {101, 102} for cid in cids)
