"""The REST v2 client against the emulator over HTTP: calls, field mapping read back over XML-RPC, every error
class, retries, pacing, and an XML-RPC-only outage that REST does not see."""

import json
import logging

import pytest

from keap_emulator import FaultPlan, QuotaPlan
from keap_relay.keap.client import ContactService
from keap_relay.keap.errors import (
    KeapAuthError,
    KeapConnectionDropped,
    KeapHTTPError,
    KeapMalformedResponse,
    KeapRateLimited,
    KeapRequestError,
)
from keap_relay.keap.rest import RestClient
from keap_relay.keap.session import ClientOptions
from keap_relay.keap.throttle import RateLimiter

KEY = "KeapAK-rest-test-key-0123456789"


@pytest.fixture
def rest(emu, sleeps):
    return RestClient(emu.rest_url, KEY, options=ClientOptions(sleep=sleeps, rand=lambda: 0.5, max_attempts=3))


@pytest.fixture
def xmlrpc(emu):
    return ContactService(emu.url, KEY)


def rest_calls(emu):
    return [c["method"] for c in emu.calls() if c["surface"] == "rest"]


# ---------------------------------------------------------------- contacts and field mapping


def test_upsert_creates_then_updates_the_same_contact_by_dup_check(emu, rest, xmlrpc):
    first = rest.upsert_contact({"Email": "ada@example.com", "FirstName": "Ada"}, "Email")
    again = rest.upsert_contact({"Email": "ADA@example.com", "LastName": "Lovelace"}, "Email")
    other = rest.upsert_contact({"Email": "ada@example.com", "FirstName": "Augusta"}, "EmailAndName")
    assert first == again != other
    assert xmlrpc.load(first, ["FirstName", "LastName"]) == {"FirstName": "Ada", "LastName": "Lovelace"}
    assert [c["http_status"] for c in emu.calls() if c["method"] == "rest.createContact"] == [201, 200, 201]


def test_v2_fields_read_back_as_contactservice_fields(rest, xmlrpc):
    sent = {
        "Email": "ada@example.com",
        "EmailAddress2": "ada@work.example",
        "FirstName": "Ada",
        "LastName": "Lovelace",
        "Phone1": "+44 20 7946 0000",
        "Phone1Ext": "7",
        "Company": "Analytical Engines",
        "StreetAddress1": "1 Main St",
        "City": "London",
        "PostalCode": "N1 9GU",
        "Country": "GB",
        "State": "ENG",
        "_LeadSource": "webinar",
        "_OrderTotal": 49.5,
    }
    cid = rest.upsert_contact(sent, "Email")
    # v2 codes countries in alpha-3 and regions in ISO 3166-2; XML-RPC reads back what v2 stored.
    assert xmlrpc.load(cid, list(sent)) == {**sent, "Country": "GBR", "State": "GB-ENG"}


def test_a_contact_created_over_xmlrpc_is_found_and_tagged_over_rest(rest, xmlrpc):
    cid = xmlrpc.add_with_dup_check({"Email": "bo@example.com", "EmailAddress3": "bo@old.example"}, "Email")
    assert rest.find_contact_ids("bo@old.example") == [cid]
    assert rest.apply_tag(100, [cid]) == {cid: "SUCCESS"}
    assert xmlrpc.load(cid, ["Groups"]) == {"Groups": "100"}


def test_update_changes_only_the_given_fields_and_keeps_other_items(emu, rest, xmlrpc):
    cid = xmlrpc.add(
        {
            "Email": "cy@example.com",
            "EmailAddress2": "cy@two.example",
            "Phone1": "1",
            "Phone1Ext": "9",
            "_LeadSource": "form",
            "_OrderId": "A1",
            "FirstName": "Cy",
        }
    )
    assert (
        rest.update_contact(
            cid,
            {
                "_UnsubscribeReason": "moved",
                "_OrderId": "",
                "Phone1": "2",
                "EmailAddress3": "cy@three.example",
                "LastName": "Young",
            },
        )
        == cid
    )
    assert xmlrpc.load(
        cid,
        [
            "Email",
            "EmailAddress2",
            "EmailAddress3",
            "Phone1",
            "Phone1Ext",
            "FirstName",
            "LastName",
            "_LeadSource",
            "_OrderId",
            "_UnsubscribeReason",
        ],
    ) == {
        "Email": "cy@example.com",
        "EmailAddress2": "cy@two.example",
        "EmailAddress3": "cy@three.example",
        "Phone1": "2",
        "Phone1Ext": "9",
        "FirstName": "Cy",
        "LastName": "Young",
        "_LeadSource": "form",
        "_UnsubscribeReason": "moved",
    }
    # One read of the arrays it changes, then one PATCH naming exactly what it sends.
    assert rest_calls(emu)[-2:] == ["rest.getContact", "rest.updateContact"]
    patch = [c for c in emu.calls() if c["method"] == "rest.updateContact"]
    assert len(patch) == 1


def test_update_of_plain_properties_does_not_read_first(emu, rest, xmlrpc):
    cid = xmlrpc.add({"Email": "di@example.com"})
    rest.update_contact(cid, {"FirstName": "Di", "Company": "Acme"})
    assert rest_calls(emu) == ["rest.updateContact"]
    assert xmlrpc.load(cid, ["FirstName", "Company"]) == {"FirstName": "Di", "Company": "Acme"}


def test_find_pages_through_every_match_and_refuses_filter_syntax(emu, xmlrpc, sleeps):
    ids = [xmlrpc.add({"Email": "same@example.com"}) for _ in range(3)] + [xmlrpc.add({"Email": "x@example.com"})]
    client = RestClient(emu.rest_url, KEY, options=ClientOptions(page_size=2, sleep=sleeps))
    assert client.find_contact_ids("Same@Example.com") == ids[:3]
    assert rest_calls(emu) == ["rest.listContacts", "rest.listContacts"]
    assert client.find_contact_ids("nobody@example.com") == []
    before = len(emu.calls())
    for bad in ("a*@example.com", "a@example.com;given_name==x", "a,b@example.com", " "):
        with pytest.raises(KeapRequestError):
            client.find_contact_ids(bad)
    assert len(emu.calls()) == before


def test_unknown_fields_are_refused_before_any_write(emu, rest, raises_named):
    with raises_named("KeapUnknownField", match="_NoSuchField"):
        rest.upsert_contact({"Email": "e@example.com", "_NoSuchField": "x"}, "Email")
    # The model was read (and read again, in case the field is new); nothing was written.
    assert rest_calls(emu) == ["rest.retrieveContactModel", "rest.retrieveContactModel"]
    with raises_named("KeapUnknownField", match="Password"):
        rest.upsert_contact({"Email": "e@example.com", "Password": "x"}, "Email")
    assert emu.model.contact_ids() == []


# ---------------------------------------------------------------- many contacts per call


def test_tags_and_sequences_take_many_contacts_in_one_call(emu, rest, xmlrpc):
    a, b = xmlrpc.add({"Email": "a@example.com"}), xmlrpc.add({"Email": "b@example.com"})
    assert rest.apply_tag(101, [a, b, a]) == {a: "SUCCESS", b: "SUCCESS"}
    assert rest.add_to_sequence(5, 11, [a, b]) == {a: "SUCCESS", b: "SUCCESS"}
    assert rest.add_to_sequence(5, 11, [a]) == {a: "ALREADY_IN_SEQUENCE"}
    assert rest.remove_tag(101, [a, b]) == {a: "SUCCESS", b: "SUCCESS"}
    assert rest.remove_from_sequence(5, 11, [b]) == {b: "SUCCESS"}
    assert rest_calls(emu) == [
        "rest.applyTags",
        "rest.addContactsToSequence",
        "rest.addContactsToSequence",
        "rest.removeTags",
        "rest.removeContactsFromSequence",
    ]
    assert {(e["contact_id"], e["state"]) for e in emu.model.enrolments()} == {(a, "active"), (b, "removed")}
    assert [(e["tag_id"], e["op"], e["via"]) for e in emu.model.tag_applications(a)] == [
        (101, "apply", "rest.applyTags"),
        (101, "remove", "rest.removeTags"),
    ]
    assert rest.apply_tag(101, [a, 999]) == {a: "SUCCESS", 999: "CONTACT_DOES_NOT_EXIST"}


def test_a_sequence_outside_its_campaign_or_an_unknown_tag_is_not_found(rest, xmlrpc, raises_named):
    cid = xmlrpc.add({"Email": "a@example.com"})
    with raises_named("KeapNotFound", match="sequence 13 of campaign 5"):
        rest.add_to_sequence(5, 13, [cid])
    with raises_named("KeapNotFound") as info:
        rest.apply_tag(4242, [cid])
    assert info.value.http_status == 404 and not info.value.transient


def test_goals_and_opt_out_land_in_the_same_model(emu, rest, xmlrpc, raises_named):
    cid = xmlrpc.add({"Email": "gil@example.com"})
    assert rest.achieve_goal(cid, "keaprelay", "newcustomer") == [
        {"success": True, "message": "goal 41 achieved", "automation_id": 5, "goal_id": 41}
    ]
    assert rest.achieve_goal(cid, "keaprelay", "nothing")[0]["success"] is False
    assert xmlrpc.load(cid, ["Groups"]) == {"Groups": "201"}
    status = rest.opt_out("GIL@example.com", "unsubscribed")
    assert (status["status"], status["opted_in"]) == ("ADMIN", False)
    assert rest.email_status("gil@example.com")["status"] == "ADMIN"
    assert [(e["email"], e["via"]) for e in emu.model.email_status_events()] == [
        ("gil@example.com", "rest.updateEmailAddressStatus")
    ]
    with raises_named("KeapNotFound"):
        rest.opt_out("nobody@example.com", "x")


# ---------------------------------------------------------------- errors


def test_wrong_key_is_an_auth_error_that_never_echoes_the_key(emu):
    client = RestClient(emu.rest_url, "KeapAK-wrong-key-987654")
    with pytest.raises(KeapAuthError) as info:
        client.find_contact_ids("a@example.com")
    assert info.value.http_status == 401 and not info.value.transient
    assert "wrong-key" not in str(info.value) + repr(info.value)
    assert RestClient(emu.rest_url, access_token=KEY).find_contact_ids("a@example.com") == []


def test_keap_json_errors_become_bad_request_not_found_and_http_error(rest, raises_named):
    with raises_named("KeapBadRequest") as info:
        rest.request("POST", "/contacts", "rest.createContact", body={"given_name": "No Email"})
    assert "INVALID_ARGUMENT: Contact must contain at least one item" in str(info.value)
    with raises_named("KeapNotFound", match="NOT_FOUND: Contact 77 not found"):
        rest.get_contact(77)
    with pytest.raises(KeapHTTPError) as info:
        rest.request("DELETE", "/contacts/1", "rest.deleteContact")
    assert info.value.http_status == 405 and type(info.value) is KeapHTTPError


def test_a_body_that_is_not_json_is_malformed_and_retried_for_safe_calls(emu, rest, sleeps):
    emu.set_faults(FaultPlan(rate_malformed=1.0, methods={"rest.listContacts"}))
    with pytest.raises(KeapMalformedResponse):
        rest.find_contact_ids("a@example.com")
    assert len(rest_calls(emu)) == 3 and len(sleeps) == 2


def test_server_errors_are_retried_with_backoff_until_they_pass(emu, xmlrpc):
    cid = xmlrpc.add({"Email": "a@example.com"})
    emu.set_faults(FaultPlan(rate_5xx=1.0, seed=3))
    sleeps_then_heal = []

    def heal(seconds):
        sleeps_then_heal.append(seconds)
        if len(sleeps_then_heal) == 2:
            emu.set_faults(None)

    client = RestClient(
        emu.rest_url, KEY, options=ClientOptions(sleep=heal, rand=lambda: 1.0, backoff_base=0.25, max_attempts=4)
    )
    assert client.apply_tag(100, [cid]) == {cid: "SUCCESS"}
    assert sleeps_then_heal == [0.25, 0.5]  # full jitter drawn at its top: base * 2**(attempt-1)
    assert [c["injected"] for c in emu.calls() if c["surface"] == "rest"] == ["5xx", "5xx", None]


def test_server_errors_that_persist_end_as_server_errors(emu, rest, xmlrpc, raises_named):
    cid = xmlrpc.add({"Email": "a@example.com"})
    emu.set_faults(FaultPlan(rate_5xx=1.0, seed=3))
    with raises_named("KeapServerError") as info:
        rest.apply_tag(100, [cid])
    assert info.value.transient and info.value.http_status in (502, 503)
    assert len(rest_calls(emu)) == 3


def test_a_goal_is_never_repeated_once_it_may_have_been_achieved(emu, rest, xmlrpc):
    cid = xmlrpc.add({"Email": "a@example.com"})
    emu.set_faults(FaultPlan(rate_drop=1.0, drop_after_apply=True, methods={"rest.achieveGoal"}))
    with pytest.raises(KeapConnectionDropped) as info:
        rest.achieve_goal(cid, "keaprelay", "newcustomer")
    assert info.value.transient and info.value.maybe_delivered
    assert rest_calls(emu) == ["rest.achieveGoal"]
    assert len(emu.model.goal_runs(cid)) == 1


def test_a_dropped_answer_to_a_safe_call_is_retried(emu, xmlrpc):
    cid = xmlrpc.add({"Email": "a@example.com"})
    emu.set_faults(FaultPlan(rate_drop=1.0, drop_after_apply=True, methods={"rest.applyTags"}))

    def heal(seconds):
        emu.set_faults(None)

    client = RestClient(emu.rest_url, KEY, options=ClientOptions(sleep=heal, rand=lambda: 0.0))
    assert client.apply_tag(100, [cid]) == {cid: "SUCCESS"}
    assert rest_calls(emu) == ["rest.applyTags", "rest.applyTags"]


def test_short_429_is_waited_out_and_long_one_raised_with_rate_info(emu, rest, sleeps):
    emu.set_faults(FaultPlan(rate_429=1.0, methods={"rest.listContacts"}))

    def heal(seconds):
        sleeps.append(seconds)
        emu.set_faults(None)

    client = RestClient(emu.rest_url, KEY, options=ClientOptions(sleep=heal, max_retry_wait=2.0))
    assert client.find_contact_ids("a@example.com") == []
    assert sleeps == [1.0]  # the emulator's Retry-After
    emu.set_quota(QuotaPlan(per_day=1))
    client.find_contact_ids("a@example.com")
    with pytest.raises(KeapRateLimited) as info:
        client.find_contact_ids("a@example.com")
    assert info.value.retry_after > 2.0 and info.value.rate_info.quota_available == 0
    assert client.last_rate_info.quota_limit == 1


def test_every_call_waits_for_the_rate_limiter(emu, xmlrpc):
    cid = xmlrpc.add({"Email": "a@example.com"})

    class Counting(RateLimiter):
        def __init__(self):
            super().__init__(sleep=lambda s: None)
            self.booked = 0

        def reserve(self, now):
            self.booked += 1
            return 0.0

    limiter = Counting()
    client = RestClient(emu.rest_url, KEY, options=ClientOptions(rate_limiter=limiter))
    client.apply_tag(100, [cid])
    client.upsert_contact({"Email": "b@example.com", "_LeadSource": "x"}, "Email")
    assert limiter.booked == 3  # applyTags, the contact model, the upsert


def test_an_xmlrpc_only_outage_leaves_rest_working(emu, rest, xmlrpc, raises_named):
    cid = xmlrpc.add({"Email": "a@example.com"})
    emu.set_faults(FaultPlan(outages=[(0, 4e9)], surfaces={"xmlrpc"}))
    client = ContactService(emu.url, KEY, options=ClientOptions(max_attempts=1))
    with raises_named("KeapServiceUnavailable"):
        client.add_to_group(cid, 100)
    assert rest.apply_tag(100, [cid]) == {cid: "SUCCESS"}
    emu.set_faults(FaultPlan(outages=[(0, 4e9)], surfaces={"rest"}))
    with raises_named("KeapServiceUnavailable") as info:
        RestClient(emu.rest_url, KEY, options=ClientOptions(max_attempts=1)).apply_tag(101, [cid])
    assert "UNAVAILABLE" in str(info.value)
    assert client.add_to_group(cid, 101) is True


def test_debug_logs_name_the_operation_and_never_the_key(emu, rest, caplog):
    caplog.set_level(logging.DEBUG, logger="keap_relay.keap")
    rest.find_contact_ids("a@example.com")
    assert "keap call rest.listContacts attempt=1" in caplog.text
    assert KEY not in caplog.text and KEY not in json.dumps(emu.calls())
