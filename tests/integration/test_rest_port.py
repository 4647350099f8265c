"""The same routes over both Keap APIs: the port gives the same effects read back from the emulator, and a
function needs only KEAP_API=rest and KEAP_URL to switch."""

import pytest
import yaml

from keap_emulator.server import DEFAULT_API_KEY
from keap_relay.aws.config import Settings
from keap_relay.aws.pipeline import EventFailed, Pipeline
from keap_relay.routing.keap_port import ContactServicePort, RestPort, build_port
from keap_relay.routing.plan import plan
from keap_relay.routing.routes import check_routes, parse_routes
from keap_relay.routing.runner import SequenceRunner

KEY = DEFAULT_API_KEY

ROUTES_TEXT = """
version: 1
forms:
  - name: webinar
    match: {}
    tags: [100, 101]
    sequences: [{campaign: 5, sequence: 11}]
    fields: {_LeadSource: "{{form.name}}"}
purchases:
  - name: buyers
    match: {}
    tags: [200]
    sequences: [{campaign: 5, sequence: 12}]
    goals: [{integration: keaprelay, call_name: newcustomer}]
unsubscribes:
  - name: leavers
    match: {}
    remove_tags: [100]
    remove_sequences: [{campaign: 5, sequence: 11}]
    tags: [300]
    goals: [{integration: keaprelay, call_name: unsubscribed}]
    opt_out: true
    fields: {_UnsubscribeReason: "{{unsubscribe.reason}}"}
"""
ROUTES = parse_routes(yaml.safe_load(ROUTES_TEXT), "routes.yaml")

CONTACT = {
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "phone": "+44 20 7946 0000",
    "company": "Analytical Engines",
    "address": {"line1": "1 Main St", "city": "London", "country_code": "GB"},
}
EVENTS = [
    {
        "kind": "form_submission",
        "source": "typeform",
        "id": "f1",
        "contact": CONTACT,
        "form": {"id": "lT4Z3j", "name": "Webinar"},
    },
    {
        "kind": "purchase",
        "source": "shopify",
        "id": "p1",
        "contact": {"email": "ada@example.com"},
        "order": {"id": "1001", "total": "49.00", "currency": "USD", "items": [{"sku": "COURSE-101"}]},
    },
    {
        "kind": "unsubscribe",
        "source": "mailchimp",
        "id": "u1",
        "contact": {"email": "ADA@example.com"},
        "unsubscribe": {"reason": "too many emails", "list_id": "news"},
    },
]


def effects(emu):
    """What Keap holds after the events, in terms that do not depend on the API used."""
    model = emu.model
    out = []
    for cid in model.contact_ids():
        record = model.get_contact(cid)
        fields = {
            k: record.get(k)
            for k in (
                "Email",
                "FirstName",
                "LastName",
                "Phone1",
                "Company",
                "StreetAddress1",
                "City",
                "_LeadSource",
                "_UnsubscribeReason",
            )
        }
        out.append(
            {
                "fields": fields,
                "tags": sorted(model.contact_tags(cid)),
                "enrolments": [(e["sequence_id"], e["state"]) for e in model.enrolments(cid)],
                "goals": [g["goal_id"] for g in model.goal_runs(cid)],
                "email_status": model.email_status(record["Email"])["status"],
            }
        )
    return out


def run_all(emu, api):
    check_routes(ROUTES, api)
    runner = SequenceRunner(build_port(api, url=emu.url, api_key=KEY), max_concurrency=2)
    return [runner.run(plan(event, ROUTES)) for event in EVENTS]


def test_both_apis_leave_keap_in_the_same_state(emu):
    xmlrpc_results = run_all(emu, "xmlrpc")
    xmlrpc_effects = effects(emu)
    assert {c["surface"] for c in emu.calls()} == {"xmlrpc"}
    emu.reset()
    rest_results = run_all(emu, "rest")
    assert {c["surface"] for c in emu.calls()} == {"rest"}
    assert (
        effects(emu)
        == xmlrpc_effects
        == [
            {
                "fields": {
                    "Email": "ada@example.com",
                    "FirstName": "Ada",
                    "LastName": "Lovelace",
                    "Phone1": "+44 20 7946 0000",
                    "Company": "Analytical Engines",
                    "StreetAddress1": "1 Main St",
                    "City": "London",
                    "_LeadSource": "Webinar",
                    "_UnsubscribeReason": "too many emails",
                },
                "tags": [200, 201, 300],  # goal 42 removes 100 and 101
                "enrolments": [(11, "removed"), (12, "active")],
                "goals": [41, 42],
                "email_status": "ADMIN",
            }
        ]
    )
    # The same steps, under the same keys, whichever API made them.
    for a, b in zip(xmlrpc_results, rest_results, strict=True):
        assert [s.key for s in a.steps] == [s.key for s in b.steps]
        assert all(s.status == "ok" for s in a.steps + b.steps)
    unsubscribe = {s.key: s.call for s in rest_results[2].steps}
    assert unsubscribe["1/opt_out"] == "rest.updateEmailAddressStatus"
    assert {s.key: s.call for s in xmlrpc_results[2].steps}["1/opt_out"] == "APIEmailService.optOut"


def test_country_is_sent_the_way_each_api_wants_it(emu):
    event = {**EVENTS[0], "contact": {**CONTACT, "address": {"country_code": "GB", "region": "ENG"}}}
    for api, country, state in (("xmlrpc", "GB", "ENG"), ("rest", "GBR", "GB-ENG")):
        emu.reset()
        SequenceRunner(build_port(api, url=emu.url, api_key=KEY)).run(plan(event, ROUTES))
        record = emu.model.get_contact(1)
        assert (record["Country"], record["State"]) == (country, state)


def test_a_missing_contact_is_a_permanent_failure_over_either_api(emu):
    errors = {}
    for api in ("xmlrpc", "rest"):
        with pytest.raises(Exception) as info:
            build_port(api, url=emu.url, api_key=KEY).apply_tag(999, 100)
        errors[api] = info.value
    assert errors["xmlrpc"].error_class == "KeapRecordNotFound"
    assert errors["rest"].error_class == "KeapNotFound" and "contact 999: CONTACT_DOES_NOT_EXIST" in str(errors["rest"])
    assert not errors["xmlrpc"].transient and not errors["rest"].transient
    assert isinstance(build_port("rest", url=emu.url, api_key=KEY), RestPort)
    assert isinstance(build_port("xmlrpc", url=emu.url, api_key=KEY), ContactServicePort)


def settings(emu, api, routes_file, **extra):
    env = {"KEAP_API": api, "KEAP_URL": emu.url, "KEAP_API_KEY": KEY, "ROUTES_FILE": str(routes_file), **extra}
    return Settings.from_env("form_submission", env=env)


def test_a_function_switches_api_with_keap_api_and_keap_url_alone(emu, tmp_path):
    routes_file = tmp_path / "routes.yaml"
    routes_file.write_text(ROUTES_TEXT)
    answer = Pipeline("form_submission", settings(emu, "rest", routes_file)).handle(EVENTS[0])
    assert answer["status"] == "applied"
    assert {c["surface"] for c in emu.calls()} == {"rest"}
    assert sorted(emu.model.contact_tags(1)) == [100, 101]
    assert [(e["sequence_id"], e["state"]) for e in emu.model.enrolments(1)] == [(11, "active")]


def test_routes_the_api_cannot_run_fail_at_load_naming_the_rule_before_any_call(emu, tmp_path):
    routes_file = tmp_path / "routes.yaml"
    routes_file.write_text("version: 1\nforms:\n  - name: legacy\n    match: {}\n    campaigns: [11]\n")
    pipeline = Pipeline("form_submission", settings(emu, "rest", routes_file))
    with pytest.raises(EventFailed) as info:
        pipeline.handle(EVENTS[0])
    assert info.value.failure.step == "configure" and not info.value.transient
    assert "rule forms[0] (legacy): field campaigns" in info.value.failure.message
    assert emu.calls() == []
    # The same file runs over XML-RPC.
    assert Pipeline("form_submission", settings(emu, "xmlrpc", routes_file)).handle(EVENTS[0])["status"] == "applied"
