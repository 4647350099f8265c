"""`keap-relay routes check` through the CLI's main(): offline problems, --live against the emulator over HTTP
(names, missing ids, unchecked goals, calls counted in the emulator's log), and every exit status."""

import json
import socket
import sys
from pathlib import Path

import pytest
import yaml

from keap_emulator import EmulatorServer
from keap_relay_ops.cli import main

KEY = "routes-check-key"
SHIPPED = str(Path(__file__).resolve().parents[2] / "config" / "routes.yaml")


def write(tmp_path: Path, doc: dict, name: str = "routes.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"version": 1, **doc}, sort_keys=False))
    return str(path)


@pytest.fixture
def keap_env(monkeypatch):
    """Point the settings the functions read at an emulator; `keap_env(emu)`."""
    for name in ("KEAP_API", "KEAP_REST_URL", "ROUTES_FILE"):
        monkeypatch.delenv(name, raising=False)

    def point(emu: EmulatorServer, key: str = KEY) -> None:
        monkeypatch.setenv("KEAP_URL", emu.url)
        monkeypatch.setenv("KEAP_API_KEY", key)

    return point


def run(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["routes", "check", *args])
    out, err = capsys.readouterr()
    return status, out, err


def run_json(capsys, *args: str) -> tuple[int, dict]:
    status, out, _ = run(capsys, *args, "--json")
    return status, json.loads(out)


# ---------------------------------------------------------------- offline


def test_the_shipped_routes_pass_offline_on_xmlrpc(capsys, keap_env):
    assert run(capsys, "--routes", SHIPPED, "--api", "xmlrpc")[:2] == (
        0,
        f"{SHIPPED}: KEAP_API=xmlrpc, offline\nno problems\n",
    )


def test_offline_problems_name_file_rule_field_and_id(tmp_path, capsys, keap_env):
    path = write(
        tmp_path,
        {
            "forms": [
                {
                    "name": "welcome",
                    "match": {},
                    "tags": [100, 101],
                    "fields": {"_LeadSource": "{{form.name}} / {{order.id}}", "_Source": "{{ contact.nickname }}"},
                }
            ],
            "purchases": [
                {"name": "fine", "match": {"min_total": "10"}, "tags": [200], "fields": {"_OrderId": "{{order.id}}"}},
                {"name": "impossible", "match": {"min_total": "100.00", "max_total": 50}, "tags": [202]},
            ],
            "unsubscribes": [
                {
                    "match": {},
                    "tags": [300, 101],
                    "remove_tags": [101, 100],
                    "remove_campaigns": [11],
                    "fields": {"Groups": "x"},
                }
            ],
        },
    )
    status, report = run_json(capsys, "--routes", path, "--api", "rest")
    assert status == 1
    found = {(p["section"], p["index"], p["field"], p["id"]): p["message"] for p in report["problems"]}
    assert found == {
        ("forms", 0, "fields._LeadSource", None): "{{order.id}} names no field of a form_submission event",
        ("forms", 0, "fields._Source", None): "{{contact.nickname}} names no field of a form_submission event",
        ("purchases", 1, "match", None): "never matches: min_total 100.00 is greater than max_total 50",
        ("unsubscribes", 0, "tags, remove_tags", "101"): "both tags and remove_tags",
        ("unsubscribes", 0, "remove_campaigns", None): found[("unsubscribes", 0, "remove_campaigns", None)],
        ("unsubscribes", 0, "fields.Groups", None): "the Contact field has no REST v2 counterpart",
    }
    assert (
        "write remove_sequences: [{campaign: C, sequence: S}]" in found[("unsubscribes", 0, "remove_campaigns", None)]
    )
    texts = [p["text"] for p in report["problems"]]
    assert f"{path}: rule unsubscribes[0]: field tags, remove_tags: id 101: both tags and remove_tags" in texts
    assert report["references"] and report["keap_calls"] == 0  # offline: Keap never asked

    # The same file as a person reads it; on XML-RPC `remove_campaigns` and `Groups` are fine.
    status, out, _ = run(capsys, "--routes", path, "--api", "xmlrpc")
    assert status == 1 and "4 problem(s):" in out and "rule purchases[1] (impossible): field match" in out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1\nforms:\n  - name: x\n    match: {}\n    tags: [oops]\n", "rule forms[0] (x): field tags[0]"),
        ("version: 1\nforms: [\n", "not valid YAML"),
    ],
)
def test_a_file_that_does_not_parse_is_one_problem(tmp_path, capsys, keap_env, text, message):
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    status, out, err = run(capsys, "--routes", str(path))
    assert status == 1 and err == ""
    assert f"1 problem(s):\n  {path}: " in out and message in out


def test_an_unreadable_file_cannot_be_checked(tmp_path, capsys, keap_env):
    status, out, err = run(capsys, "--routes", str(tmp_path / "absent.yaml"))
    assert status == 2 and out == ""
    assert err.startswith("keap-relay routes check: ") and err.count("\n") == 1 and "cannot read" in err


def test_bad_arguments_exit_2_with_one_line(capsys, keap_env):
    with pytest.raises(SystemExit) as stopped:
        main(["routes", "check", "--api", "soap"])
    assert stopped.value.code == 2 and capsys.readouterr().err.count("\n") == 1


def test_a_bad_keap_api_setting_cannot_check(capsys, keap_env, monkeypatch):
    monkeypatch.setenv("KEAP_API", "soap")
    status, out, err = run(capsys, "--routes", SHIPPED)
    assert (status, out) == (
        2,
        "",
    ) and err == "keap-relay routes check: KEAP_API must be one of rest, xmlrpc, not 'soap'\n"


def test_routes_file_defaults_to_routes_file_setting(tmp_path, capsys, keap_env, monkeypatch):
    monkeypatch.setenv(
        "ROUTES_FILE", write(tmp_path, {"unsubscribes": [{"match": {}, "tags": [1], "remove_tags": [1]}]})
    )
    status, out, _ = run(capsys)
    assert status == 1 and "field tags, remove_tags: id 1: both" in out


# ---------------------------------------------------------------- --live


def test_live_on_xmlrpc_names_what_keap_has_and_what_it_lacks(tmp_path, emu, capsys, keap_env):
    keap_env(emu)
    path = write(
        tmp_path,
        {
            "forms": [
                {"name": "webinar", "match": {}, "tags": [101, 999], "campaigns": [11], "fields": {"_Nope": "x"}}
            ],
            "purchases": [{"match": {}, "action_sets": [21, 22], "goals": [{"integration": "a", "call_name": "b"}]}],
        },
    )
    status, out, err = run(capsys, "--routes", path, "--api", "xmlrpc", "--live")
    assert status == 1 and err == ""
    assert '✓ tag 101 "Lead: webinar sign-up"  (forms[0] (webinar) tags)' in out
    assert "✗ tag 999  (forms[0] (webinar) tags) — Keap has no tag 999" in out
    assert '✓ legacy sequence 11 "Welcome"' in out and '✓ action set 21 "New customer"' in out
    assert "- goal a/b  (purchases[0] goals) — unchecked: cannot be checked" in out
    assert f"{path}: rule forms[0] (webinar): field tags: id 999: Keap has no tag 999" in out
    assert f"{path}: rule forms[0] (webinar): field fields: id _Nope: Keap has no custom field _Nope" in out
    assert f"{path}: rule purchases[0]: field action_sets: id 22: Keap has no action set 22" in out
    assert "3 problem(s)" in out
    assert {c["method"] for c in emu.calls()} == {"DataService.query"}


def test_live_on_rest_checks_each_sequence_in_its_campaign(tmp_path, emu, capsys, keap_env):
    keap_env(emu)
    sequences = [{"campaign": 5, "sequence": 11}, {"campaign": 5, "sequence": 13}, {"campaign": 9, "sequence": 11}]
    goal = {"integration": "keaprelay", "call_name": "newcustomer"}
    path = write(tmp_path, {"forms": [{"name": "s", "match": {}, "sequences": sequences, "goals": [goal]}]})
    status, report = run_json(capsys, "--routes", path, "--api", "rest", "--live")
    assert status == 1
    refs = [(r["kind"], r["id"], r["campaign"], r["status"], r["keap_name"]) for r in report["references"]]
    assert refs == [
        ("sequence", "11", 5, "ok", "Welcome"),
        ("sequence", "13", 5, "missing", None),
        ("sequence", "11", 9, "missing", None),
        ("goal", "keaprelay/newcustomer", None, "unchecked", None),
    ]
    assert report["references"][3]["note"].startswith("cannot be checked: neither REST v2's goal listing")
    problems = [(p["field"], p["id"], p["message"]) for p in report["problems"]]
    assert problems == [
        ("sequences", "13", "Keap has no sequence 13 in campaign 5"),
        ("sequences", "11", "Keap has no campaign 9"),
    ]
    # campaigns once, then the sequences of the one campaign that exists
    assert [c["method"] for c in emu.calls()] == ["rest.listCampaigns", "rest.getCampaignSequences"]


def test_live_all_found_exits_0(emu, capsys, keap_env):
    keap_env(emu)
    status, out, _ = run(capsys, "--routes", SHIPPED, "--api", "xmlrpc", "--live")
    assert status == 0 and "0 missing" in out and out.endswith("no problems\n")


def test_live_without_a_key_or_keap_cannot_check(emu, capsys, keap_env, monkeypatch):
    keap_env(emu)
    monkeypatch.delenv("KEAP_API_KEY")
    status, out, err = run(capsys, "--routes", SHIPPED, "--live")
    assert (status, out) == (
        2,
        "",
    ) and err == "keap-relay routes check: no Keap key: set KEAP_API_KEY (the key the functions use)\n"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("KEAP_API_KEY", KEY)
    monkeypatch.setenv("KEAP_URL", f"http://127.0.0.1:{closed}/crm/xmlrpc/v1")
    status, out, err = run(capsys, "--routes", SHIPPED, "--api", "xmlrpc", "--live")
    assert (status, out) == (2, "") and err.count("\n") == 1 and "could not list tags" in err and KEY not in err


def test_a_wrong_key_cannot_check_and_is_not_shown(emu, capsys, keap_env):
    keap_env(emu, key="not-the-key")
    status, out, err = run(capsys, "--routes", SHIPPED, "--api", "rest", "--live")
    assert (status, out) == (2, "") and "not-the-key" not in err and err.count("\n") == 1


# ---------------------------------------------------------------- 50 ids, a handful of calls

BIG_WORLD = {
    "format": 1,
    "tags": [{"id": 1000 + i, "name": f"Tag {i}", "category": "Big"} for i in range(35)],
    "campaigns": [{"id": 1, "name": "First"}, {"id": 2, "name": "Second"}],
    "sequences": [
        {"id": 500 + i, "name": f"Sequence {i}", "campaign": 1 + i % 2, "steps": [{"id": 9000 + i}]} for i in range(10)
    ],
    "action_sets": [{"id": 700 + i, "name": f"Action set {i}", "actions": []} for i in range(5)],
    "custom_fields": [{"name": f"_Field{i}", "type": "string"} for i in range(5)],
}


@pytest.fixture(scope="module")
def big_emu():
    with EmulatorServer(port=0, api_key=KEY, seed=BIG_WORLD) as emulator:
        yield emulator


@pytest.mark.parametrize(("api", "most"), [("rest", 5), ("xmlrpc", 4)])
def test_fifty_ids_in_two_campaigns_take_a_handful_of_calls(tmp_path, big_emu, capsys, keap_env, api, most):
    big_emu.reset()
    keap_env(big_emu)
    # 50 distinct ids: tags, sequences in two campaigns, custom fields, and on XML-RPC action sets for 5 tags.
    tags = [1000 + i for i in range(35 if api == "rest" else 30)]
    sequences = [{"campaign": 1 + i % 2, "sequence": 500 + i} for i in range(10)]
    rules = [
        {"name": f"rule {n}", "match": {"form": f"f{n}"}, "tags": tags[n::5], "sequences": sequences[n::5]}
        for n in range(5)
    ]
    fields = {f"_Field{i}": "x" for i in range(5)}
    rules.append(
        {
            "name": "sets",
            "match": {},
            "fields": fields,
            **({"action_sets": [700, 701, 702, 703, 704]} if api == "xmlrpc" else {}),
        }
    )
    path = write(tmp_path, {"forms": rules})
    status, report = run_json(capsys, "--routes", path, "--api", api, "--live")
    assert status == 0, report["problems"]
    ids = {(r["kind"], r["id"]) for r in report["references"]}
    assert len(ids) == 50 and all(r["status"] == "ok" for r in report["references"])
    calls = [c["method"] for c in big_emu.calls()]
    assert len(calls) == report["keap_calls"] <= most, calls


# ---------------------------------------------------------------- the group's other command


def test_migrate_missing_is_a_one_line_exit_2(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "keap_relay_ops.migrate", None)  # as if migrate.py were not there
    assert main(["routes", "migrate", "--to", "rest"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keap-relay routes migrate: ") and err.count("\n") == 1
