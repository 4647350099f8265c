"""Fault injection: every kind observable over HTTP, the methods filter, seeds, outages, run-time changes."""

import http.client
import json
import urllib.error
import urllib.request
import xmlrpc.client
from xml.parsers.expat import ExpatError

import pytest

from keap_emulator import EmulatorServer, FaultPlan
from keap_emulator.faults import FaultInjector

KEY = "faults-key"
T0 = 1_800_000_000.0


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Sleeps:
    """Records requested sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def clock():
    return Clock(T0)


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture
def emu(clock, sleeps):
    with EmulatorServer(port=0, api_key=KEY, clock=clock, sleep=sleeps) as server:
        yield server


@pytest.fixture
def keap(emu):
    return xmlrpc.client.ServerProxy(emu.url, headers=[("X-Keap-API-Key", KEY)]).ContactService


def raw_add(emu):
    """POST a ContactService.add by hand: (status, content type, body)."""
    body = (
        b"<?xml version='1.0'?><methodCall><methodName>ContactService.add</methodName><params>"
        b"<param><value>k</value></param><param><value><struct><member><name>FirstName</name>"
        b"<value>Ada</value></member></struct></value></param></params></methodCall>"
    )
    request = urllib.request.Request(emu.url, body, {"X-Keap-API-Key": KEY})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def test_5xx_is_html_and_not_applied(emu, keap):
    emu.set_faults(FaultPlan(rate_5xx=1.0, seed=1))
    with pytest.raises(xmlrpc.client.ProtocolError) as excinfo:
        keap.add("k", {"FirstName": "Ada"})
    assert excinfo.value.errcode in (502, 503)
    status, content_type, body = raw_add(emu)
    assert status in (502, 503)
    assert content_type.startswith("text/html")
    assert body.startswith(b"<html>")
    assert emu.model.contact_ids() == []
    assert [(c["injected"], c["applied"]) for c in emu.calls()] == [("5xx", False), ("5xx", False)]


def test_injected_429_looks_like_the_quota_answer(emu):
    emu.set_faults(FaultPlan(rate_429=1.0))
    status, content_type, body = raw_add(emu)
    assert (status, content_type) == (429, "application/json")
    assert json.loads(body)["message"] == "Quota Exceeded"
    assert emu.model.contact_ids() == []


def raw_add_on_one_connection(emu):
    """One POST with http.client (which, unlike xmlrpc.client, does not retry)."""
    conn = http.client.HTTPConnection(*emu.address, timeout=5)
    try:
        conn.request(
            "POST",
            "/crm/xmlrpc/v1",
            xmlrpc.client.dumps(("k", {"FirstName": "Ada"}), "ContactService.add"),
            {"X-Keap-API-Key": KEY},
        )
        return conn.getresponse().status
    finally:
        conn.close()


def test_drop_before_apply_loses_the_call(emu):
    emu.set_faults(FaultPlan(rate_drop=1.0))
    with pytest.raises(http.client.RemoteDisconnected):
        raw_add_on_one_connection(emu)
    assert emu.model.contact_ids() == []
    (call,) = emu.calls()
    assert (call["injected"], call["http_status"], call["applied"]) == ("drop", None, False)


def test_drop_after_apply_applies_then_loses_the_answer(emu):
    emu.set_faults(FaultPlan(rate_drop=1.0, drop_after_apply=True))
    with pytest.raises(http.client.RemoteDisconnected):
        raw_add_on_one_connection(emu)
    assert emu.model.get_contact(1)["FirstName"] == "Ada"
    (call,) = emu.calls()
    assert (call["injected"], call["http_status"], call["applied"]) == ("drop", None, True)


def test_stdlib_client_silently_retries_a_dropped_call_once(emu, keap):
    # Worth knowing for a client built on xmlrpc.client: a lost answer to add() means two contacts.
    emu.set_faults(FaultPlan(rate_drop=1.0, drop_after_apply=True))
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        keap.add("k", {"FirstName": "Ada"})
    assert emu.model.contact_ids() == [1, 2]
    assert [c["applied"] for c in emu.calls()] == [True, True]


def test_malformed_is_a_200_with_truncated_xml(emu, keap):
    emu.set_faults(FaultPlan(rate_malformed=1.0))
    with pytest.raises((ExpatError, xmlrpc.client.ResponseError)):
        keap.add("k", {"FirstName": "Ada"})
    status, content_type, body = raw_add(emu)
    assert (status, content_type) == (200, "text/xml;charset=UTF-8")
    assert body.startswith(b'<?xml version="1.0"') and not body.endswith(b"</methodResponse>")
    assert emu.model.contact_ids() == [1, 2]  # Keap did the work; the answer was mangled


def test_fault_injection_answers_the_configured_fault(emu, keap):
    emu.set_faults(FaultPlan(rate_fault=1.0))
    with pytest.raises(xmlrpc.client.Fault) as excinfo:
        keap.findByEmail("k", "a@example.com", ["Id"])
    assert (excinfo.value.faultCode, excinfo.value.faultString) == (
        4,
        "[DatabaseError]Error returning results",
    )
    emu.set_faults(FaultPlan(rate_fault=1.0, fault=(3, "[UnexpectedError]boom")))
    with pytest.raises(xmlrpc.client.Fault) as excinfo:
        keap.add("k", {"FirstName": "Ada"})
    assert excinfo.value.faultCode == 3
    assert emu.model.contact_ids() == []
    assert emu.calls()[-1]["fault_code"] == 3


def test_latency_is_added_before_answering(emu, keap, sleeps):
    emu.set_faults(FaultPlan(latency_ms=50))
    assert keap.add("k", {"FirstName": "Ada"}) == 1
    assert sleeps.calls == [0.05]


def test_outage_window_answers_503_to_everything(emu, keap, clock):
    emu.set_faults(FaultPlan(outages=[(T0 + 10, T0 + 20)], methods={"ContactService.load"}))
    assert keap.add("k", {"FirstName": "Ada"}) == 1
    clock.t = T0 + 10
    for call in (lambda: keap.add("k", {}), lambda: keap.addToGroup("k", 1, 100)):
        with pytest.raises(xmlrpc.client.ProtocolError) as excinfo:
            call()
        assert excinfo.value.errcode == 503
    assert raw_add(emu)[1].startswith("text/html")
    clock.t = T0 + 20
    assert keap.addToGroup("k", 1, 100) is True
    assert [c["injected"] for c in emu.calls()] == [None, "outage", "outage", "outage", None]
    assert emu.model.contact_ids() == [1]


def test_methods_filter_limits_injection(emu, keap):
    emu.set_faults(FaultPlan(rate_fault=1.0, latency_ms=5, methods={"ContactService.addToGroup"}))
    cid = keap.add("k", {"FirstName": "Ada"})
    with pytest.raises(xmlrpc.client.Fault):
        keap.addToGroup("k", cid, 100)
    assert keap.addToCampaign("k", cid, 11) is True
    assert emu.model.contact_tags(cid) == set()
    assert [c["injected"] for c in emu.calls()] == [None, "fault", None]


def test_seeded_draws_are_reproducible():
    plan = FaultPlan(rate_5xx=0.2, rate_429=0.2, rate_drop=0.1, rate_malformed=0.1, rate_fault=0.1, seed=42)

    def draws(p):
        injector = FaultInjector(p)
        return [(i.kind, i.status) for i in (injector.decide("ContactService.add") for _ in range(200))]

    first = draws(plan)
    assert draws(plan) == first
    assert (
        draws(FaultPlan(rate_5xx=0.2, rate_429=0.2, rate_drop=0.1, rate_malformed=0.1, rate_fault=0.1, seed=43))
        != first
    )
    kinds = {k for k, _ in first}
    assert kinds == {None, "5xx", "429", "drop", "malformed", "fault"}
    assert 40 <= sum(k is None for k, _ in first) <= 120  # ~30 % of 200


def test_reset_restarts_the_seeded_sequence(emu, keap):
    emu.set_faults(FaultPlan(rate_fault=0.5, seed=7))

    def run():
        out = []
        for _ in range(12):
            try:
                keap.add("k", {"FirstName": "x"})
                out.append("ok")
            except xmlrpc.client.Fault:
                out.append("fault")
        return out

    first = run()
    emu.reset()
    assert run() == first
    assert "ok" in first and "fault" in first


def test_faults_change_at_run_time_over_http(emu, keap):
    def post(body: bytes):
        request = urllib.request.Request(emu.base_url + "/_emulator/faults", body)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as err:
            return err.code, json.load(err)

    status, plan = post(
        b'{"rate_fault": 1, "fault": [2, "[InvalidKey]Invalid Key"], "methods": ["ContactService.add"]}'
    )
    assert status == 200
    assert plan["rate_fault"] == 1 and plan["fault"] == [2, "[InvalidKey]Invalid Key"]
    assert emu.faults.methods == {"ContactService.add"}
    with pytest.raises(xmlrpc.client.Fault) as excinfo:
        keap.add("k", {"FirstName": "Ada"})
    assert excinfo.value.faultString == "[InvalidKey]Invalid Key"
    with urllib.request.urlopen(emu.base_url + "/_emulator/faults", timeout=5) as response:
        assert json.load(response)["methods"] == ["ContactService.add"]
    assert post(b"{}")[0] == 200
    assert keap.add("k", {"FirstName": "Ada"}) == 1
    assert post(b'{"rate_5xx": 0.8, "rate_fault": 0.8}')[0] == 400
    assert post(b'{"rate_teapot": 1}')[0] == 400
    assert post(b"not json")[0] == 400
    assert emu.faults == FaultPlan()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate_5xx": 1.5},
        {"rate_drop": -0.1},
        {"rate_5xx": 0.6, "rate_429": 0.6},
        {"outages": [(5, 5)]},
        {"latency_ms": -1},
    ],
)
def test_bad_plans_are_refused(kwargs):
    with pytest.raises(ValueError):
        FaultPlan(**kwargs)
