"""The routes file: the shipped example loads; errors name the file, the rule and the field."""

from pathlib import Path

import pytest
import yaml

from keap_relay.routing.routes import RoutesError, load_routes, parse_routes

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_routes_file_loads_and_runs_on_both_apis():
    routes = load_routes(str(ROOT / "config" / "routes.yaml"), "rest")
    assert load_routes(str(ROOT / "config" / "routes.yaml"), "xmlrpc") is routes
    assert routes.dup_check == "Email"
    forms = routes.for_kind("form_submission")
    assert forms[0].ids == {"tags": (101, 102), "sequences": ((11, 5),)}
    assert forms[0].match == {"source": frozenset({"generic"}), "form": frozenset({"lT4Z3j"})}
    assert routes.for_kind("unsubscribe")[0].ids["remove_tags"] == (100, 101)


def test_routes_file_env_var_is_honoured(tmp_path, monkeypatch):
    path = tmp_path / "r.yaml"
    path.write_text("version: 1\nforms:\n  - match: {}\n    tags: [7]\n")
    monkeypatch.setenv("ROUTES_FILE", str(path))
    from keap_relay.routing.routes import routes_path

    assert routes_path() == str(path)
    assert load_routes(routes_path()).for_kind("form_submission")[0].ids == {"tags": (7,)}


def error_of(doc):
    with pytest.raises(RoutesError) as info:
        parse_routes(yaml.safe_load(doc), "config/routes.yaml")
    return str(info.value)


def test_error_names_file_rule_and_field():
    msg = error_of("version: 1\npurchases:\n  - match: {}\n  - name: vip\n    match: {}\n    tags: [201, abc]\n")
    assert msg.startswith("config/routes.yaml: rule purchases[1] (vip): field tags[1]:")
    assert "'abc' is not of type 'integer'" in msg


def test_unknown_key_lists_allowed_keys():
    msg = error_of("version: 1\nforms:\n  - match: {}\n    action_set: [21]\n")
    assert "rule forms[0]: field action_set: is not a known key" in msg
    assert "action_sets" in msg


def test_unknown_match_key_for_section():
    msg = error_of("version: 1\nforms:\n  - match: {sku: X}\n")
    assert "rule forms[0]: field match.sku: is not a known key" in msg


def test_missing_match_and_bad_version_and_dup_check():
    assert "field match: is required" in error_of("version: 1\nforms:\n  - tags: [1]\n")
    assert "top level: field version" in error_of("version: 2\n")
    assert "top level: field dup_check" in error_of("version: 1\ndup_check: Name\n")


def test_not_a_mapping_and_missing_file(tmp_path):
    assert "must be a mapping" in error_of("- just a list\n")
    with pytest.raises(RoutesError, match="cannot read the routes file"):
        load_routes(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: [1\n")
    with pytest.raises(RoutesError, match="not valid YAML"):
        load_routes(str(bad))


def test_numeric_match_values_compare_as_strings():
    routes = parse_routes(yaml.safe_load("version: 1\nforms:\n  - match: {form: 12345}\n    tags: [1]\n"))
    assert routes.for_kind("form_submission")[0].match["form"] == frozenset({"12345"})
