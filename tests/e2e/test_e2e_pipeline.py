"""End to end through the real functions: HTTP, EventBridge or SQS in → queue → function → emulator state out."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from e2e_support import (
    XMLRPC_ENV,
    contact_of,
    form_event,
    http_request,
    post_webhook,
    purchase_event,
    signed_headers,
    stack_with_routes,
    unique_email,
    unsubscribe_event,
    wait_for,
)

from keap_emulator import FaultPlan
from keap_relay_local.stack import LocalStack

pytestmark = pytest.mark.e2e

# The routes of the brief, written per module so the test does not depend on config/routes.yaml's contents.
ROUTES = """\
version: 1
dup_check: Email
forms:
  - match: {source: generic, form: lT4Z3j}
    tags: [101, 102]
    campaigns: [11]
  - match: {}
    tags: [100]
purchases:
  - match: {sku: COURSE-101}
    tags: [201]
    action_sets: [21]
unsubscribes:
  - match: {}
    remove_tags: [100, 101]
    remove_campaigns: [11]
    tags: [300]
    action_sets: [31]
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with stack_with_routes(tmp_path_factory.mktemp("routes"), ROUTES, function_env=XMLRPC_ENV) as running:
        yield running


@pytest.fixture(autouse=True)
def no_faults_left(stack: LocalStack) -> Iterator[None]:
    yield
    stack.emulator.set_faults(None)


def sequences(stack: LocalStack, contact_id: int) -> dict[int, str]:
    return {e["sequence_id"]: e["state"] for e in stack.emulator.model.enrolments(contact_id)}


def action_sets_run(stack: LocalStack, contact_id: int) -> list[int]:
    return [r["action_set_id"] for r in stack.emulator.model.action_set_runs(contact_id)]


def test_form_webhook_creates_the_contact_with_the_routes_tags_and_sequence(stack: LocalStack) -> None:
    email = unique_email("form")
    event = form_event(email)
    status, body = post_webhook(stack.webhook_url("forms"), event)
    assert status == 202
    assert body["id"] == event["id"]
    stack.wait_drained()
    cid = contact_of(stack.emulator, email)
    assert stack.emulator.model.contact_tags(cid) == {100, 101, 102}
    assert sequences(stack, cid) == {11: "active"}
    assert stack.dead_letters("forms") == []


def test_purchase_webhook_applies_the_tag_and_runs_the_action_set_once(stack: LocalStack) -> None:
    email = unique_email("buyer")
    status, _ = post_webhook(stack.webhook_url("purchases"), purchase_event(email))
    assert status == 202
    stack.wait_drained()
    cid = contact_of(stack.emulator, email)
    assert 201 in stack.emulator.model.contact_tags(cid)
    assert action_sets_run(stack, cid) == [21]
    assert stack.dead_letters("purchases") == []


def test_unsubscribe_webhook_removes_tags_and_sequence_then_tags_and_runs_the_action_set(stack: LocalStack) -> None:
    email = unique_email("leaver")
    assert post_webhook(stack.webhook_url("forms"), form_event(email))[0] == 202
    stack.wait_drained()
    cid = contact_of(stack.emulator, email)
    assert {100, 101, 102} <= stack.emulator.model.contact_tags(cid)

    assert post_webhook(stack.webhook_url("unsubscribes"), unsubscribe_event(email))[0] == 202
    stack.wait_drained()
    tags = stack.emulator.model.contact_tags(cid)
    assert 300 in tags
    assert not tags & {100, 101}
    assert 102 in tags  # not named by the unsubscribe rule, so left alone
    assert sequences(stack, cid)[11] == "removed"
    assert action_sets_run(stack, cid) == [31]
    assert stack.dead_letters("unsubscribes") == []


def test_an_eventbridge_event_reaches_the_emulator(stack: LocalStack) -> None:
    email = unique_email("bus")
    stack.put_event("form_submission", form_event(email))
    stack.wait_drained()
    cid = contact_of(stack.emulator, email)
    assert stack.emulator.model.contact_tags(cid) == {100, 101, 102}


def test_a_raw_sqs_message_reaches_the_emulator(stack: LocalStack) -> None:
    email = unique_email("sqs")
    stack.sqs.send_message(QueueUrl=stack.queue_url("purchases"), MessageBody=json.dumps(purchase_event(email)))
    stack.wait_drained()
    cid = contact_of(stack.emulator, email)
    assert 201 in stack.emulator.model.contact_tags(cid)
    assert action_sets_run(stack, cid) == [21]


def test_a_bad_signature_is_refused_with_401_and_nothing_is_enqueued(stack: LocalStack) -> None:
    email = unique_email("forged")
    batches_before = stack.poller_stats("forms").records
    status, _ = post_webhook(stack.webhook_url("forms"), form_event(email), secret="not-the-secret")
    assert status == 401
    # the ingest path answers only after SendMessage, so an enqueued event would already be counted
    assert stack.queue_counts("forms") == {"Visible": 0, "NotVisible": 0, "Delayed": 0}
    stack.wait_drained()
    assert stack.poller_stats("forms").records == batches_before
    assert stack.emulator.model.find_ids_by_email(email) == []


def test_a_body_altered_after_signing_is_refused(stack: LocalStack) -> None:
    event = form_event(unique_email("tampered"))
    signed = json.dumps(event, separators=(",", ":")).encode()
    altered = signed.replace(b"Test", b"Evil")
    status, _, _ = http_request(
        stack.webhook_url("forms"),
        body=altered,
        headers=signed_headers(signed),
    )
    assert status == 401
    assert stack.queue_counts("forms") == {"Visible": 0, "NotVisible": 0, "Delayed": 0}


def test_a_transient_keap_failure_is_retried_through_the_queue_and_then_succeeds(stack: LocalStack) -> None:
    email = unique_email("flaky")

    def upserts() -> int:
        return sum(c["method"] == "ContactService.addWithDupCheck" and c["applied"] for c in stack.emulator.calls())

    stack.wait_drained(60)
    upserts_before = upserts()
    stack.emulator.set_faults(FaultPlan(rate_5xx=1.0, methods={"ContactService.addToGroup"}, seed=1))
    assert post_webhook(stack.webhook_url("forms"), form_event(email))[0] == 202

    def failed_tags() -> list:
        return [c for c in stack.emulator.calls() if c["method"] == "ContactService.addToGroup" and c["injected"]]

    wait_for(lambda: failed_tags() and stack.queue_counts("forms")["Delayed"], 60, "a failed event re-queued")
    stack.emulator.set_faults(None)
    stack.wait_drained(60)
    cid = contact_of(stack.emulator, email)
    assert stack.emulator.model.contact_tags(cid) == {100, 101, 102}
    assert upserts() == upserts_before + 1  # the retry resumed after the checkpointed upsert
    assert stack.dead_letters("forms") == []


def test_a_killed_function_loses_nothing(stack: LocalStack) -> None:
    old_pid = stack.function_pid("forms")
    new_pid = stack.kill_function("forms")
    assert new_pid != old_pid
    email = unique_email("after-kill")
    assert post_webhook(stack.webhook_url("forms"), form_event(email))[0] == 202
    stack.wait_drained()
    assert stack.emulator.model.contact_tags(contact_of(stack.emulator, email)) == {100, 101, 102}


def test_mailchimp_style_get_validation_answers_200(stack: LocalStack) -> None:
    # The URL configured at Mailchimp carries the source's token, and so does its validation GET.
    token = stack.webhook_secrets["mailchimp"]
    status, _, _ = http_request(stack.gateway_url + f"/unsubscribes/mailchimp?token={token}", method="GET")
    assert status == 200
    status, _, _ = http_request(stack.gateway_url + "/unsubscribes/mailchimp?token=wrong", method="GET")
    assert status == 401


def test_unknown_route_is_404(stack: LocalStack) -> None:
    status, _, raw = http_request(stack.gateway_url + "/refunds/generic", body=b"{}")
    assert (status, json.loads(raw)) == (404, {"message": "Not Found"})


def test_an_xmlrpc_outage_holds_events_in_their_queues_until_it_ends(stack: LocalStack) -> None:
    # KEAP_API=xmlrpc during an XML-RPC brownout: nothing is lost or dead-lettered for it.
    start = time.time()
    stack.wait_drained(60)
    stack.emulator.set_faults(FaultPlan(outages=[(start, start + 6)], surfaces={"xmlrpc"}))
    emails = [unique_email(f"outage-{i}") for i in range(3)]
    for email in emails:
        assert post_webhook(stack.webhook_url("forms"), form_event(email))[0] == 202
    wait_for(lambda: any(c.get("injected") for c in stack.emulator.calls()), 30, "a call refused by the outage")
    assert not any(stack.emulator.model.find_ids_by_email(e) for e in emails)  # nothing applied during it
    stack.wait_drained(90)
    stack.emulator.set_faults(None)
    for email in emails:
        assert stack.emulator.model.contact_tags(contact_of(stack.emulator, email)) == {100, 101, 102}
    assert stack.dead_letters("forms") == []
