"""Held answers: the emulator applies a once-only call, holds its answer until released, and says so."""

import json
import threading
import urllib.request
import xmlrpc.client
from typing import Any

import pytest

from keap_emulator import EmulatorServer
from keap_emulator.faults import HeldAnswer, HoldPlan

KEY = "holds-key"
ACTION_SET = "ContactService.runActionSequence"


@pytest.fixture
def emu():
    with EmulatorServer(port=0, api_key=KEY) as server:
        yield server


def _xmlrpc(emu: EmulatorServer) -> Any:
    return xmlrpc.client.ServerProxy(emu.url, headers=[("X-Keap-API-Key", KEY)])


def _in_thread(call: Any) -> tuple[threading.Thread, list[Any]]:
    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(call()), daemon=True)
    thread.start()
    return thread, answers


def test_an_applied_action_set_is_held_until_released(emu: EmulatorServer) -> None:
    cid = emu.model.add({"Email": "held@example.com"})
    heard: list[HeldAnswer] = []
    emu.hold_answers(HoldPlan(frozenset({ACTION_SET}), limit=1, max_hold_s=10), heard.append)

    thread, answers = _in_thread(lambda: _xmlrpc(emu).ContactService.runActionSequence(KEY, cid, 21))
    thread.join(1.0)
    assert thread.is_alive() and answers == []  # no answer yet ...
    assert [run["action_set_id"] for run in emu.model.action_set_runs(cid)] == [21]  # ... though Keap ran it
    assert len(heard) == 1
    assert (heard[0].method, heard[0].surface, heard[0].params[1:]) == (ACTION_SET, "xmlrpc", (cid, 21))

    heard[0].release()
    thread.join(5)
    assert answers and not thread.is_alive()
    (entry,) = [c for c in emu.calls() if c["method"] == ACTION_SET]
    # held from its arrival (after the thread started) until released: most of the second the test waited
    assert entry["applied"] and entry["held_s"] > 0.5

    # The limit was one: the next call is answered at once, and not heard of.
    assert _xmlrpc(emu).ContactService.runActionSequence(KEY, cid, 21)
    assert len(heard) == 1 and len(emu.model.action_set_runs(cid)) == 2


def test_a_hold_ends_by_itself_and_other_methods_are_never_held(emu: EmulatorServer) -> None:
    cid = emu.model.add({"Email": "other@example.com"})
    heard: list[HeldAnswer] = []
    emu.hold_answers(HoldPlan(frozenset({ACTION_SET}), max_hold_s=0.3), heard.append)
    assert _xmlrpc(emu).ContactService.addToGroup(KEY, cid, 100) is True
    assert heard == []
    assert _xmlrpc(emu).ContactService.runActionSequence(KEY, cid, 21)  # answered after 0.3 s, unreleased
    assert len(heard) == 1
    emu.hold_answers(None)
    assert _xmlrpc(emu).ContactService.runActionSequence(KEY, cid, 21)
    assert len(heard) == 1


def test_a_rest_goal_is_held_with_its_body(emu: EmulatorServer) -> None:
    cid = emu.model.add({"Email": "goal@example.com"})
    heard: list[HeldAnswer] = []
    emu.hold_answers(HoldPlan(frozenset({"rest.achieveGoal"}), limit=1, max_hold_s=10), heard.append)
    body = json.dumps({"contact_id": cid, "integration": "keaprelay", "call_name": "newcustomer"}).encode()
    request = urllib.request.Request(
        emu.rest_url + "/rest/v2/automations/goals/achieve",
        data=body,
        headers={"Content-Type": "application/json", "X-Keap-API-Key": KEY},
        method="POST",
    )
    thread, answers = _in_thread(lambda: urllib.request.urlopen(request, timeout=10).status)
    thread.join(1.0)
    assert answers == [] and [run["goal_id"] for run in emu.model.goal_runs(cid)] == [41]
    assert heard[0].params["contact_id"] == cid and heard[0].surface == "rest"
    heard[0].release()
    thread.join(5)
    assert answers == [200]


def test_a_hold_plan_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        HoldPlan(frozenset({ACTION_SET}), share=1.5)
    with pytest.raises(ValueError):
        HoldPlan(frozenset({ACTION_SET}), max_hold_s=0)
