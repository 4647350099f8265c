"""Contract tests with Keap's own generated REST v2 SDK (keap-core-v2-sdk): the SDK's client drives the
emulator's REST paths, and every request body the project's REST client sends validates against the SDK's models."""

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from keap_emulator.server import DEFAULT_API_KEY

sdk = pytest.importorskip("keap_core_v2_client", reason="keap-core-v2-sdk (the dev extra) is not installed")

from keap_core_v2_client import ApiClient, Configuration  # noqa: E402
from keap_core_v2_client.api.automation_api import AutomationApi  # noqa: E402
from keap_core_v2_client.api.campaign_api import CampaignApi  # noqa: E402
from keap_core_v2_client.api.contact_api import ContactApi  # noqa: E402
from keap_core_v2_client.api.email_address_api import EmailAddressApi  # noqa: E402
from keap_core_v2_client.api.tags_api import TagsApi  # noqa: E402
from keap_core_v2_client.exceptions import BadRequestException, NotFoundException  # noqa: E402
from keap_core_v2_client.models import (  # noqa: E402
    AchieveGoalRequest,
    AddContactsToSequenceRequest,
    ApplyRemoveTagRequest,
    CreateUpdateContactRequest,
    Error,
    RemoveContactsFromSequenceRequest,
    UpdateEmailAddress,
)
from pydantic import BaseModel  # noqa: E402

from keap_relay.keap.rest import RestClient  # noqa: E402

KEY = DEFAULT_API_KEY


@pytest.fixture
def api(emu):
    with ApiClient(Configuration(host=emu.rest_url, access_token=KEY)) as client:
        yield client


# ---------------------------------------------------------------- the SDK drives the emulator


def test_sdk_creates_finds_updates_and_reads_a_contact(emu, api):
    contacts = ContactApi(api)
    body = CreateUpdateContactRequest.from_dict(
        {
            "given_name": "Ada",
            "family_name": "Lovelace",
            "email_addresses": [{"email": "ada@example.com", "field": "EMAIL1"}],
            "phone_numbers": [{"number": "+44 20 7946 0000", "field": "PHONE1"}],
            "addresses": [{"line1": "1 Main St", "locality": "London", "country_code": "GBR", "field": "BILLING"}],
            "custom_fields": [{"id": "1", "content": "webinar"}],
        }
    )
    created = contacts.create_contact(body, duplicate_option="Email")
    again = contacts.create_contact(body, duplicate_option="Email")
    assert created.id == again.id == "1" and created.given_name == "Ada"
    assert created.addresses[0].country_code == "GBR" and created.custom_fields[0].content == "webinar"

    found = contacts.list_contacts(filter="email==ada@example.com", fields=["id", "given_name"])
    assert [(c.id, c.given_name) for c in found.contacts] == [("1", "Ada")]

    contacts.update_contact("1", CreateUpdateContactRequest(job_title="Countess"), update_mask=["job_title"])
    assert emu.model.get_contact(1)["JobTitle"] == "Countess"
    assert emu.model.get_contact(1)["FirstName"] == "Ada"  # outside the mask: kept

    model = contacts.retrieve_contact_model()
    assert {f.field_name: f.id for f in model.custom_fields}["LeadSource"] == "1"


def test_sdk_tags_sequences_goals_and_email_status(emu, api):
    cid = emu.model.add({"Email": "bo@example.com"})
    tags = TagsApi(api)
    applied = tags.apply_tags("100", ApplyRemoveTagRequest(contact_ids=[str(cid)]))
    assert applied.results == {str(cid): "SUCCESS"}
    assert tags.remove_tags("100", ApplyRemoveTagRequest(contact_ids=[str(cid)])) is None
    assert [e["op"] for e in emu.model.tag_applications(cid)] == ["apply", "remove"]

    campaigns = CampaignApi(api)
    added = campaigns.add_contacts_to_campaign_sequence("5", "11", AddContactsToSequenceRequest(contact_ids=[str(cid)]))
    assert added.add_to_sequence_results == {str(cid): "SUCCESS"}
    removed = campaigns.remove_contacts_from_campaign_sequence(
        "5", "11", RemoveContactsFromSequenceRequest(contact_ids=[str(cid)])
    )
    assert removed.remove_from_sequence_results == {str(cid): "SUCCESS"}
    assert [(e["sequence_id"], e["state"]) for e in emu.model.enrolments(cid)] == [(11, "removed")]

    goal = AutomationApi(api).achieve_goal(
        AchieveGoalRequest(contact_id=cid, integration="keaprelay", call_name="newcustomer")
    )
    assert [(r.success, r.goal_id) for r in goal.results] == [(True, 41)]

    status = EmailAddressApi(api).update_email_address_opt_status(
        "bo@example.com", UpdateEmailAddress(reason="left", opted_in=False)
    )
    assert (status.email, status.opted_in, status.status) == ("bo@example.com", False, "ADMIN")
    assert ContactApi(api).get_contact(str(cid), fields=["tag_ids"]).tag_ids == ["201"]


def test_sdk_reads_the_emulators_json_errors(api):
    with pytest.raises(NotFoundException) as info:
        ContactApi(api).get_contact("999")
    error = Error.from_json(info.value.body)
    assert (error.code, error.status) == (404, "NOT_FOUND") and "999" in error.message
    with pytest.raises(BadRequestException) as info:
        ContactApi(api).create_contact(CreateUpdateContactRequest(given_name="no email"))
    assert Error.from_json(info.value.body).status == "INVALID_ARGUMENT"


# ---------------------------------------------------------------- the project's bodies against the SDK's models

# (verb, path under the base) -> the SDK model of that operation's request body.
REQUEST_MODELS: list[tuple[str, re.Pattern[str], type[BaseModel]]] = [
    ("POST", re.compile(r"^/rest/v2/contacts$"), CreateUpdateContactRequest),
    ("PATCH", re.compile(r"^/rest/v2/contacts/\d+$"), CreateUpdateContactRequest),
    ("POST", re.compile(r"^/rest/v2/tags/\d+/contacts:(applyTags|removeTags)$"), ApplyRemoveTagRequest),
    ("POST", re.compile(r"^/rest/v2/campaigns/\d+/sequences/\d+:addContacts$"), AddContactsToSequenceRequest),
    ("POST", re.compile(r"^/rest/v2/campaigns/\d+/sequences/\d+:removeContacts$"), RemoveContactsFromSequenceRequest),
    ("POST", re.compile(r"^/rest/v2/automations/goals/achieve$"), AchieveGoalRequest),
    ("PATCH", re.compile(r"^/rest/v2/emailAddresses/[^/]+/status$"), UpdateEmailAddress),
]


def unknown_properties(value, where="body"):
    """Paths of properties the SDK model did not recognise (pydantic keeps them in additional_properties)."""
    found = []
    if isinstance(value, BaseModel):
        found += [f"{where}.{k}" for k in getattr(value, "additional_properties", {}) or {}]
        for name in type(value).model_fields:
            if name != "additional_properties":
                found += unknown_properties(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += unknown_properties(item, f"{where}[{i}]")
    return found


def test_every_request_body_the_rest_client_sends_validates_against_the_sdk_models(emu):
    client = RestClient(emu.rest_url, KEY)
    sent = []
    original = client._transport.request

    def recording(verb, body=None, **kwargs):
        sent.append((verb, kwargs.get("path"), body))
        return original(verb, body, **kwargs)

    client._transport.request = recording

    cid = client.upsert_contact(
        {
            "Email": "ada@example.com",
            "EmailAddress2": "ada@work.example",
            "FirstName": "A" * 50,
            "LastName": "Lovelace",
            "Nickname": "Ada",
            "Title": "Countess",
            "JobTitle": "Analyst",
            "Website": "https://ada.example",
            "Phone1": "+44 20 7946 0000",
            "Phone1Ext": "7",
            "Phone2": "1",
            "Phone2Type": "Mobile",
            "Company": "AE Ltd",
            "StreetAddress1": "1 Main St",
            "StreetAddress2": "Flat 2",
            "City": "London",
            "State": "ENG",
            "PostalCode": "N1 9GU",
            "Country": "GB",
            "Address2Street1": "9 Dock Rd",
            "Country2": "US",
            "State2": "CA",
            "Address3Street1": "x",
            "Birthday": "1815-12-10",
            "OwnerID": 1,
            "_LeadSource": "webinar",
            "_OrderTotal": 49.5,
        },
        "EmailAndNameAndCompany",
    )
    client.update_contact(
        cid,
        {
            "_UnsubscribeReason": "moved",
            "Phone1": "",
            "EmailAddress3": "a3@example.com",
            "City": "Leeds",
            "FirstName": "Ada",
        },
    )
    assert client.find_contact_ids("ada@example.com") == [cid]
    client.apply_tag(100, [cid])
    client.remove_tag(100, [cid])
    client.add_to_sequence(5, 11, [cid])
    client.remove_from_sequence(5, 11, [cid])
    client.achieve_goal(cid, "keaprelay", "newcustomer")
    client.opt_out("ada@example.com", "unsubscribed via mailchimp")

    used = set()
    for verb, target, payload in sent:
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        if "update_mask" in query:
            masked = set(query["update_mask"][0].split(","))
            assert masked <= set(CreateUpdateContactRequest.model_fields), masked
        if "duplicate_option" in query:
            assert query["duplicate_option"] == ["EmailAndNameAndCompany"]
        if payload is None:
            assert verb == "GET", target
            continue
        body = json.loads(payload)
        model = next((m for v, pattern, m in REQUEST_MODELS if v == verb and pattern.match(parts.path)), None)
        assert model is not None, f"no SDK model for {verb} {parts.path}"
        instance = model.from_dict(body)  # pydantic raises on a wrong type, enum value, length or a missing field
        assert unknown_properties(instance) == [], (verb, parts.path)
        assert instance.to_dict() == body  # everything sent was understood, nothing lost
        used.add((verb, model.__name__))
    # Every body-carrying operation of the client was exercised.
    assert used == {(v, m.__name__) for v, _, m in REQUEST_MODELS}
