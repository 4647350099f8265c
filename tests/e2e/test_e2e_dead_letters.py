"""Permanent failures end in the kind's DLQ with their reason, once, without retries."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from e2e_support import (
    DEAD_END_ROUTES,
    XMLRPC_ENV,
    contact_of,
    form_event,
    post_webhook,
    stack_with_routes,
    unique_email,
)

from keap_relay_local.stack import LocalStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with stack_with_routes(tmp_path_factory.mktemp("routes"), DEAD_END_ROUTES, function_env=XMLRPC_ENV) as running:
        yield running


def test_an_unknown_sequence_sends_the_event_to_the_dlq_with_its_reason(stack: LocalStack) -> None:
    email = unique_email("doomed")
    event = form_event(email)
    assert post_webhook(stack.webhook_url("forms"), event)[0] == 202
    stack.wait_drained(60)

    (letter,) = stack.dead_letters("forms")
    assert json.loads(letter["body"])["id"] == event["id"]
    attributes = letter["attributes"]
    assert "Loading" in attributes["ErrorClass"] + attributes["ErrorMessage"]
    assert "addToCampaign" in attributes["FailedStep"] or "99" in attributes["FailedStep"]
    assert attributes["AttemptCount"] == "1"  # permanent: dead-lettered on the first receive, not retried
    assert attributes["Transient"] == "false"
    assert stack.poller_stats("forms").failed_records == 0
    # the upsert came before the failing step, so the contact is in Keap
    contact_of(stack.emulator, email)
    # reading the DLQ does not consume it
    assert [m["message_id"] for m in stack.dead_letters("forms")] == [letter["message_id"]]
