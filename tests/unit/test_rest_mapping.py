"""REST v2 pieces without a server: the v2 contact mapping, the base URL, credentials, error text, outcomes."""

import pytest

from keap_relay.keap.errors import KeapRateLimited, KeapRequestError, error_from_http
from keap_relay.keap.rest import RestClient, outcome_error, rest_base_url
from keap_relay.keap.throttle import RateInfo
from keap_relay.keap.v2_contact import country_code, maps_to_v2, merge_items, to_v2_contact

IDS = {"_LeadSource": "7", "_OrderTotal": "9"}


def test_every_mapped_field_lands_in_its_v2_place():
    body = to_v2_contact(
        {
            "FirstName": "Ada",
            "LastName": "Lovelace",
            "Email": "ada@example.com",
            "EmailAddress3": "a3@example.com",
            "Phone1": "+44 20 7946 0000",
            "Phone1Ext": "12",
            "Phone2Type": "Mobile",
            "Company": "Analytical Engines",
            "StreetAddress1": "1 Main St",
            "StreetAddress2": "Flat 2",
            "City": "London",
            "PostalCode": "N1 9GU",
            "Country": "GB",
            "State": "ENG",
            "Address2Street1": "9 Dock Rd",
            "Country2": "us",
            "State2": "CA",
            "_LeadSource": "webinar",
            "_OrderTotal": 49.5,
            "OwnerID": 3,
            "JobTitle": "Countess",
        },
        IDS,
    )
    assert body == {
        "given_name": "Ada",
        "family_name": "Lovelace",
        "email_addresses": [
            {"email": "ada@example.com", "field": "EMAIL1"},
            {"email": "a3@example.com", "field": "EMAIL3"},
        ],
        "phone_numbers": [
            {"number": "+44 20 7946 0000", "extension": "12", "field": "PHONE1"},
            {"type": "Mobile", "field": "PHONE2"},
        ],
        "company": {"company_name": "Analytical Engines"},
        "addresses": [
            {
                "line1": "1 Main St",
                "line2": "Flat 2",
                "locality": "London",
                "postal_code": "N1 9GU",
                "country_code": "GBR",
                "region_code": "GB-ENG",
                "field": "BILLING",
            },
            {"line1": "9 Dock Rd", "country_code": "USA", "region_code": "US-CA", "field": "SHIPPING"},
        ],
        "custom_fields": [{"id": "7", "content": "webinar"}, {"id": "9", "content": 49.5}],
        "owner_id": "3",
        "job_title": "Countess",
    }


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("GB", "GBR"),
        ("gb", "GBR"),
        ("UK", "GBR"),
        ("GBR", "GBR"),
        (" de ", "DEU"),
        ("United Kingdom", None),
        ("", None),
    ],
)
def test_countries_become_iso_alpha3(raw, code):
    assert country_code(raw) == code


def test_a_region_needs_a_codable_country_and_a_code():
    def address(**fields):
        return to_v2_contact(fields, {})["addresses"]

    assert address(City="Paris", Country="Frankreich", State="IDF") == [{"locality": "Paris", "field": "BILLING"}]
    assert address(Country="US", State="us-ny") == [{"country_code": "USA", "region_code": "US-NY", "field": "BILLING"}]
    assert address(Country="US", State="New York") == [{"country_code": "USA", "field": "BILLING"}]
    assert "addresses" not in to_v2_contact({"FirstName": "x"}, {})


def test_long_names_are_cut_to_the_v2_limits():
    body = to_v2_contact({"FirstName": "A" * 60, "AssistantName": "B" * 30, "Nickname": "C" * 50}, {})
    assert body == {"given_name": "A" * 40, "assistant_name": "B" * 20, "preferred_name": "C" * 50}


def test_fields_without_a_v2_counterpart_are_refused_by_name():
    for data, ids, name in (({"ContactNotes": "x"}, {}, "ContactNotes"), ({"_Missing": "x"}, IDS, "_Missing")):
        with pytest.raises(KeapRequestError, match=name) as info:
            to_v2_contact(data, ids)
        assert info.value.error_class == "KeapUnknownField" and not info.value.transient
    assert maps_to_v2("Email") and maps_to_v2("_Anything") and not maps_to_v2("Password")


def test_empty_values_and_emptied_arrays_are_left_out_unless_kept_for_a_merge():
    assert to_v2_contact({"Email": "a@x.io", "Phone1": "", "FirstName": ""}, {}) == {
        "email_addresses": [{"email": "a@x.io", "field": "EMAIL1"}],
        "given_name": "",
    }
    kept = to_v2_contact({"Phone1": "", "_LeadSource": ""}, IDS, keep_empty=True)
    assert kept == {"phone_numbers": [{"number": "", "field": "PHONE1"}], "custom_fields": [{"id": "7", "content": ""}]}


def test_merge_lays_sent_values_over_stored_items_and_removes_emptied_ones():
    stored = [
        {"email": "a@x.io", "field": "EMAIL1", "email_opt_status": "SINGLE_OPT_IN", "is_opt_in": True},
        {"email": "b@x.io", "field": "EMAIL2"},
    ]
    sent = [{"email": "c@x.io", "field": "EMAIL3"}, {"email": "", "field": "EMAIL2"}]
    assert merge_items("email_addresses", stored, sent) == [
        {"email": "a@x.io", "field": "EMAIL1"},  # read-only keys are not sent back
        {"email": "c@x.io", "field": "EMAIL3"},
    ]
    phones = merge_items(
        "phone_numbers", [{"number": "1", "extension": "9", "field": "PHONE1"}], [{"number": "2", "field": "PHONE1"}]
    )
    assert phones == [{"number": "2", "extension": "9", "field": "PHONE1"}]
    custom = merge_items(
        "custom_fields",
        [{"id": "7", "content": "w"}, {"id": "9", "content": 3}],
        [{"id": "9", "content": ""}, {"id": "4", "content": "bye"}],
    )
    assert custom == [{"id": "7", "content": "w"}, {"id": "4", "content": "bye"}]


# KEAP_URL -> the REST base on its host.
REST_BASES = {
    None: "https://api.keap.com/crm",
    "https://api.infusionsoft.com/crm/xmlrpc/v1": "https://api.infusionsoft.com/crm",
    "http://127.0.0.1:8765/crm/xmlrpc/v1/": "http://127.0.0.1:8765/crm",
    "http://127.0.0.1:8765/crm/xmlrpc": "http://127.0.0.1:8765/crm",
    "https://app.infusionsoft.com/api/xmlrpc?access_token=t": "https://app.infusionsoft.com/crm",
    "http://127.0.0.1:8765/crm": "http://127.0.0.1:8765/crm",
    "http://127.0.0.1:8765": "http://127.0.0.1:8765/crm",
}


@pytest.mark.parametrize(("keap_url", "base"), REST_BASES.items())
def test_keap_url_locates_the_rest_base(keap_url, base):
    assert rest_base_url(keap_url) == base


def test_client_base_url_comes_from_keap_rest_url_else_keap_url(monkeypatch):
    monkeypatch.setenv("KEAP_URL", "http://127.0.0.1:9/crm/xmlrpc/v1")
    monkeypatch.delenv("KEAP_REST_URL", raising=False)
    assert RestClient(api_key="k").base_url == "http://127.0.0.1:9/crm"
    monkeypatch.setenv("KEAP_REST_URL", "http://127.0.0.1:7/crm/")
    assert RestClient(api_key="k").base_url == "http://127.0.0.1:7/crm"


def test_credentials_never_show_in_repr_and_bad_ones_are_refused_without_echo():
    client = RestClient("http://127.0.0.1:9/crm", "KeapAK-secret-123")
    assert "secret" not in repr(client) and client.auth == "api-key"
    assert RestClient("http://127.0.0.1:9/crm", access_token="tok-abc").auth == "bearer"
    with pytest.raises(KeapRequestError) as info:
        RestClient("http://127.0.0.1:9/crm", "bad key\n with space")
    assert "bad key" not in str(info.value)
    with pytest.raises(KeapRequestError):
        RestClient("http://127.0.0.1:9/crm", "k", access_token="t")


def test_rest_error_text_reads_keaps_json_error_body_else_the_page():
    err = error_from_http(
        404, b'{"code":404,"message":"Contact 9 not found","status":"NOT_FOUND"}', rest=True, method="m"
    )
    assert str(err) == "m [404]: HTTP 404 NOT_FOUND: Contact 9 not found"
    throttled = b'{"code":"429","message":"Quota Exceeded","status":"Request Throttled"}'
    err = error_from_http(429, throttled, rest=True, rate_info=RateInfo(retry_after_header=3.0, observed_at=5.0))
    assert isinstance(err, KeapRateLimited) and err.retry_after == 3.0
    assert err.message == "HTTP 429 Request Throttled: Quota Exceeded"
    page = error_from_http(502, b"<html><h1>502 Bad Gateway</h1></html>", rest=True)
    assert page.message == "HTTP 502 <html><h1>502 Bad Gateway</h1></html>"
    assert error_from_http(400, b'{"message": "bad filter"}', rest=True).message == "HTTP 400 bad filter"


def test_per_contact_outcomes_that_are_done_raise_nothing_and_failures_name_the_contact():
    assert outcome_error("rest.applyTags", 5, "SUCCESS") is None
    assert outcome_error("rest.applyTags", 5, None) is None
    assert outcome_error("rest.addContactsToSequence", 5, "ALREADY_IN_SEQUENCE") is None
    assert str(outcome_error("rest.applyTags", 5, "FAILED")) == "rest.applyTags: contact 5: FAILED"
