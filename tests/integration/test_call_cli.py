"""`keap-relay call`: one ContactService method against the emulator — reads run, changes need --yes (without it
no call reaches Keap), a fault exits 1 with its class, and the signature table agrees with the emulator's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from keap_emulator.responses import METHODS as EMULATOR_METHODS
from keap_emulator.server import DEFAULT_API_KEY as KEY
from keap_relay.keap.client import ContactService
from keap_relay_ops.call import METHODS
from keap_relay_ops.cli import main


@pytest.fixture
def keap(monkeypatch: pytest.MonkeyPatch, emu: Any) -> Any:
    """The emulator, named by the settings the functions read."""
    for name in ("KEAP_RATE_LIMIT", "KEAP_MAX_CALLS_PER_SECOND", "KEAP_API_KEY_SECRET_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KEAP_URL", emu.url)
    monkeypatch.setenv("KEAP_API_KEY", KEY)
    return emu


def call(capsys: pytest.CaptureFixture[str], *args: Any) -> tuple[int, Any, str]:
    """Run `keap-relay call ARGS`: (exit status, the JSON printed or None, stderr)."""
    status = main(["call", *map(str, args)])
    out, err = capsys.readouterr()
    return status, (json.loads(out) if out.strip() else None), err


def contact(emu: Any, email: str = "ada@example.com") -> int:
    return ContactService(emu.url, KEY).add_with_dup_check({"Email": email, "FirstName": "Ada"}, "Email")


def test_the_signatures_agree_with_the_emulator():
    emulated = {name: spec.params for name, spec in EMULATOR_METHODS.items() if name.startswith("ContactService.")}
    assert {name: method.params for name, method in METHODS.items()} == emulated


def test_a_read_prints_keaps_answer_as_json(capsys, keap):
    contact_id = contact(keap)
    status, result, err = call(capsys, "ContactService.findByEmail", "ada@example.com", "Id,Email,FirstName")
    assert status == 0, err
    assert result == [{"Id": contact_id, "Email": "ada@example.com", "FirstName": "Ada"}]


def test_the_short_name_and_int_conversion(capsys, keap):
    contact_id = contact(keap)
    status, result, _ = call(capsys, "getNextCampaignStep", contact_id, 11)
    assert (status, result) == (0, 0)


def test_a_change_without_yes_makes_no_call(capsys, keap):
    contact_id = contact(keap)
    before = len(keap.calls())
    status, result, err = call(capsys, "ContactService.addToGroup", contact_id, 101)
    assert (status, result) == (1, None)
    assert f"ContactService.addToGroup({contact_id}, 101)" in err and "--yes" in err and err.count("\n") == 1
    assert len(keap.calls()) == before
    assert 101 not in keap.model.contact_tags(contact_id)


def test_a_change_with_yes_is_made(capsys, keap):
    contact_id = contact(keap)
    status, result, _ = call(capsys, "ContactService.addToGroup", contact_id, 101, "--yes")
    assert (status, result) == (0, True)
    assert 101 in keap.model.contact_tags(contact_id)


def test_json_args_carry_a_struct(capsys, keap):
    contact_id = contact(keap)
    status, result, _ = call(
        capsys, "ContactService.update", "--json-args", json.dumps([contact_id, {"City": "Oslo"}]), "--yes"
    )
    assert (status, result) == (0, contact_id)
    assert keap.model.get_contact(contact_id)["City"] == "Oslo"


def test_a_fault_exits_1_with_the_error_class_and_keaps_message(capsys, keap):
    status, result, err = call(capsys, "ContactService.addToGroup", 99999, 101, "--yes")
    assert (status, result) == (1, None)
    assert err.startswith("keap-relay call: KeapRecordNotFound: ContactService.addToGroup")
    assert err.count("\n") == 1 and KEY not in err


@pytest.mark.parametrize(
    "args",
    [
        ("ContactService.nope", "1"),
        ("ContactService.addToGroup", "seven", "101", "--yes"),
        ("ContactService.addToGroup", "7"),
        ("ContactService.update", "--json-args", "{not json"),
        ("ContactService.update", "7", "--json-args", "[7, {}]"),
        ("ContactService.add", "not-a-struct", "--yes"),
    ],
)
def test_bad_arguments_exit_2_without_a_call(capsys, keap, args):
    status, result, err = call(capsys, *args)
    assert (status, result) == (2, None)
    assert err.count("\n") == 1 and "Traceback" not in err
    assert keap.calls() == []


def test_no_key_exits_2(capsys, keap, monkeypatch):
    monkeypatch.delenv("KEAP_API_KEY")
    status, _, err = call(capsys, "ContactService.findByEmail", "ada@example.com", "Id")
    assert status == 2 and "KEAP_API_KEY" in err
    assert keap.calls() == []


def test_keap_unreachable_exits_2(capsys, monkeypatch):
    monkeypatch.setenv("KEAP_URL", "http://127.0.0.1:9/crm/xmlrpc/v1")  # discard port: nothing listens
    monkeypatch.setenv("KEAP_API_KEY", KEY)
    status, _, err = call(capsys, "ContactService.findByEmail", "ada@example.com", "Id")
    assert status == 2 and err.count("\n") == 1 and KEY not in err


def test_calls_are_paced_at_the_keys_rate(keap, monkeypatch):
    from keap_relay_ops.call import DEFAULT_KEY_RATE, client_from_env

    assert client_from_env().rate_limiter.rate == DEFAULT_KEY_RATE
    monkeypatch.setenv("KEAP_RATE_LIMIT", "25")
    assert client_from_env().rate_limiter.rate == 25
