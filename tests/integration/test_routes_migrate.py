"""`keap-relay routes migrate --to rest` against the emulator: comments kept, every exit status, stdout or --out."""

import argparse
import re
from pathlib import Path

import pytest
import yaml

from keap_emulator import FaultPlan
from keap_emulator.server import DEFAULT_API_KEY as KEY
from keap_relay.routing.routes import check_routes, parse_routes
from keap_relay_ops import migrate
from keap_relay_ops.cli import main

ROOT = Path(__file__).resolve().parents[2]
LEGACY = ROOT / "tests" / "fixtures" / "routes-xmlrpc.yaml"  # the routes shipped before REST became the default
SHIPPED_REST = ROOT / "config" / "routes.rest.yaml"

ONLY_SEQUENCES = """\
# A comment at the top stays.
version: 1
forms:
  - name: sign-ups          # a comment on a rule's key stays
    match: {}
    tags: [100]
    campaigns: [11, 13]     # both sequences
    # a comment line between keys stays
    fields: {_LeadSource: web}
unsubscribes:
  - match: {}
    remove_campaigns: [12]
"""


@pytest.fixture
def keap(emu, monkeypatch):
    """The emulator as the app KEAP_URL / KEAP_API_KEY name, as the functions read them."""
    for name in ("KEAP_API", "KEAP_REST_URL", "ROUTES_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KEAP_URL", emu.url)
    monkeypatch.setenv("KEAP_API_KEY", KEY)
    return emu


def args(routes, out=None):
    return argparse.Namespace(to="rest", routes=str(routes), out=None if out is None else str(out))


def write(tmp_path, text, name="routes.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def comments(text):
    """The file's comments, without the notes migrate writes (a `# routes migrate:` line and its continuation)."""
    found, in_note = [], False
    for line in text.splitlines():
        in_note = line.lstrip().startswith("# routes migrate:") or (in_note and line.lstrip().startswith("#"))
        if "#" in line and not in_note:
            found.append(line[line.index("#") :])
    return found


def test_migrating_sequences_keeps_comments_and_order_and_passes_the_rest_check(keap, tmp_path, capsys):
    source = write(tmp_path, ONLY_SEQUENCES)
    out = tmp_path / "rest.yaml"
    assert migrate.run(args(source, out)) == 0
    text = out.read_text(encoding="utf-8")
    assert comments(text) == comments(ONLY_SEQUENCES)
    assert re.search(r"\n    sequences: \[\{campaign: 5, sequence: 11\}, \{campaign: 6, sequence: 13\}\] +# both", text)
    assert "    remove_sequences: [{campaign: 5, sequence: 12}]\n" in text
    doc = yaml.safe_load(text)
    assert list(doc["forms"][0]) == ["name", "match", "tags", "sequences", "fields"]
    check_routes(parse_routes(doc, str(out)), "rest")
    assert source.read_text(encoding="utf-8") == ONLY_SEQUENCES  # the input is never touched
    report = capsys.readouterr().out
    assert "UNVERIFIED" in report and "legacy follow-up sequence id" in report
    assert 'campaigns 13 → sequences {campaign: 6, sequence: 13}: legacy "Win-back" = v2 "Win-back"' in report
    assert "passes the REST routes check" in report


def test_it_reads_keap_with_listing_calls_only_never_one_per_id(keap, tmp_path, capsys):
    assert migrate.run(args(write(tmp_path, ONLY_SEQUENCES), tmp_path / "out.yaml")) == 0
    methods = [call["method"] for call in keap.calls()]
    # one listing of the campaigns, one of each campaign's sequences, one of the legacy sequences; no writes
    campaigns = len(keap.model.world.campaigns)
    assert sorted(methods) == sorted(
        ["rest.listCampaigns", "DataService.query"] + ["rest.getCampaignSequences"] * campaigns
    )


def test_without_out_the_file_goes_to_stdout_and_the_report_to_stderr(keap, tmp_path, capsys):
    source = write(tmp_path, ONLY_SEQUENCES)
    assert migrate.run(args(source)) == 0
    captured = capsys.readouterr()
    assert yaml.safe_load(captured.out)["unsubscribes"][0]["remove_sequences"] == [{"campaign": 5, "sequence": 12}]
    assert "UNVERIFIED" in captured.err and "UNVERIFIED" not in captured.out
    assert source.read_text(encoding="utf-8") == ONLY_SEQUENCES
    assert [p.name for p in tmp_path.iterdir()] == ["routes.yaml"]  # nothing else written


def test_out_naming_the_input_overwrites_it_and_only_then(keap, tmp_path, capsys):
    source = write(tmp_path, ONLY_SEQUENCES)
    source.chmod(0o640)
    assert migrate.run(args(source, source)) == 0
    assert "remove_sequences" in source.read_text(encoding="utf-8")
    assert source.stat().st_mode & 0o777 == 0o640 and [p.name for p in tmp_path.iterdir()] == ["routes.yaml"]


def test_the_shipped_xmlrpc_routes_need_a_person_for_their_action_sets(keap, tmp_path, capsys):
    out = tmp_path / "rest.yaml"
    assert migrate.run(args(LEGACY, out)) == 1
    text = out.read_text(encoding="utf-8")
    legacy = LEGACY.read_text(encoding="utf-8")
    assert comments(text) == comments(legacy)
    assert text == SHIPPED_REST.read_text(encoding="utf-8")  # config/routes.rest.yaml is this very output
    assert text.count("# routes migrate: REST v2 cannot run an action set") == 2
    assert "action_sets: [21]" in text and "action_sets: [31]" in text  # left in place for a person
    report = capsys.readouterr().out
    tail = report[report.index("Needs a person (2;") :]
    assert "purchases[0] (course buyers): action_sets:" in tail
    assert "unsubscribes[0] (everyone who leaves): action_sets:" in tail
    assert "API goal at the start of a Campaign Builder sequence" in tail


def test_a_sequence_in_no_campaign_stays_with_a_comment(keap, tmp_path, capsys):
    source = write(tmp_path, "version: 1\nforms:\n  - match: {}\n    campaigns: [11, 99]  # mine\n")
    out = tmp_path / "rest.yaml"
    assert migrate.run(args(source, out)) == 1
    text = out.read_text(encoding="utf-8")
    assert "    sequences: [{campaign: 5, sequence: 11}]\n" in text
    assert "    # routes migrate: sequence 99 is in no campaign of this app" in text
    assert re.search(r"\n    campaigns: \[99\] +# mine\n", text)
    assert "forms[0]: campaigns: sequence 99 is in no campaign" in capsys.readouterr().out


def test_pause_campaigns_and_fields_rest_cannot_write_are_listed(keap, tmp_path, capsys):
    text = "version: 1\nunsubscribes:\n  - match: {}\n    pause_campaigns: [11]\n    fields: {ContactNotes: x}\n"
    assert migrate.run(args(write(tmp_path, text), tmp_path / "out.yaml")) == 1
    report = capsys.readouterr().out
    assert "unsubscribes[0]: pause_campaigns: REST v2 cannot pause a sequence" in report
    assert "unsubscribes[0]: fields: REST v2 has no Contact property for ContactNotes" in report


def test_a_file_rest_already_runs_comes_back_unchanged_without_asking_keap(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("KEAP_API_KEY", raising=False)
    shipped = (ROOT / "config" / "routes.yaml").read_text(encoding="utf-8")
    assert migrate.run(args(ROOT / "config" / "routes.yaml")) == 0
    assert capsys.readouterr().out == shipped


@pytest.mark.parametrize(
    "text, env, reason",
    [
        (None, {}, "cannot read the routes file"),
        ("version: 1\nforms: [\n", {}, "not valid YAML"),
        ("version: 1\nforms:\n  - match: {}\n    tags: [abc]\n", {}, "field tags[0]"),
        (ONLY_SEQUENCES, {"KEAP_API_KEY": ""}, "no Keap key"),
        (ONLY_SEQUENCES, {"KEAP_URL": "http://127.0.0.1:9/crm/xmlrpc/v1"}, "cannot list the app's campaigns"),
    ],
)
def test_what_cannot_run_exits_2_with_one_line(keap, tmp_path, monkeypatch, capsys, text, env, reason):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    source = tmp_path / "routes.yaml" if text is None else write(tmp_path, text)
    out = tmp_path / "out.yaml"
    assert migrate.run(args(source, out)) == 2
    err = capsys.readouterr().err
    assert err.startswith("keap-relay routes migrate: ") and reason in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and KEY not in err
    assert not out.exists()


def test_only_rest_is_a_target(tmp_path, capsys):
    assert migrate.run(argparse.Namespace(to="xmlrpc", routes=str(LEGACY), out=str(tmp_path / "o.yaml"))) == 2
    assert capsys.readouterr().err == "keap-relay routes migrate: --to must be rest, not 'xmlrpc'\n"
    assert not (tmp_path / "o.yaml").exists()


def test_the_command_line_runs_it(keap, tmp_path, capsys):
    source = write(tmp_path, ONLY_SEQUENCES)
    assert main(["routes", "migrate", "--to", "rest", "--routes", str(source), "--out", str(tmp_path / "o.yaml")]) == 0
    assert "sequences: [{campaign: 5, sequence: 11}" in (tmp_path / "o.yaml").read_text(encoding="utf-8")


def test_with_xmlrpc_gone_it_still_migrates_and_says_the_legacy_names_are_unknown(keap, tmp_path, capsys):
    keap.set_faults(FaultPlan(outages=[(0, 4e9)], surfaces={"xmlrpc"}))
    assert migrate.run(args(write(tmp_path, ONLY_SEQUENCES), tmp_path / "out.yaml")) == 0
    report = capsys.readouterr().out
    assert 'campaigns 11 → sequences {campaign: 5, sequence: 11}: legacy (legacy name unknown) = v2 "Welcome"' in report
    assert "legacy names unknown (XML-RPC listing failed:" in report
