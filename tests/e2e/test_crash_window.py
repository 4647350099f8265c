"""The crash window, with real kills: a function ended while Keap runs an action set never runs it twice.

The emulator applies `runActionSequence` at once and holds its answer back for longer than the function
may run (but less than the Keap client's read timeout), so the process is ended with the call in flight:
by its own timeout, as Lambda ends a sandbox, or by a SIGKILL. The redelivered event finds the step's
intent without a result: the action set is not called again, and the event waits in the DLQ for a person.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import (
    XMLRPC_ENV,
    contact_of,
    pid_alive,
    post_webhook,
    purchase_event,
    stack_with_routes,
    unique_email,
    wait_for,
)

from keap_emulator import FaultPlan
from keap_relay.keap.session import ClientOptions
from keap_relay.routing.runner import OUTCOME_UNKNOWN
from keap_relay_local.stack import LocalStack
from keap_relay_ops.cli import main

pytestmark = pytest.mark.e2e

FUNCTION_TIMEOUT = 5  # seconds: the worker's Lambda timeout in this stack
# Keap's answer to the action set comes after the function's timeout and before the client would give up.
ANSWER_LATE_MS = 10_000
ACTION_SET = "ContactService.runActionSequence"
ROUTES = """\
version: 1
dup_check: Email
forms: []
purchases:
  - match: {}
    tags: [202]
    action_sets: [21]
unsubscribes: []
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    assert FUNCTION_TIMEOUT < ANSWER_LATE_MS / 1000 < ClientOptions().read_timeout
    with stack_with_routes(
        tmp_path_factory.mktemp("routes"), ROUTES, function_env=XMLRPC_ENV, function_timeout=FUNCTION_TIMEOUT
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def late_answers(stack: LocalStack) -> Iterator[None]:
    stack.emulator.reset()  # a clean call log per test
    # And an empty DLQ: the redrive test moves every letter, and the emulator's contact ids start again.
    while letters := stack.sqs.receive_message(QueueUrl=stack.dlq_url("purchases"), MaxNumberOfMessages=10).get(
        "Messages"
    ):
        for letter in letters:
            stack.sqs.delete_message(QueueUrl=stack.dlq_url("purchases"), ReceiptHandle=letter["ReceiptHandle"])
    stack.emulator.set_faults(FaultPlan(latency_ms=ANSWER_LATE_MS, methods={ACTION_SET}))
    yield
    stack.emulator.set_faults(FaultPlan())


def dead_letter_of(stack: LocalStack, event_id: str) -> dict[str, Any] | None:
    return next((m for m in stack.dead_letters("purchases") if json.loads(m["body"])["id"] == event_id), None)


def action_set_applied(stack: LocalStack, email: str) -> bool:
    ids = stack.emulator.model.find_ids_by_email(email)
    return bool(ids) and bool(stack.emulator.model.action_set_runs(ids[0]))


def assert_ran_once_and_dead_lettered(stack: LocalStack, email: str, event_id: str) -> None:
    """The redelivered event finished its other steps, never called the action set again, and waits in the DLQ."""
    letter = wait_for(lambda: dead_letter_of(stack, event_id), 60, "the event in the DLQ")
    cid = contact_of(stack.emulator, email)
    assert len(stack.emulator.model.action_set_runs(cid)) == 1  # Keap ran it once
    calls = [c for c in stack.emulator.calls() if c["method"] == ACTION_SET]
    assert len(calls) == 1 and calls[0]["applied"]  # and was asked once
    assert 202 in stack.emulator.model.contact_tags(cid)
    reason = letter["attributes"]
    assert reason["ErrorClass"] == OUTCOME_UNKNOWN and reason["Transient"] == "false"
    assert int(reason["AttemptCount"]) >= 2  # a redelivery put it there, not the first run
    assert "runActionSequence" in reason["FailedStep"]
    assert "function ended before its answer was recorded" in reason["ErrorMessage"]
    assert "redrive" in reason["ErrorMessage"]


def test_a_function_timeout_ends_the_process_and_the_action_set_is_not_run_again(stack: LocalStack) -> None:
    host = stack.function_host("purchases")
    first_pid, restarts = host.pid, host.restarts
    failed = stack.poller_stats("purchases").failed_invocations
    email = unique_email("timeout")
    event = purchase_event(email)
    assert post_webhook(stack.webhook_url("purchases"), event)[0] == 202

    wait_for(lambda: stack.poller_stats("purchases").failed_invocations > failed, 30, "the invocation to time out")
    assert first_pid is not None and not pid_alive(first_pid)  # ended at its timeout, as Lambda ends a sandbox
    assert_ran_once_and_dead_lettered(stack, email, event["id"])
    assert host.restarts == restarts + 1 and host.pid != first_pid  # a new "container" took the redelivery


def test_a_function_killed_after_keap_applied_the_action_set_does_not_run_it_again(stack: LocalStack) -> None:
    email = unique_email("killed")
    event = purchase_event(email)
    posted = time.monotonic()
    assert post_webhook(stack.webhook_url("purchases"), event)[0] == 202

    # Keap has run the action set and holds its answer back: the process is SIGKILLed now, before it hears.
    wait_for(lambda: action_set_applied(stack, email), 30, "Keap to apply the action set")
    killed = stack.function_host("purchases").pid
    stack.kill_function("purchases")
    # The invocation began after the POST: a kill this soon came before the function's timeout could.
    assert time.monotonic() - posted < FUNCTION_TIMEOUT
    assert killed is not None and not pid_alive(killed)
    assert_ran_once_and_dead_lettered(stack, email, event["id"])


def test_a_timeout_before_keap_ran_the_action_set_is_redriven_by_a_person_and_runs_it_once(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Keap holds the connection past the function's timeout without running the action set.
    stack.emulator.set_faults(FaultPlan(latency_ms=ANSWER_LATE_MS, rate_drop=1.0, methods={ACTION_SET}))
    email = unique_email("redrive")
    event = purchase_event(email)
    assert post_webhook(stack.webhook_url("purchases"), event)[0] == 202
    letter = wait_for(lambda: dead_letter_of(stack, event["id"]), 60, "the event in the DLQ")
    assert letter["attributes"]["ErrorClass"] == OUTCOME_UNKNOWN
    assert "function ended before its answer was recorded" in letter["attributes"]["ErrorMessage"]
    cid = contact_of(stack.emulator, email)
    assert stack.emulator.model.action_set_runs(cid) == []
    assert [c["method"] for c in stack.emulator.calls()].count(ACTION_SET) == 1  # the redelivery did not ask

    # The person checked the contact in Keap: the action set did not run. A redrive runs it, once.
    stack.emulator.set_faults(FaultPlan())
    assert main(["dlq", "redrive", "--kind", "purchases", "--endpoint-url", stack.moto_url]) == 0
    assert "COMPLETED" in capsys.readouterr().out
    wait_for(lambda: stack.emulator.model.action_set_runs(cid), 60, "the redriven action set")
    stack.wait_drained(60)
    assert len(stack.emulator.model.action_set_runs(cid)) == 1
    assert dead_letter_of(stack, event["id"]) is None
