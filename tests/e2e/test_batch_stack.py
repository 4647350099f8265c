"""A batch on REST v2 through the local stack: the template's BatchSize reaches the poller, and the events of a
batch share one Keap call per tag and per sequence, each applied once."""

import json
from collections.abc import Iterator

import pytest
from e2e_support import contact_of, form_event, stack_with_routes, unique_email, wait_for

from keap_relay_local.stack import LocalStack

ROUTES = "version: 1\nforms:\n  - match: {}\n    tags: [101, 102, 103]\n    sequences: [{campaign: 5, sequence: 11}]\n"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with stack_with_routes(tmp_path_factory.mktemp("routes"), ROUTES, function_env={"KEAP_API": "rest"}) as running:
        yield running


def test_ten_queued_events_are_applied_in_batches_with_one_call_per_tag_and_sequence(stack: LocalStack) -> None:
    stack.emulator.reset()
    before = stack.poller_stats("forms").batches
    events = [form_event(unique_email("batch")) for _ in range(10)]
    entries = [{"Id": str(i), "MessageBody": json.dumps(e)} for i, e in enumerate(events)]
    stack.sqs.send_message_batch(QueueUrl=stack.queue_url("forms"), Entries=entries)

    def applied() -> bool:
        for event in events:
            ids = stack.emulator.model.find_ids_by_email(event["contact"]["email"])
            if len(ids) != 1 or stack.emulator.model.contact_tags(ids[0]) != {101, 102, 103}:
                return False
        return True

    wait_for(applied, timeout=60, what="ten form events applied")
    stack.wait_drained()
    batches = stack.poller_stats("forms").batches - before
    calls = [c["method"] for c in stack.emulator.calls() if c["surface"] == "rest"]
    assert calls.count("rest.createContact") == 10
    # One call per tag and per sequence for each batch the poller handed over (ten messages: one to ten batches).
    assert calls.count("rest.applyTags") == 3 * batches and calls.count("rest.addContactsToSequence") == batches
    assert batches < 10  # the poller filled batches (the window), so some calls were shared
    for event in events:
        cid = contact_of(stack.emulator, event["contact"]["email"])
        assert len(stack.emulator.model.sequence_starts(cid)) == 1
