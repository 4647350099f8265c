"""ContactService client against the emulator over HTTP: every method, auth, argument checks, secrecy."""

import dataclasses
import http.client
import logging
import threading
import xmlrpc.client

import pytest

from keap_emulator import FaultPlan
from keap_relay.keap.client import ContactService
from keap_relay.keap.errors import KeapAuthError, KeapError, KeapRequestError
from keap_relay.keap.session import ClientOptions
from keap_relay.keap.transport import HTTPTransport

KEY = "KeapAK-0123456789abcdef-SECRET"


@pytest.fixture
def cs(emu):
    sleeps: list[float] = []
    client = ContactService(emu.url, KEY, options=ClientOptions(sleep=sleeps.append))
    client.sleeps = sleeps
    yield client
    client.close()


def new_contact(cs, email="ada@example.com", **fields):
    return cs.add({"Email": email, "FirstName": "Ada", "LastName": "Lovelace", **fields})


# ---------------------------------------------------------------- every method


def test_add_creates_a_contact_and_returns_its_id(cs, emu):
    cid = cs.add({"Email": "ada@example.com", "FirstName": "Ada", "_LeadSource": "webinar"})
    assert isinstance(cid, int) and cid > 0
    stored = emu.model.get_contact(cid)
    assert (stored["Email"], stored["FirstName"], stored["_LeadSource"]) == ("ada@example.com", "Ada", "webinar")


def test_add_with_dup_check_creates_then_updates_the_same_contact(cs, emu):
    first = cs.add_with_dup_check({"Email": "ada@example.com", "FirstName": "Ada"}, "Email")
    again = cs.add_with_dup_check({"Email": "ada@example.com", "Company": "Analytical Engines"}, "Email")
    assert first == again
    assert emu.model.get_contact(first)["Company"] == "Analytical Engines"
    assert emu.model.contact_ids() == [first]


def test_add_with_dup_check_refuses_an_unknown_dup_check_type_before_sending(cs, emu):
    with pytest.raises(KeapRequestError, match="EmailAndNameAndCompany"):
        cs.add_with_dup_check({"Email": "ada@example.com"}, "Name")
    assert emu.calls() == []


def test_update_changes_fields_and_returns_the_id(cs, emu):
    cid = new_contact(cs)
    assert cs.update(cid, {"City": "London", "_OrderTotal": 49.5}) == cid
    stored = emu.model.get_contact(cid)
    assert (stored["City"], stored["_OrderTotal"]) == ("London", 49.5)


def test_update_of_a_missing_contact_is_record_not_found(cs, emu, raises_named):
    with raises_named("KeapRecordNotFound") as caught:
        cs.update(999, {"City": "London"})
    assert caught.value.code == 5 and caught.value.method == "ContactService.update"
    assert len(emu.calls()) == 1  # permanent: not retried


def test_load_returns_the_selected_fields_that_have_values(cs):
    cid = new_contact(cs, City="London")
    assert cs.load(cid, ["Id", "FirstName", "City", "Company"]) == {"Id": cid, "FirstName": "Ada", "City": "London"}


def test_load_with_an_unknown_field_is_no_field_found(cs, raises_named):
    cid = new_contact(cs)
    with raises_named("KeapNoFieldFound", match="_LeadScore"):
        cs.load(cid, ["Id", "_LeadScore"])


def test_find_by_email_searches_all_three_email_fields(cs):
    a = new_contact(cs, "shared@example.com")
    b = cs.add({"Email": "other@example.com", "EmailAddress2": "shared@example.com", "FirstName": "Bo"})
    found = cs.find_by_email("shared@example.com", ["Id", "FirstName"])
    assert found == [{"Id": a, "FirstName": "Ada"}, {"Id": b, "FirstName": "Bo"}]
    assert cs.find_by_email("nobody@example.com", ["Id"]) == []


def test_tags_are_applied_and_removed(cs, emu):
    cid = new_contact(cs)
    assert cs.add_to_group(cid, 101) is True
    assert cs.add_to_group(cid, 102) is True
    assert emu.model.contact_tags(cid) == {101, 102}
    assert cs.remove_from_group(cid, 101) is True
    assert emu.model.contact_tags(cid) == {102}


def test_follow_up_sequence_lifecycle(cs, emu):
    cid = new_contact(cs)
    assert cs.add_to_campaign(cid, 11) is True
    assert [(e["sequence_id"], e["state"]) for e in emu.model.enrolments(cid)] == [(11, "active")]
    assert cs.get_next_campaign_step(cid, 11) == 1101
    assert cs.pause_campaign(cid, 11) is True
    assert emu.model.enrolments(cid)[0]["state"] == "paused"
    assert cs.resume_campaign_for_contact(cid, 11) is True
    assert emu.model.enrolments(cid)[0]["state"] == "active"
    assert cs.reschedule_campaign_step([cid], 1101) == 1
    assert cs.get_next_campaign_step(cid, 11) == 1102
    assert cs.remove_from_campaign(cid, 11) is True
    assert emu.model.enrolments(cid)[0]["state"] == "removed"
    assert cs.pause_campaign(cid, 11) is False  # no longer enrolled


def test_unknown_sequence_is_a_loading_fault_and_not_retried(cs, emu, raises_named):
    cid = new_contact(cs)
    with raises_named("KeapLoadingError", match=r"\[Loading\]Error loading follow-up sequence"):
        cs.add_to_campaign(cid, 99)
    assert [c["method"] for c in emu.calls()] == ["ContactService.add", "ContactService.addToCampaign"]


def test_run_action_sequence_returns_stripped_records_and_applies_the_actions(cs, emu):
    cid = new_contact(cs)
    cs.add_to_group(cid, 100)
    cs.add_to_group(cid, 101)
    records = cs.run_action_sequence(cid, 31)
    assert len(records) == 2
    assert all(r["IsError"] is False for r in records)
    assert all(v == v.strip() for r in records for v in r.values() if isinstance(v, str))
    assert emu.model.contact_tags(cid) == {300}
    assert [r["action_set_id"] for r in emu.model.action_set_runs(cid)] == [31]


def test_run_action_sequence_strips_keaps_padding(cs, monkeypatch):
    padded = [{"Action": "\n   Apply/Remove Tag\n  ", "Message": "  tags applied  ", "IsError": False}]
    monkeypatch.setattr(cs, "call", lambda method, *params: padded)
    assert cs.run_action_sequence(1, 21) == [
        {"Action": "Apply/Remove Tag", "Message": "tags applied", "IsError": False}
    ]


def test_merge_folds_the_duplicate_into_the_contact(cs, emu):
    keep = new_contact(cs, "ada@example.com")
    dup = cs.add({"Email": "ada@example.com", "City": "London"})
    cs.add_to_group(dup, 205)
    assert cs.merge(keep, dup) is True
    assert emu.model.get_contact(dup) is None
    assert emu.model.get_contact(keep)["City"] == "London"
    assert emu.model.contact_tags(keep) == {205}


def test_call_reaches_methods_without_a_wrapper(cs, raises_named):
    cid = new_contact(cs)
    assert cs.call("ContactService.load", cid, ["Email"]) == {"Email": "ada@example.com"}
    with raises_named("KeapNoSuchHandler", match=r"APIEmailService\.sendTemplate"):
        cs.call("APIEmailService.sendTemplate", cid)
    with raises_named("KeapInvokeError", match="contactId must be a valid id"):
        cs.call("ContactService.addToGroup", 0, 100)


# ---------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    ("method", "args", "words"),
    [
        ("load", ("7", ["Id"]), "contact_id must be an int"),
        ("load", (True, ["Id"]), "contact_id must be an int"),
        ("load", (-1, ["Id"]), "positive"),
        ("load", (1, "Id"), "list of field names"),
        ("load", (1, []), "at least one field"),
        ("load", (1, ["Id", ""]), "selected_fields[1]"),
        ("find_by_email", ("", ["Id"]), "email must be a non-empty string"),
        ("add", (["Email"],), "data must be a dict"),
        ("update", (1, None), "data must be a dict"),
        ("add_to_group", (1, 2.0), "group_id must be an int"),
        ("reschedule_campaign_step", ("1,2", 1101), "contact_ids must be a list of ints"),
        ("reschedule_campaign_step", ([1, "2"], 1101), "contact_ids[1]"),
    ],
)
def test_cheap_mistakes_are_refused_before_anything_is_sent(cs, emu, method, args, words):
    with pytest.raises(KeapRequestError) as caught:
        getattr(cs, method)(*args)
    assert words in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert emu.calls() == []


def test_values_keap_cannot_take_are_refused_before_sending(cs, emu, raises_named):
    with raises_named("KeapEncodeError", match=r'params\[1\]\["Company"\]'):
        cs.add({"Email": "ada@example.com", "Company": None})
    assert emu.calls() == []


# ---------------------------------------------------------------- auth


def spy_requests(monkeypatch):
    """Record what http.client is asked to send (the real request still goes to the emulator)."""
    seen: list[tuple[dict, bytes]] = []
    original = http.client.HTTPConnection.request

    def request(self, method, url, body=None, headers=None, **kw):
        seen.append((dict(headers or {}), body))
        return original(self, method, url, body, headers or {}, **kw)

    monkeypatch.setattr(http.client.HTTPConnection, "request", request)
    return seen


def test_api_key_travels_in_the_keap_header_and_never_in_the_body(emu, monkeypatch):
    seen = spy_requests(monkeypatch)
    cs = ContactService(emu.url, KEY)
    cs.add({"Email": "ada@example.com"})
    headers, body = seen[0]
    assert headers["X-Keap-API-Key"] == KEY
    assert "Authorization" not in headers
    assert headers["Content-Type"] == "text/xml; charset=UTF-8"
    assert headers["User-Agent"].startswith("keap-relay/")
    params, _ = xmlrpc.client.loads(body)
    assert params[0] != KEY and KEY.encode() not in body


def test_oauth_token_is_sent_as_bearer(emu, monkeypatch):
    seen = spy_requests(monkeypatch)
    cs = ContactService(emu.url, access_token=KEY)
    cid = cs.add({"Email": "ada@example.com"})
    assert emu.model.get_contact(cid) is not None
    headers, _ = seen[0]
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert "X-Keap-API-Key" not in headers
    assert repr(cs) == f"ContactService(url='{emu.url}', auth='bearer')"


def test_a_wrong_key_is_an_auth_error_and_not_retried(emu):
    cs = ContactService(emu.url, "KeapAK-wrong", options=ClientOptions(sleep=lambda s: pytest.fail("must not retry")))
    with pytest.raises(KeapAuthError) as caught:
        cs.load(1, ["Id"])
    assert caught.value.http_status == 401 and not caught.value.transient
    assert "Invalid Access Token" in str(caught.value)
    assert [c["http_status"] for c in emu.calls()] == [401]


def test_credentials_come_from_the_environment(emu, monkeypatch):
    monkeypatch.setenv("KEAP_URL", emu.url)
    monkeypatch.setenv("KEAP_API_KEY", KEY + "\n")  # pasted with its newline
    cs = ContactService()
    assert cs.url == emu.url and cs.auth == "api-key"
    assert isinstance(new_contact(cs), int)


def test_the_default_url_is_keaps(monkeypatch):
    monkeypatch.delenv("KEAP_URL", raising=False)
    assert ContactService(api_key=KEY).url == "https://api.infusionsoft.com/crm/xmlrpc/v1"


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"api_key": ""},
        {"api_key": "has space"},
        {"api_key": "bad\r\nX-Evil: 1"},
        {"access_token": "x\x00"},
        {"api_key": KEY, "access_token": KEY},
    ],
)
def test_missing_or_unusable_credentials_fail_at_construction_without_echoing_them(monkeypatch, kwargs):
    monkeypatch.delenv("KEAP_API_KEY", raising=False)
    with pytest.raises(KeapRequestError) as caught:
        ContactService("http://127.0.0.1:9/crm/xmlrpc/v1", **kwargs)
    for value in filter(None, kwargs.values()):
        assert value not in str(caught.value) and value not in repr(caught.value)


# ---------------------------------------------------------------- secrecy


def test_repr_shows_url_and_auth_kind_only(emu):
    cs = ContactService(emu.url, KEY)
    assert repr(cs) == f"ContactService(url='{emu.url}', auth='api-key')"
    masked = ContactService("https://user:pw@api.example.com/crm/xmlrpc/v1?access_token=abc&x=1", KEY)
    assert repr(masked) == (
        "ContactService(url='https://***@api.example.com/crm/xmlrpc/v1?access_token=***&x=***', auth='api-key')"
    )
    assert KEY not in repr(vars(cs)) and KEY not in repr(cs._transport)


def test_the_key_appears_in_no_exception_log_line_or_repr(emu, caplog):
    caplog.set_level(logging.DEBUG)
    cs = ContactService(emu.url, KEY, options=ClientOptions(max_attempts=2, sleep=lambda s: None))
    raised: list[KeapError] = []

    def attempt(fn):
        try:
            fn()
        except KeapError as err:
            raised.append(err)

    cid = new_contact(cs)
    attempt(lambda: cs.load(cid, ["_Nope"]))
    attempt(lambda: cs.update(424242, {"City": "x"}))
    attempt(lambda: cs.call("No.handler", KEY))
    emu.set_faults(FaultPlan(rate_fault=1.0, fault=(2, f"[InvalidKey]Invalid Key {KEY}")))
    attempt(lambda: cs.load(cid, ["Id"]))
    emu.set_faults(FaultPlan(rate_5xx=1.0, seed=1))
    attempt(lambda: cs.load(cid, ["Id"]))
    emu.set_faults(FaultPlan(rate_malformed=1.0))
    attempt(lambda: cs.load(cid, ["Id"]))
    emu.set_faults(None)
    attempt(lambda: ContactService(emu.url, KEY + "x").load(cid, ["Id"]))
    attempt(lambda: ContactService(emu.url, access_token=KEY + "y").load(cid, ["Id"]))

    assert len(raised) == 8
    for err in raised:
        assert KEY not in str(err) and KEY not in repr(err) and KEY not in str(err.args)
    assert "***" in raised[3].message  # the echoed key was scrubbed
    assert caplog.records, "DEBUG attempt logs expected"
    assert KEY not in caplog.text
    assert "ada@example.com" not in caplog.text  # params are never logged


def test_each_attempt_is_logged_at_debug_with_method_attempt_duration_outcome(cs, emu, caplog):
    caplog.set_level(logging.DEBUG, logger="keap_relay.keap")
    cid = new_contact(cs)
    emu.set_faults(FaultPlan(rate_fault=1.0, fault=(4, "[DatabaseError]Error returning results")))
    cs.options = dataclasses.replace(cs.options, sleep=lambda s: emu.set_faults(None))
    cs.load(cid, ["Id"])
    lines = [r.getMessage() for r in caplog.records if r.name == "keap_relay.keap"]
    assert lines[0].startswith("keap call ContactService.add attempt=1 duration_ms=")
    assert "outcome=KeapDatabaseError code=4 retry_in_s=" in lines[1] and "attempt=1" in lines[1]
    assert "ContactService.load attempt=2" in lines[2] and lines[2].endswith("outcome=ok")
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name == "keap_relay.keap")


# ---------------------------------------------------------------- connections and threads


def test_sequential_calls_reuse_one_keep_alive_connection(cs, monkeypatch):
    connects = []
    original = HTTPTransport._connect

    def counting(self, method):
        connects.append(method)
        return original(self, method)

    monkeypatch.setattr(HTTPTransport, "_connect", counting)
    cid = new_contact(cs)
    for _ in range(4):
        cs.load(cid, ["Id"])
    assert len(connects) == 1


def test_one_client_shared_by_threads(emu):
    cs = ContactService(emu.url, KEY, options=ClientOptions(pool_size=8))
    cid = new_contact(cs)
    tags = [100 + i for i in range(10)] + [200 + i for i in range(10)]
    failures: list[BaseException] = []

    def work(chunk):
        try:
            for tag in chunk:
                assert cs.add_to_group(cid, tag) is True
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(tags[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert emu.model.contact_tags(cid) == set(tags)
    assert len(cs._transport._idle) <= 8
    cs.close()
    assert cs._transport._idle == []
