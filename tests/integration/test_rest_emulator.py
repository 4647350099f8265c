"""The emulator's REST v2 surface over raw HTTP, its world additions and the per-surface fault plan."""

import json
import urllib.error
import urllib.request
import xmlrpc.client

import pytest

from keap_emulator import FaultPlan, WorldError, load_world
from keap_emulator.server import DEFAULT_API_KEY

KEY = DEFAULT_API_KEY


def call(emu, verb, path, body=None, key=KEY):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(
        emu.rest_url + path, data=data, method=verb, headers={"X-Keap-API-Key": key, "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def test_patch_replaces_the_arrays_it_names_and_the_mask_limits_it(emu):
    cid = emu.model.add(
        {
            "Email": "a@example.com",
            "EmailAddress2": "b@example.com",
            "Phone1": "1",
            "Phone1Ext": "2",
            "_LeadSource": "x",
            "FirstName": "Al",
        }
    )
    status, doc = call(
        emu,
        "PATCH",
        f"/rest/v2/contacts/{cid}",
        {
            "email_addresses": [{"email": "c@example.com", "field": "EMAIL1"}],
            "phone_numbers": [{"number": "3", "field": "PHONE1"}],
            "given_name": "Bo",
        },
    )
    assert status == 200 and doc["given_name"] == "Bo"
    record = emu.model.get_contact(cid)
    assert (record["Email"], record.get("EmailAddress2"), record["Phone1"], record.get("Phone1Ext")) == (
        "c@example.com",
        None,
        "3",
        None,
    )
    assert record["_LeadSource"] == "x"  # custom_fields not sent: untouched
    call(
        emu,
        "PATCH",
        f"/rest/v2/contacts/{cid}?update_mask=family_name",
        {"given_name": "Ignored", "family_name": "Young"},
    )
    record = emu.model.get_contact(cid)
    assert (record["FirstName"], record["LastName"]) == ("Bo", "Young")


def test_list_contacts_supports_a_trailing_wildcard_and_pages(emu):
    for i in range(3):
        emu.model.add({"Email": f"team{i}@example.com"})
    emu.model.add({"Email": "team_x@other.example"})
    status, doc = call(emu, "GET", "/rest/v2/contacts?filter=email%3D%3Dteam*&fields=id&page_size=2")
    assert status == 200 and doc == {"contacts": [{"id": "1"}, {"id": "2"}], "next_page_token": "2"}
    assert call(emu, "GET", "/rest/v2/contacts?filter=email%3D%3Dteam*&fields=id&page_size=2&page_token=2")[1] == {
        "contacts": [{"id": "3"}, {"id": "4"}]
    }
    assert call(emu, "GET", "/rest/v2/contacts?filter=email%3D%3Dteam_*&fields=id")[1] == {"contacts": [{"id": "4"}]}
    status, doc = call(emu, "GET", "/rest/v2/contacts?filter=given_name%3D%3Dx")
    assert status == 400 and doc["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    ("verb", "path", "body", "status", "word"),
    [
        ("POST", "/rest/v2/contacts", b"{not json", 400, "INVALID_ARGUMENT"),
        (
            "POST",
            "/rest/v2/contacts",
            {"addresses": [{"region_code": "US-CA", "field": "BILLING"}]},
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "POST",
            "/rest/v2/contacts?duplicate_option=Name",
            {"email_addresses": [{"email": "a@b.c", "field": "EMAIL1"}]},
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "POST",
            "/rest/v2/contacts",
            {"email_addresses": [{"email": "a@b.c", "field": "EMAIL9"}]},
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "POST",
            "/rest/v2/contacts",
            {"email_addresses": [{"email": "a@b.c", "field": "EMAIL1"}], "custom_fields": [{"id": "99", "content": 1}]},
            400,
            "INVALID_ARGUMENT",
        ),
        ("POST", "/rest/v2/tags/100/contacts:applyTags", {"contact_ids": [1]}, 400, "INVALID_ARGUMENT"),
        ("GET", "/rest/v2/nothing/here", None, 404, "NOT_FOUND"),
        ("DELETE", "/rest/v2/contacts/1", None, 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/rest/v2/emailAddresses/nobody%40example.com/status", None, 404, "NOT_FOUND"),
    ],
)
def test_refusals_are_keap_json_errors_and_change_nothing(emu, verb, path, body, status, word):
    got, doc = call(emu, verb, path, body)
    assert (got, doc["code"], doc["status"]) == (status, status, word)
    assert emu.model.contact_ids() == []
    assert [c["applied"] for c in emu.calls()] == [False]


def test_missing_key_is_the_proxys_401(emu):
    status, doc = call(emu, "GET", "/rest/v2/contacts", key="wrong")
    assert status == 401 and doc["message"] == "Invalid Access Token"


def test_opt_status_over_both_surfaces(emu):
    emu.model.add({"Email": "op@example.com"})
    proxy = xmlrpc.client.ServerProxy(emu.url, headers=[("X-Keap-API-Key", KEY)])
    assert proxy.APIEmailService.optOut("k", "nobody@example.com", "x") is False
    assert call(emu, "GET", "/rest/v2/emailAddresses/op%40example.com/status")[1]["status"] == "NON_MARKETABLE"
    status, doc = call(
        emu, "PATCH", "/rest/v2/emailAddresses/op%40example.com/status", {"reason": "form consent", "opted_in": True}
    )
    assert (status, doc["status"], doc["opted_in"]) == (200, "SINGLE_OPT_IN", True)
    assert proxy.APIEmailService.optOut("k", "OP@example.com", "unsubscribed") is True
    status, doc = call(
        emu, "PATCH", "/rest/v2/emailAddresses/op%40example.com/status", {"reason": "again", "opted_in": True}
    )
    assert status == 400 and "opted out" in doc["message"]
    snapshot = json.loads(urllib.request.urlopen(emu.base_url + "/_emulator/state", timeout=5).read())
    assert [(e["status"], e["via"]) for e in snapshot["email_status_events"]] == [
        ("SINGLE_OPT_IN", "rest.updateEmailAddressStatus"),
        ("ADMIN", "APIEmailService.optOut"),
    ]


def test_fault_plans_name_their_surfaces(emu):
    plan = FaultPlan.from_dict({"outages": [[0, 4e9]], "surfaces": ["xmlrpc"]})
    assert plan.to_dict()["surfaces"] == ["xmlrpc"]
    with pytest.raises(ValueError, match="surfaces"):
        FaultPlan(surfaces={"soap"})
    request = urllib.request.Request(
        emu.base_url + "/_emulator/faults", method="POST", data=json.dumps(plan.to_dict()).encode()
    )
    assert json.loads(urllib.request.urlopen(request, timeout=5).read())["surfaces"] == ["xmlrpc"]
    proxy = xmlrpc.client.ServerProxy(emu.url, headers=[("X-Keap-API-Key", KEY)])
    with pytest.raises(xmlrpc.client.ProtocolError):
        proxy.ContactService.add("k", {"Email": "x@example.com"})
    status, _ = call(
        emu, "POST", "/rest/v2/contacts", {"email_addresses": [{"email": "x@example.com", "field": "EMAIL1"}]}
    )
    assert status == 201
    assert [(c["surface"], c["injected"]) for c in emu.calls()] == [("xmlrpc", "outage"), ("rest", None)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda w: w["sequences"][0].update(campaign=0), "campaign must be a positive integer"),
        (lambda w: w["goals"][0].pop("call_name"), "needs an integration and a call_name"),
        (lambda w: w["goals"][0].update(actions=[{"type": "apply_tags", "tags": [9999]}]), "goal 41: unknown"),
        (lambda w: w["custom_fields"][1].update(id=1), "custom field ids must be unique"),
    ],
)
def test_world_checks_its_new_parts(change, message):
    world = json.loads(json.dumps(load_world().source))
    change(world)
    with pytest.raises(WorldError, match=message):
        load_world(world)


def test_the_command_line_can_limit_faults_to_one_surface():
    from keap_emulator.cli import _faults_from, build_parser

    args = build_parser().parse_args(["serve", "--rate-5xx", "0.5", "--fault-surfaces", "xmlrpc"])
    assert _faults_from(args).surfaces == {"xmlrpc"}
    assert _faults_from(build_parser().parse_args(["serve"])).surfaces is None
