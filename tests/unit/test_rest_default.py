"""REST v2 is the default API: the shipped routes, the emulator's world and the way out of an XML-RPC sunset."""

from pathlib import Path

import pytest
import yaml

from keap_emulator.world import load_world
from keap_relay.keap.errors import error_from_http
from keap_relay.routing.routes import KEAP_APIS, load_routes

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config" / "routes.yaml"
LEGACY = ROOT / "tests" / "fixtures" / "routes-xmlrpc.yaml"
WAY_OUT = "set KEAP_API=rest after `keap-relay routes migrate --to rest`"


def test_rest_is_the_default_and_xmlrpc_stays_allowed():
    assert KEAP_APIS == ("rest", "xmlrpc")


def test_the_shipped_routes_do_on_rest_what_the_xmlrpc_routes_did_in_the_emulators_world():
    """Sequences in the campaigns that hold them; goals whose automations do what action sets 21 and 31 do."""
    world = load_world()
    shipped = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    legacy = yaml.safe_load(LEGACY.read_text(encoding="utf-8"))
    load_routes(str(SHIPPED), "rest")
    for section in ("forms", "purchases", "unsubscribes"):
        assert [r.get("name") for r in shipped[section]] == [r.get("name") for r in legacy[section]]
        for new, old in zip(shipped[section], legacy[section], strict=True):
            for legacy_key, key in (("campaigns", "sequences"), ("remove_campaigns", "remove_sequences")):
                entries = new.get(key, [])
                assert [e["sequence"] for e in entries] == old.get(legacy_key, [])
                assert all(world.sequences[e["sequence"]].campaign == e["campaign"] for e in entries)
            goals = [world.goals_for(g["integration"], g["call_name"]) for g in new.get("goals", [])]
            assert [g.actions for [g] in goals] == [world.action_sets[a].actions for a in old.get("action_sets", [])]
            assert {k: v for k, v in new.items() if k not in ("sequences", "remove_sequences", "goals")} == {
                k: v for k, v in old.items() if k not in ("campaigns", "remove_campaigns", "action_sets")
            }


def test_the_shipped_routes_say_how_the_xmlrpc_keys_map():
    text = SHIPPED.read_text(encoding="utf-8")
    for line in ("campaigns: [S]", "remove_campaigns: [S]", "pause_campaigns: [S]", "action_sets: [A]"):
        assert f"#   {line}" in text
    assert "keap-relay routes migrate --to rest" in text


@pytest.mark.parametrize("status", [404, 410, 503])
def test_an_xmlrpc_answer_that_may_mean_the_sunset_names_the_way_out(status):
    err = error_from_http(status, b"<html>" + b"x" * 2000 + b"</html>", method="ContactService.add")
    assert WAY_OUT in str(err)  # before Keap's text, which the message's cap cuts
    # the dead-letter name and the retry flags stay those of the status
    plain = error_from_http(status, b"", rest=True)
    assert err.error_class == ("KeapServiceUnavailable" if status == 503 else "KeapHTTPError")
    assert err.transient == (status == 503) == plain.transient
    assert WAY_OUT not in str(plain)


@pytest.mark.parametrize("status", [400, 500, 502])
def test_other_xmlrpc_statuses_do_not_blame_the_sunset(status):
    assert "KEAP_API" not in str(error_from_http(status, b"", method="ContactService.add"))
