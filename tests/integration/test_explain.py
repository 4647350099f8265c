"""`keap-relay explain`: the samples explained offline, every exit status, and `--live` reading Keap but never
writing to it (the emulator's call log holds only reads and listings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from keap_emulator.server import DEFAULT_API_KEY as KEY
from keap_relay.keap.client import ContactService
from keap_relay_local.defaults import DEFAULT_WEBHOOK_SECRETS, ROOT
from keap_relay_ops.cli import main

EVENTS = ROOT / "events"
# The tests' own routes (the XML-RPC form of the shipped file), so that they do not change when it does.
ROUTES = {
    "version": 1,
    "dup_check": "Email",
    "forms": [
        {
            "name": "webinar sign-up",
            "match": {"source": "generic", "form": "lT4Z3j"},
            "tags": [101, 102],
            "campaigns": [11],
            "fields": {"_LeadSource": "{{form.name}}"},
        },
        {"name": "every form", "match": {}, "tags": [100]},
    ],
    "purchases": [
        {"name": "course buyers", "match": {"sku": "COURSE-101"}, "tags": [201], "action_sets": [21]},
        {"name": "big orders", "match": {"min_total": "100.00"}, "tags": [202], "fields": {"_OrderId": "{{order.id}}"}},
    ],
    "unsubscribes": [
        {
            "name": "everyone who leaves",
            "match": {},
            "remove_tags": [100, 101],
            "remove_campaigns": [11],
            "tags": [300],
            "action_sets": [31],
        }
    ],
}
# What --live may send to Keap: look-ups and listings (XML-RPC methods, and REST v2 operations by prefix).
READS = ("ContactService.findByEmail", "ContactService.load", "ContactService.getNextCampaignStep", "DataService.query")
REST_READS = ("rest.list", "rest.get", "rest.retrieve")


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The functions' settings, unset but for the API and the routes: each test sets what else it needs."""
    for name in ("WEBHOOK_SECRETS", "WEBHOOK_SECRETS_ARN", "KEAP_URL", "KEAP_REST_URL", "KEAP_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KEAP_API", "xmlrpc")
    (tmp_path / "routes.yaml").write_text(yaml.safe_dump(ROUTES))
    monkeypatch.setenv("ROUTES_FILE", str(tmp_path / "routes.yaml"))


def explain(capsys: pytest.CaptureFixture[str], *args: Any) -> tuple[int, Any, str]:
    """Run `keap-relay explain ARGS --json`: (exit status, the JSON printed or None, stderr)."""
    status = main(["explain", *map(str, args), "--json"])
    out, err = capsys.readouterr()
    return status, (json.loads(out) if out.strip() else None), err


def live(monkeypatch: pytest.MonkeyPatch, emu: Any, api: str = "xmlrpc") -> None:
    monkeypatch.setenv("KEAP_URL", emu.url)
    monkeypatch.setenv("KEAP_API_KEY", KEY)
    monkeypatch.setenv("KEAP_API", api)


def assert_only_reads(calls: list[dict[str, Any]]) -> None:
    assert calls, "--live made no call at all"
    for call in calls:
        method = call["method"] or ""
        assert method in READS or method.startswith(REST_READS), f"--live sent {method} to Keap"


# ---------------------------------------------------------------------------------------------------- offline


def test_a_webhook_sample_is_explained_offline_with_the_email_masked(capsys, emu):
    status, doc, err = explain(capsys, EVENTS / "forms" / "http-typeform.json")
    assert status == 0, err
    assert doc["function"] == "forms" and doc["trigger"] == "http"
    assert doc["signature"].startswith("not verified")
    assert doc["event"]["contact"]["email"] == "l***@example.com"
    assert doc["rules"] == ["forms[1] (every form)"]
    assert [(c["step"], c["method"], c["args"]) for c in doc["calls"]] == [
        (
            1,
            "ContactService.addWithDupCheck",
            [{"FirstName": "Laura", "LastName": "Finch", "Email": "l***@example.com"}, "Email"],
        ),
        (2, "ContactService.addToGroup", [None, 100]),
    ]
    assert all(c["name"] is None and c["already"] is None for c in doc["calls"])
    assert "laura.finch" not in json.dumps(doc)
    assert emu.calls() == []  # offline: Keap is never asked


def test_show_pii_shows_the_address(capsys):
    status, doc, _ = explain(capsys, EVENTS / "forms" / "bare.json", "--show-pii")
    assert status == 0
    assert doc["event"]["contact"]["email"] == "ada@example.com"
    assert doc["calls"][0]["args"][0]["Email"] == "ada@example.com"


def test_the_calls_follow_the_runner_first_call_then_every_follow_up(capsys):
    status, doc, _ = explain(capsys, EVENTS / "unsubscribes" / "bare.json")
    assert status == 0
    assert doc["rules"] == ["unsubscribes[0] (everyone who leaves)"]
    methods = [(c["step"], c["method"], c["args"][1:]) for c in doc["calls"]]
    assert methods == [
        (1, "ContactService.findByEmail", []),
        (2, "ContactService.removeFromGroup", [100]),
        (2, "ContactService.removeFromGroup", [101]),
        (2, "ContactService.removeFromCampaign", [11]),
        (2, "ContactService.addToGroup", [300]),
        (2, "ContactService.runActionSequence", [31]),
    ]


@pytest.mark.parametrize("sample", ["sqs.json", "eventbridge.json", "bare.json"])
def test_every_trigger_shape_is_read(capsys, sample):
    status, doc, err = explain(capsys, EVENTS / "purchases" / sample)
    assert status == 0, err
    assert doc["function"] == "purchases"
    explained = doc.get("events") or [doc]
    assert all(item["calls"][0]["method"] == "ContactService.addWithDupCheck" for item in explained)


def test_a_batch_explains_each_record(capsys):
    status, doc, _ = explain(capsys, EVENTS / "forms" / "sqs.json")
    assert status == 0
    assert [item["event"]["id"] for item in doc["events"]] == ["frm-20261126-0003", "frm-20261126-0004"]


def test_a_url_check_is_answered_without_calls(capsys):
    status, doc, _ = explain(capsys, EVENTS / "unsubscribes" / "http-mailchimp-validation.json")
    assert status == 0
    assert doc["reply"]["status"] == "ok"
    assert (doc["event"], doc["rules"], doc["calls"]) == (None, [], [])


def test_the_text_output_names_the_rules_and_calls(capsys):
    assert main(["explain", str(EVENTS / "forms" / "bare.json")]) == 0
    out = capsys.readouterr().out
    assert "forms[0] (webinar sign-up)" in out and "ContactService.addToCampaign" in out
    assert "a***@example.com" in out and "ada@example.com" not in out


def test_rest_names_the_rest_calls(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("KEAP_API", "rest")
    routes = {"version": 1, "forms": [{"match": {}, "tags": [100], "sequences": [{"campaign": 5, "sequence": 11}]}]}
    (tmp_path / "rest.yaml").write_text(yaml.safe_dump(routes))
    status, doc, _ = explain(capsys, EVENTS / "forms" / "bare.json", "--routes", tmp_path / "rest.yaml")
    assert status == 0
    assert [c["method"] for c in doc["calls"]] == ["rest.upsertContact", "rest.applyTags", "rest.addContactsToSequence"]
    assert doc["calls"][2]["args"] == [None, 11, 5]


# ---------------------------------------------------------------------------------------------------- signatures


def test_a_configured_secret_verifies_the_webhook(capsys, monkeypatch):
    monkeypatch.setenv("WEBHOOK_SECRETS", json.dumps(DEFAULT_WEBHOOK_SECRETS))
    status, doc, _ = explain(capsys, EVENTS / "forms" / "http-typeform.json")
    assert status == 0
    assert doc["signature"] == "verified with the 'typeform' secret of WEBHOOK_SECRETS"


def test_a_signature_that_does_not_match_exits_1(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("WEBHOOK_SECRETS", json.dumps({**DEFAULT_WEBHOOK_SECRETS, "typeform": "another-secret"}))
    status, doc, err = explain(capsys, EVENTS / "forms" / "http-typeform.json")
    assert (status, doc) == (1, None)
    assert err.count("\n") == 1 and "401" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------------- refusals


def test_an_event_for_another_function_exits_1(capsys):
    status, doc, err = explain(capsys, EVENTS / "forms" / "bare.json", "--function", "purchases")
    assert (status, doc) == (1, None)
    assert err.count("\n") == 1 and "forms function, not purchases" in err


def test_a_webhook_for_another_function_exits_1(capsys):
    status, _, err = explain(capsys, EVENTS / "forms" / "http-typeform.json", "--function", "unsubscribes")
    assert status == 1 and "forms function" in err


def test_an_invalid_event_exits_1(capsys, tmp_path):
    event = json.loads((EVENTS / "forms" / "bare.json").read_text())
    del event["contact"]["email"]
    (tmp_path / "bad.json").write_text(json.dumps(event))
    status, _, err = explain(capsys, tmp_path / "bad.json")
    assert status == 1 and "EventInvalid" in err and "contact.email" in err and err.count("\n") == 1


@pytest.mark.parametrize("content", [None, "{not json"])
def test_an_unreadable_file_exits_2(capsys, tmp_path, content):
    path = tmp_path / "event.json"
    if content is not None:
        path.write_text(content)
    status, doc, err = explain(capsys, path)
    assert (status, doc) == (2, None)
    assert err.count("\n") == 1 and str(path) in err


def test_a_broken_routes_file_exits_2(capsys, tmp_path):
    (tmp_path / "broken.yaml").write_text("version: 1\nforms: [{match: {}, tags: [not-an-id]}]\n")
    status, _, err = explain(capsys, EVENTS / "forms" / "bare.json", "--routes", tmp_path / "broken.yaml")
    assert status == 2 and "broken.yaml" in err and err.count("\n") == 1


def test_an_event_without_a_kind_needs_function(capsys, tmp_path):
    (tmp_path / "e.json").write_text(json.dumps({"id": "x"}))
    status, _, err = explain(capsys, tmp_path / "e.json")
    assert status == 2 and "--function" in err


# ---------------------------------------------------------------------------------------------------- --live


def seed(emu: Any, email: str, tags: list[int], sequences: list[int]) -> int:
    client = ContactService(emu.url, KEY)
    contact_id = client.add_with_dup_check({"Email": email, "FirstName": "Ada"}, "Email")
    for tag in tags:
        client.add_to_group(contact_id, tag)
    for sequence in sequences:
        client.add_to_campaign(contact_id, sequence)
    return contact_id


def test_live_reads_the_contact_and_the_names_and_never_writes(capsys, monkeypatch, emu):
    contact_id = seed(emu, "ada@example.com", [100], [11])
    before, tags_before = len(emu.calls()), emu.model.contact_tags(contact_id)
    live(monkeypatch, emu)
    status, doc, err = explain(capsys, EVENTS / "forms" / "bare.json", "--live")
    assert status == 0, err
    assert_only_reads(emu.calls()[before:])
    assert emu.model.contact_tags(contact_id) == tags_before
    assert doc["contact"]["existing"] is True and doc["contact"]["ids"] == [contact_id]
    assert doc["contact"]["sequences"][str(contact_id)]["11"] > 0
    calls = {(c["method"], c["args"][-1]): c for c in doc["calls"]}
    assert calls[("ContactService.addWithDupCheck", "Email")]["already"] is True
    assert calls[("ContactService.addToGroup", 100)]["already"] is True
    assert calls[("ContactService.addToGroup", 101)]["already"] is False
    assert calls[("ContactService.addToGroup", 101)]["args"] == [contact_id, 101]
    assert calls[("ContactService.addToGroup", 101)]["name"] == "Lead: webinar sign-up"
    assert calls[("ContactService.addToCampaign", 11)]["already"] is True
    assert calls[("ContactService.addToCampaign", 11)]["name"]


def test_live_for_a_new_contact_and_action_set_names(capsys, monkeypatch, emu):
    live(monkeypatch, emu)
    status, doc, _ = explain(capsys, EVENTS / "purchases" / "bare.json", "--live")
    assert status == 0
    assert_only_reads(emu.calls())
    assert emu.model.contact_ids() == []
    assert doc["contact"]["existing"] is False
    action_set = next(c for c in doc["calls"] if c["method"] == "ContactService.runActionSequence")
    assert action_set["name"] == "New customer" and action_set["args"][0] is None


def test_live_unsubscribe_of_an_unknown_address_stops_after_the_look_up(capsys, monkeypatch, emu):
    live(monkeypatch, emu)
    status, doc, _ = explain(capsys, EVENTS / "unsubscribes" / "bare.json", "--live")
    assert status == 0
    assert [c["method"] for c in doc["calls"]] == ["ContactService.findByEmail"]
    assert "no contact has this email" in doc["note"]
    assert_only_reads(emu.calls())


def test_live_on_rest_reads_tags_and_says_sequences_are_unknown(capsys, monkeypatch, emu, tmp_path):
    contact_id = seed(emu, "ada@example.com", [100], [])
    before = len(emu.calls())
    live(monkeypatch, emu, "rest")
    routes = {
        "version": 1,
        "forms": [{"match": {}, "tags": [100, 101], "sequences": [{"campaign": 5, "sequence": 11}]}],
    }
    (tmp_path / "rest.yaml").write_text(yaml.safe_dump(routes))
    status, doc, err = explain(capsys, EVENTS / "forms" / "bare.json", "--live", "--routes", tmp_path / "rest.yaml")
    assert status == 0, err
    assert_only_reads(emu.calls()[before:])
    assert doc["contact"]["sequences"] == {str(contact_id): {"11": "unknown"}}
    calls = {c["method"] + str(c["args"][1:]): c for c in doc["calls"]}
    assert calls["rest.applyTags[100]"]["already"] is True and calls["rest.applyTags[101]"]["already"] is False
    sequence = calls["rest.addContactsToSequence[11, 5]"]
    assert sequence["already"] is None and sequence["name"]


def test_live_without_a_key_exits_2(capsys, monkeypatch, emu):
    monkeypatch.setenv("KEAP_URL", emu.url)
    status, _, err = explain(capsys, EVENTS / "forms" / "bare.json", "--live")
    assert status == 2 and "KEAP_API_KEY" in err and err.count("\n") == 1
    assert emu.calls() == []


def test_live_with_keap_unreachable_exits_2(capsys, monkeypatch):
    monkeypatch.setenv("KEAP_URL", "http://127.0.0.1:9/crm/xmlrpc/v1")  # discard port: nothing listens
    monkeypatch.setenv("KEAP_API_KEY", KEY)
    monkeypatch.setenv("KEAP_MAX_CALLS_PER_SECOND", "0")
    status, _, err = explain(capsys, EVENTS / "forms" / "bare.json", "--live")
    assert status == 2 and err.count("\n") == 1 and KEY not in err


def test_the_samples_all_explain(capsys):
    failed = {}
    for path in sorted(EVENTS.glob("*/*.json")):
        status, _, err = explain(capsys, path)
        if status:
            failed[path.name] = err
    assert failed == {}
