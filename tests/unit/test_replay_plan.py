"""A replay's plan: the contact, its fields and tags by default; sequences and once-only steps only when asked."""

import pytest
import yaml

from keap_relay.routing.plan import FOLLOW_UPS, REPLAY_PARTS, for_replay, plan, replay_ops
from keap_relay.routing.routes import parse_routes
from keap_relay.routing.runner import ONCE_ONLY_OPS

ROUTES = parse_routes(
    yaml.safe_load("""
version: 1
purchases:
  - match: {}
    tags: [201]
    campaigns: [11]
    sequences: [{campaign: 5, sequence: 12}]
    action_sets: [21]
    goals: [{integration: keaprelay, call_name: newcustomer}]
    fields: {_OrderId: "{{order.id}}"}
unsubscribes:
  - match: {}
    remove_tags: [100]
    remove_campaigns: [11]
    pause_campaigns: [12]
    tags: [300]
    action_sets: [31]
    fields: {_Why: "{{unsubscribe.reason}}"}
    opt_out: true
""")
)

PURCHASE = {
    "kind": "purchase",
    "source": "shopify",
    "id": "o-1",
    "contact": {"email": "ada@example.com"},
    "order": {"id": "1001", "total": "49.00", "items": [{"sku": "COURSE-101"}]},
}
UNSUBSCRIBE = {
    "kind": "unsubscribe",
    "source": "mailchimp",
    "id": "u-1",
    "contact": {"email": "ada@example.com"},
    "unsubscribe": {"reason": "too many"},
}


def ops(planned):
    return [call.op for call in planned.follow_ups]


def test_by_default_a_replay_applies_the_contact_its_fields_and_tags_only():
    full = plan(PURCHASE, ROUTES)
    replayed = for_replay(full)
    assert replayed.first == full.first  # the upsert, with the rule's fields
    assert replayed.first.args[0]["_OrderId"] == "1001"
    assert ops(replayed) == ["apply_tag"]
    assert (replayed.kind, replayed.event_id, replayed.rules) == (full.kind, full.event_id, full.rules)


def test_an_unsubscribe_replay_keeps_its_fields_opt_out_and_tag_changes():
    replayed = for_replay(plan(UNSUBSCRIBE, ROUTES))
    assert replayed.first.op == "find_contacts"
    assert ops(replayed) == ["update_contact", "remove_tag", "apply_tag", "opt_out"]


def test_include_sequences_adds_starts_stops_and_pauses():
    assert ops(for_replay(plan(PURCHASE, ROUTES), ["sequences"])) == ["apply_tag", "start_sequence", "start_sequence"]
    unsubscribe = ops(for_replay(plan(UNSUBSCRIBE, ROUTES), ["sequences"]))
    assert unsubscribe == ["update_contact", "remove_tag", "stop_sequence", "pause_sequence", "apply_tag", "opt_out"]


def test_include_once_only_adds_action_sets_and_goals():
    assert ops(for_replay(plan(PURCHASE, ROUTES), ["once-only"])) == ["apply_tag", "run_action_set", "achieve_goal"]
    everything = for_replay(plan(PURCHASE, ROUTES), ["sequences", "once-only"])
    assert everything == plan(PURCHASE, ROUTES)


def test_the_once_only_part_is_exactly_the_runners_once_only_operations():
    once_only = replay_ops(["once-only"]) - replay_ops([])
    assert once_only == ONCE_ONLY_OPS


def test_every_follow_up_of_the_routes_belongs_to_one_replay_part():
    keys = [key for part in REPLAY_PARTS.values() for key in part]
    assert sorted(keys) == sorted(id_key for id_key, _, _ in FOLLOW_UPS)


def test_an_unknown_part_is_refused():
    with pytest.raises(ValueError, match="unknown replay part"):
        for_replay(plan(PURCHASE, ROUTES), ["everything"])
