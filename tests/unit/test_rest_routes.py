"""Routes and plans for either Keap API: new keys, the per-API routes check, KEAP_API and the port it picks."""

from pathlib import Path

import pytest
import yaml

from keap_relay.aws.config import ConfigError, Settings
from keap_relay.keap import KeapUnsupportedOperation, RestClient
from keap_relay.routing.keap_port import ContactServicePort, RestPort, build_port
from keap_relay.routing.plan import Call, plan
from keap_relay.routing.routes import RoutesError, check_routes, load_routes, parse_routes

ROOT = Path(__file__).resolve().parents[2]

BOTH_APIS = """
version: 1
forms:
  - name: webinar
    match: {form: lT4Z3j}
    tags: [101]
    sequences: [{campaign: 5, sequence: 11}]
    goals: [{integration: keaprelay, call_name: webinar}]
    fields: {_LeadSource: "{{form.name}}", FirstName: "{{contact.first_name}}"}
  - match: {}
    campaigns: [11, 12]
purchases:
  - match: {}
    goals: [{integration: keaprelay, call_name: newcustomer}, {integration: keaprelay, call_name: newcustomer}]
unsubscribes:
  - match: {}
    remove_sequences: [{campaign: 5, sequence: 11}]
    remove_campaigns: [11]
    remove_tags: [100]
    opt_out: true
  - match: {source: mailchimp}
    opt_out: true
"""


def routes(text=BOTH_APIS):
    return parse_routes(yaml.safe_load(text), "routes.yaml")


def form_event():
    return {
        "kind": "form_submission",
        "source": "typeform",
        "id": "f1",
        "contact": {"email": "ada@example.com"},
        "form": {"id": "lT4Z3j", "name": "Webinar"},
    }


def unsubscribe_event(reason=""):
    return {
        "kind": "unsubscribe",
        "source": "mailchimp",
        "id": "u1",
        "contact": {"email": " Cy@Example.com "},
        "unsubscribe": {"reason": reason, "list_id": "news"},
    }


def test_new_keys_load_as_hashable_entries():
    rule = routes().for_kind("form_submission")[0]
    assert rule.ids == {"tags": (101,), "sequences": ((11, 5),), "goals": (("keaprelay", "webinar"),)}
    assert routes().for_kind("unsubscribe")[0].opt_out is True
    assert routes().for_kind("form_submission")[1].opt_out is False


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ("sequences: [{campaign: 5}]", "sequences[0].sequence: is required"),
        ("sequences: [{campaign: 0, sequence: 11}]", "sequences[0].campaign"),
        ("goals: [{integration: 'a b', call_name: x}]", "goals[0].integration"),
        ("opt_out: yes please", "field opt_out"),
    ],
)
def test_schema_checks_the_new_keys(rule, field):
    section = "unsubscribes" if rule.startswith("opt_out") else "forms"
    with pytest.raises(RoutesError, match=field.replace("[", r"\[").replace("]", r"\]")):
        routes(f"version: 1\n{section}:\n  - match: {{}}\n    {rule}\n")


def test_opt_out_belongs_to_unsubscribe_rules_only():
    with pytest.raises(RoutesError, match="rule forms\\[0\\]: field opt_out: is not a known key"):
        routes("version: 1\nforms:\n  - match: {}\n    opt_out: true\n")


def test_a_bare_campaign_and_the_same_sequence_with_its_campaign_are_one_call():
    p = plan(form_event(), routes())
    assert p.follow_ups == (
        Call("apply_tag", (101,)),
        Call("start_sequence", (11, 5)),
        Call("start_sequence", (12,)),
        Call("achieve_goal", ("keaprelay", "webinar")),
    )
    assert [c.key for c in p.follow_ups] == [
        "apply_tag:101",
        "start_sequence:11:5",
        "start_sequence:12",
        "achieve_goal:keaprelay:webinar",
    ]


def test_repeated_goals_are_achieved_once():
    event = {"kind": "purchase", "source": "shopify", "id": "p1", "contact": {"email": "bo@example.com"}}
    assert plan(event, routes()).follow_ups == (Call("achieve_goal", ("keaprelay", "newcustomer")),)


def test_unsubscribe_stops_the_sequence_once_and_opts_the_email_out_once():
    p = plan(unsubscribe_event("too many emails"), routes())
    assert p.follow_ups == (
        Call("remove_tag", (100,)),
        Call("stop_sequence", (11, 5)),
        Call("opt_out", ("Cy@Example.com", "keap-relay: unsubscribed via mailchimp (too many emails)")),
    )
    # The step key carries no address: it lands in checkpoints and logs.
    assert p.follow_ups[-1].key == "opt_out"


def test_plans_without_the_new_keys_keep_their_step_keys():
    old = routes("version: 1\nforms:\n  - match: {}\n    tags: [1]\n    campaigns: [11]\n    action_sets: [21]\n")
    assert [c.key for c in plan(form_event(), old).follow_ups] == [
        "apply_tag:1",
        "start_sequence:11",
        "run_action_set:21",
    ]


def test_routes_check_names_every_rule_rest_cannot_run():
    # The routes file shipped before REST v2 became the default.
    legacy = load_routes(str(ROOT / "tests" / "fixtures" / "routes-xmlrpc.yaml"))
    with pytest.raises(RoutesError) as info:
        check_routes(legacy, "rest")
    message = str(info.value)
    assert "cannot run with KEAP_API=rest" in message
    assert (
        "rule forms[0] (webinar sign-up): field campaigns: REST v2 starts a sequence only with its campaign id"
        in message
    )
    assert "rule purchases[0] (course buyers): field action_sets: REST v2 has no call to run an action set" in message
    assert "rule unsubscribes[0] (everyone who leaves): field remove_campaigns" in message
    assert "rule unsubscribes[0] (everyone who leaves): field action_sets" in message
    check_routes(legacy, "xmlrpc")  # everything runs over XML-RPC


def test_routes_check_refuses_pause_and_fields_rest_has_no_place_for():
    text = (
        "version: 1\nunsubscribes:\n  - name: pause\n    match: {}\n    pause_campaigns: [12]\n"
        "    fields: {ContactNotes: left, _Reason: x}\n"
    )
    with pytest.raises(RoutesError) as info:
        check_routes(routes(text), "rest")
    assert "rule unsubscribes[0] (pause): field pause_campaigns: REST v2 has no call to pause a sequence" in str(
        info.value
    )
    assert (
        "rule unsubscribes[0] (pause): field fields.ContactNotes: the Contact field has no REST v2 counterpart"
        in str(info.value)
    )
    assert "_Reason" not in str(info.value)
    with pytest.raises(RoutesError, match="KEAP_API must be one of rest, xmlrpc"):
        check_routes(routes(text), "soap")


def test_routes_that_use_only_sequences_and_goals_run_on_both(tmp_path):
    text = BOTH_APIS.replace("    campaigns: [11, 12]\n", "    tags: [100]\n").replace(
        "    remove_campaigns: [11]\n", ""
    )
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    assert load_routes(str(path), "rest").for_kind("form_submission")[1].ids == {"tags": (100,)}
    assert load_routes(str(path), "xmlrpc") is load_routes(str(path), "xmlrpc")
    with pytest.raises(RoutesError, match="field campaigns"):
        path2 = tmp_path / "r2.yaml"
        path2.write_text(BOTH_APIS)
        load_routes(str(path2), "rest")


def test_keap_api_setting_defaults_to_rest_and_refuses_other_values():
    assert Settings.from_env("purchase", env={}).keap_api == "rest"
    assert Settings.from_env("purchase", env={"KEAP_API": "xmlrpc"}).keap_api == "xmlrpc"
    settings = Settings.from_env(
        "purchase",
        env={"KEAP_API": " REST ", "KEAP_REST_URL": "http://127.0.0.1:1/crm", "KEAP_API_KEY": "KeapAK-secret"},
    )
    assert (settings.keap_api, settings.keap_rest_url) == ("rest", "http://127.0.0.1:1/crm")
    assert "keap_api='rest'" in repr(settings) and "secret" not in repr(settings)
    assert Settings.from_env("purchase", env={"KEAP_REST_URL": ""}).keap_rest_url is None
    with pytest.raises(ConfigError, match="KEAP_API must be one of rest, xmlrpc, not 'soap'"):
        Settings.from_env("purchase", env={"KEAP_API": "soap"})


def test_build_port_picks_the_client_and_locates_rest_on_the_keap_url_host():
    xmlrpc = build_port("xmlrpc", url="http://127.0.0.1:9/crm/xmlrpc/v1", api_key="k")
    assert isinstance(xmlrpc, ContactServicePort) and xmlrpc.client.url == "http://127.0.0.1:9/crm/xmlrpc/v1"
    rest = build_port("rest", url="http://127.0.0.1:9/crm/xmlrpc/v1", api_key="k", max_calls_per_second=2)
    assert isinstance(rest, RestPort) and isinstance(rest.client, RestClient)
    assert rest.client.base_url == "http://127.0.0.1:9/crm" and rest.client.rate_limiter.rate == 2
    assert (
        build_port("rest", url=None, rest_url="http://127.0.0.1:8/x/crm", api_key="k").client.base_url
        == "http://127.0.0.1:8/x/crm"
    )
    with pytest.raises(KeapUnsupportedOperation):
        build_port("soap", url=None, api_key="k")


def test_rest_port_refuses_what_v2_cannot_do_without_calling_keap():
    port = RestPort(RestClient("http://127.0.0.1:9/crm", "k"))  # nothing listens there: a call would fail
    for call in (
        lambda: port.pause_sequence(1, 12),
        lambda: port.run_action_set(1, 21),
        lambda: port.start_sequence(1, 11),
        lambda: port.stop_sequence(1, 11),
    ):
        with pytest.raises(KeapUnsupportedOperation) as info:
            call()
        assert not info.value.transient
    assert set(port.call_names) == set(ContactServicePort.call_names)
