"""The planner: every matching rule contributes, ids are unioned, each call once; fields mapped and trimmed."""

import yaml

from keap_relay.routing.plan import Call, contact_fields, plan
from keap_relay.routing.routes import parse_routes

ROUTES = parse_routes(
    yaml.safe_load("""
version: 1
dup_check: Email
forms:
  - match: {source: typeform, form: lT4Z3j}
    tags: [101, 102]
    campaigns: [11]
  - match: {}
    tags: [100, 101]
  - match: {source: [jotform, tally]}
    tags: [105]
    dup_check: EmailAndName
purchases:
  - match: {sku: COURSE-101}
    tags: [201]
    action_sets: [21]
  - match: {source: shopify, min_total: "100.00"}
    tags: [202]
    fields: {_OrderId: "{{order.id}}", _Source: "{{source}}/{{missing.path}}"}
  - match: {max_total: 10, currency: EUR}
    tags: [203]
unsubscribes:
  - match: {}
    remove_tags: [100, 101]
    remove_campaigns: [11]
    tags: [300]
    action_sets: [31]
  - match: {list_id: news}
    pause_campaigns: [12]
    fields: {_UnsubscribeReason: "{{unsubscribe.reason}}"}
""")
)


def form(**over):
    ev = {
        "kind": "form_submission",
        "source": "typeform",
        "id": "f1",
        "contact": {
            "email": " ada@example.com ",
            "first_name": " Ada",
            "last_name": "",
            "address": {"city": "London", "country_code": "GB", "line1": "  "},
            "fields": {"_LeadSource": "webinar"},
        },
        "form": {"id": "lT4Z3j", "name": "Webinar"},
    }
    ev.update(over)
    return ev


def test_matching_rules_union_ids_each_call_once():
    p = plan(form(), ROUTES)
    assert p.first.op == "upsert_contact"
    assert p.first.args[1] == "Email"
    assert p.follow_ups == (
        Call("apply_tag", (101,)),
        Call("apply_tag", (102,)),
        Call("apply_tag", (100,)),
        Call("start_sequence", (11,)),
    )
    assert p.rules == ("forms[0]", "forms[1]")


def test_contact_fields_are_mapped_trimmed_and_empties_left_out():
    assert contact_fields(form()) == {
        "FirstName": "Ada",
        "Email": "ada@example.com",
        "City": "London",
        "Country": "GB",
        "_LeadSource": "webinar",
    }


def test_rule_dup_check_overrides_file_default_and_list_match():
    p = plan(form(source="tally", form={"id": "other"}), ROUTES)
    assert p.first.args[1] == "EmailAndName"
    assert [c.args[0] for c in p.follow_ups] == [100, 101, 105]


def purchase(total="149.00", sku="COURSE-101", source="shopify", currency="USD"):
    return {
        "kind": "purchase",
        "source": source,
        "id": "p1",
        "contact": {"email": "bo@example.com"},
        "order": {"id": "1001", "total": total, "currency": currency, "items": [{"sku": "X"}, {"sku": sku}]},
    }


def test_purchase_matches_on_any_item_sku_and_total_bounds_and_templates_fields():
    p = plan(purchase(), ROUTES)
    assert [(c.op, c.args[0]) for c in p.follow_ups] == [("apply_tag", 201), ("apply_tag", 202), ("run_action_set", 21)]
    assert p.first.args[0]["_OrderId"] == "1001"
    assert p.first.args[0]["_Source"] == "shopify/"
    assert plan(purchase(total="99.99"), ROUTES).rules == ("purchases[0]",)
    assert plan(purchase(total="9.50", sku="Y", source="stripe", currency="EUR"), ROUTES).rules == ("purchases[2]",)
    assert plan(purchase(total="10.01", sku="Y", currency="EUR"), ROUTES).rules == ()


def test_no_matching_rule_still_upserts_the_contact():
    p = plan(purchase(sku="NONE", total="1.00"), ROUTES)
    assert p.first.op == "upsert_contact" and p.follow_ups == ()


def test_unsubscribe_finds_by_email_then_removes_stops_tags_and_runs():
    ev = {
        "kind": "unsubscribe",
        "source": "mailchimp",
        "id": "u1",
        "contact": {"email": "cy@example.com"},
        "unsubscribe": {"reason": "too many emails", "list_id": "news"},
    }
    p = plan(ev, ROUTES)
    assert p.first == Call("find_contacts", ("cy@example.com",))
    assert [(c.op, c.args) for c in p.follow_ups] == [
        ("update_contact", ({"_UnsubscribeReason": "too many emails"},)),
        ("remove_tag", (100,)),
        ("remove_tag", (101,)),
        ("stop_sequence", (11,)),
        ("pause_sequence", (12,)),
        ("apply_tag", (300,)),
        ("run_action_set", (31,)),
    ]


def test_step_keys_are_stable_and_distinct():
    keys = [c.key for c in plan(form(), ROUTES).follow_ups]
    assert keys == ["apply_tag:101", "apply_tag:102", "apply_tag:100", "start_sequence:11"]
