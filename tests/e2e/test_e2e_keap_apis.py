"""The pipeline end to end once per KEAP_API (xmlrpc, rest): the same routes give the same effects in Keap."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import (
    contact_of,
    form_event,
    post_webhook,
    purchase_event,
    stack_with_routes,
    unique_email,
    unsubscribe_event,
)

from keap_relay_local.stack import LocalStack

pytestmark = pytest.mark.e2e

# Routes both APIs can run: REST v2 needs a sequence's campaign and has goals instead of action sets.
ROUTES = """
version: 1
forms:
  - match: {}
    tags: [100, 101]
    sequences: [{campaign: 5, sequence: 11}]
purchases:
  - match: {sku: COURSE-101}
    tags: [200]
    sequences: [{campaign: 5, sequence: 12}]
    goals: [{integration: keaprelay, call_name: newcustomer}]
unsubscribes:
  - match: {}
    remove_tags: [100]
    remove_sequences: [{campaign: 5, sequence: 11}]
    tags: [300]
    goals: [{integration: keaprelay, call_name: unsubscribed}]
    opt_out: true
"""


@pytest.fixture(scope="module", params=["xmlrpc", "rest"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    folder = tmp_path_factory.mktemp(f"routes-{request.param}")
    with stack_with_routes(folder, ROUTES, function_env={"KEAP_API": request.param}) as running:
        running.api = request.param  # type: ignore[attr-defined]
        yield running


def effects(stack: LocalStack, email: str) -> dict[str, Any]:
    """What Keap holds for one address, read from the emulator's records (not the pipeline's account)."""
    model = stack.emulator.model
    cid = contact_of(stack.emulator, email)
    opt_outs = [e for e in model.email_status_events() if e["email"] == email.lower() and e["status"] == "ADMIN"]
    return {
        "tags": sorted(model.contact_tags(cid)),
        "sequences": sorted((e["sequence_id"], e["state"]) for e in model.enrolments(cid)),
        "goals": sorted((g["integration"], g["call_name"]) for g in model.goal_runs(cid)),
        "opted_out": len(opt_outs),
        "starts": len(model.sequence_starts(cid)),
    }


EXPECTED = {
    "form": {"tags": [100, 101], "sequences": [(11, "active")], "goals": [], "opted_out": 0, "starts": 1},
    # the newcustomer goal's automation applies tag 201
    "purchase": {
        "tags": [100, 101, 200, 201],
        "sequences": [(11, "active"), (12, "active")],
        "goals": [("keaprelay", "newcustomer")],
        "opted_out": 0,
        "starts": 2,
    },
    # the unsubscribed goal's automation removes tag 101
    "unsubscribe": {
        "tags": [200, 201, 300],
        "sequences": [(11, "removed"), (12, "active")],
        "goals": [("keaprelay", "newcustomer"), ("keaprelay", "unsubscribed")],
        "opted_out": 1,
        "starts": 2,
    },
}


def test_form_purchase_unsubscribe_have_the_same_effects_over_both_apis(stack: LocalStack) -> None:
    email = unique_email(f"both-{stack.api}")  # type: ignore[attr-defined]
    steps = [
        ("forms", form_event(email), "form"),
        ("purchases", purchase_event(email), "purchase"),
        ("unsubscribes", unsubscribe_event(email), "unsubscribe"),
    ]
    for kind, event, name in steps:
        status, _ = post_webhook(stack.webhook_url(kind), event)
        assert status == 202
        stack.wait_drained(60)
        assert effects(stack, email) == EXPECTED[name], f"{name} over {stack.api}"  # type: ignore[attr-defined]
    assert stack.dead_letters("forms") == stack.dead_letters("purchases") == stack.dead_letters("unsubscribes") == []
    surfaces = {c.get("surface") for c in stack.emulator.calls() if c.get("method")}
    assert surfaces == {"xmlrpc" if stack.api == "xmlrpc" else "rest"}  # type: ignore[attr-defined]
