"""Form sources: each vendor's sample body, signed the vendor's way, becomes the right form_submission."""

import functools
import json
from urllib.parse import urlencode

import pytest
import sources_support
from sources_support import only_event

from keap_relay.aws import ingest
from keap_relay.aws.http import Request
from keap_relay.events.errors import EventRejected, SignatureInvalid, UnsupportedMediaType
from keap_relay.events.sources import sign_request, webflow

SECRET = "form-secret-for-tests"
KIND = "form_submission"


# Each request goes to this kind's URL, signed with SECRET unless a test says otherwise, and is checked with SECRET.
accept = functools.partial(sources_support.accept, KIND, secret=SECRET, verify_with=SECRET)
mapped = functools.partial(sources_support.one_mapped, kind=KIND)


# -- Typeform --------------------------------------------------------------------------------------------
TYPEFORM = {  # the facts file's copy of Typeform's documented example payload
    "event_id": "LtWXD3crgy",
    "event_type": "form_response",
    "form_response": {
        "form_id": "lT4Z3j",
        "token": "a3a12ec67a1365927098a606107fac15",
        "submitted_at": "2018-01-18T18:17:02Z",
        "landed_at": "2018-01-18T18:07:02Z",
        "hidden": {"user_id": "abc123456"},
        "definition": {
            "id": "lT4Z3j",
            "title": "Webhooks example",
            "fields": [
                {
                    "id": "SMEUb7VJz92Q",
                    "title": "...give us your email address.",
                    "type": "email",
                    "ref": "readable_ref_email",
                },
                {
                    "id": "JwWggjAKtOkA",
                    "title": "What is your first name?",
                    "type": "short_text",
                    "ref": "readable_ref_short_text",
                },
            ],
        },
        "answers": [
            {"type": "email", "email": "laura@example.com", "field": {"id": "SMEUb7VJz92Q", "type": "email"}},
            {"type": "text", "text": "Laura", "field": {"id": "JwWggjAKtOkA", "type": "short_text"}},
            {
                "type": "choice",
                "choice": {"label": "London"},
                "field": {"id": "k6TP9oLGgHjl", "type": "multiple_choice"},
            },
            {"type": "boolean", "boolean": True, "field": {"id": "gFFf3xAkJKsr", "type": "legal"}},
        ],
    },
}


def test_typeform_sample_becomes_a_form_submission():
    assert mapped(accept("typeform", TYPEFORM), "typeform") == {
        "id": "LtWXD3crgy",
        "occurred_at": "2018-01-18T18:17:02Z",
        "contact": {"email": "laura@example.com", "first_name": "Laura"},
        "form": {"id": "lT4Z3j", "name": "Webhooks example"},
    }


def test_typeform_answers_are_found_by_their_ref_when_it_is_inline():
    body = json.loads(json.dumps(TYPEFORM))
    body["form_response"]["answers"] += [
        {"type": "text", "text": "Byron", "field": {"id": "zz1", "type": "short_text", "ref": "last_name"}},
        {"type": "phone_number", "phone_number": "+447700900123", "field": {"id": "zz2", "type": "phone_number"}},
    ]
    contact = only_event(accept("typeform", body))["contact"]
    assert contact == {
        "email": "laura@example.com",
        "first_name": "Laura",
        "last_name": "Byron",
        "phone": "+447700900123",
    }


def test_typeform_signature_is_base64_with_a_sha256_prefix():
    raw = json.dumps(TYPEFORM).encode()
    header = sign_request("typeform", raw, SECRET).headers["typeform-signature"]
    assert header.startswith("sha256=") and header.endswith("=")  # base64, not hex
    for bad in ({"typeform-signature": "sha256=" + "A" * 44}, {}, {"typeform-signature": header[7:]}):
        with pytest.raises(SignatureInvalid):
            accept("typeform", raw, headers={"content-type": "application/json", **bad})
    with pytest.raises(SignatureInvalid):
        accept("typeform", raw, secret="another-secret")


def test_typeform_other_event_types_are_ignored_not_refused():
    accepted = accept("typeform", {**TYPEFORM, "event_type": "form_partial_response"})
    assert accepted.events == [] and accepted.reply["status"] == "ignored"
    assert "form_partial_response" in accepted.reply["detail"]


def test_typeform_without_an_email_answer_is_422_naming_the_field_and_where_it_comes_from():
    body = json.loads(json.dumps(TYPEFORM))
    del body["form_response"]["answers"][0]
    with pytest.raises(EventRejected) as caught:
        accept("typeform", body)
    assert caught.value.detail.startswith("contact.email: is required")
    assert "Email question" in caught.value.detail


# -- Jotform ---------------------------------------------------------------------------------------------
BOUNDARY = "------------------------J1JNT4vbVO4FCC1qLG4HSv"
RAW_REQUEST = {  # the facts file's contact fragment of a real rawRequest
    "slug": "submit/243231271343446",
    "q3_name": {"first": "Wowa", "middle": "", "last": "Mawi"},
    "q12_email": "wowa@example.com",
    "q13_phoneNumber": {"full": "(098) 142-5555"},
    "q11_address": {
        "addr_line1": "test address",
        "addr_line2": "",
        "city": "",
        "state": "",
        "postal": "",
        "country": "United States",
    },
}


def multipart(fields):
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()]
    return ("".join(parts) + f"--{BOUNDARY}--\r\n").encode()


def jotform_fields(raw_request):
    return {
        "formID": "243231271343446",
        "submissionID": "6084250982513018472",
        "formTitle": "Tutoring",
        "rawRequest": json.dumps(raw_request),
        "pretty": "Name:Wowa Mawi, Email:wowa@example.com",
        "ip": "27.51.18.17",
    }


def test_jotform_multipart_submission_becomes_a_form_submission():
    assert mapped(accept("jotform", multipart(jotform_fields(RAW_REQUEST))), "jotform") == {
        "id": "6084250982513018472",
        "contact": {
            "email": "wowa@example.com",
            "first_name": "Wowa",
            "last_name": "Mawi",
            "phone": "(098) 142-5555",
            "address": {"line1": "test address", "country_code": "United States"},
        },
        "form": {"id": "243231271343446", "name": "Tutoring"},
    }


def test_jotform_fixture_without_an_email_question_is_422():
    # zulip's captured fixture: a tutoring form that asks for a student's name but no email
    fixture = {
        "slug": "submit/243231271343446",
        "q3_studentsName": {"first": "Niloth", "last": "P"},
        "q33_typeOf": "Online Tutoring",
        "q34_subjectFor": "Math",
    }
    with pytest.raises(EventRejected, match=r"contact\.email: is required"):
        accept("jotform", multipart(jotform_fields(fixture)))


def test_jotform_is_authenticated_by_the_url_token_only():
    body = multipart(jotform_fields(RAW_REQUEST))
    assert sign_request("jotform", body, SECRET).query == {"token": SECRET}
    for query in ({}, {"token": "guess"}, {"token": SECRET.upper()}):
        with pytest.raises(SignatureInvalid, match="token"):
            accept("jotform", body, query=query)


def test_jotform_form_encoded_posts_are_read_too_and_junk_is_400():
    body = urlencode(jotform_fields(RAW_REQUEST)).encode()
    headers = {"content-type": "application/x-www-form-urlencoded"}
    assert only_event(accept("jotform", body, headers=headers))["contact"]["email"] == "wowa@example.com"
    missing = urlencode({"formID": "1", "submissionID": "2"}).encode()
    with pytest.raises(Exception, match="rawRequest") as caught:
        accept("jotform", missing, headers=headers)
    assert caught.value.status == 400
    with pytest.raises(UnsupportedMediaType):
        accept("jotform", body, headers={"content-type": "application/json"})


# -- Webflow ---------------------------------------------------------------------------------------------
WEBFLOW = {  # Webflow's documented example, minus most schema entries
    "triggerType": "form_submission",
    "payload": {
        "name": "Contact Us",
        "siteId": "65427cf400e02b306eaa049c",
        "data": {
            "First Name": "Zaphod",
            "Last Name": "Beeblebrox",
            "email": "zaphod@heartofgold.ai",
            "Phone Number": 15550000000,
        },
        "schema": [
            {
                "fieldName": "First Name",
                "fieldType": "FormTextInput",
                "fieldElementId": "285042f7-d554-dc7f-102c-aa10d6a2d2c4",
            }
        ],
        "submittedAt": "2022-09-14T12:35:16.117Z",
        "id": "6321ca84df3949bfc6752327",
        "formId": "65429eadebe8a9f3a30f62d0",
        "formElementId": "4e038d2c-6a1e-4953-7be9-a59a2b453177",
    },
}


def test_webflow_sample_becomes_a_form_submission():
    assert mapped(accept("webflow", WEBFLOW), "webflow") == {
        "id": "6321ca84df3949bfc6752327",
        "occurred_at": "2022-09-14T12:35:16.117Z",
        "contact": {
            "email": "zaphod@heartofgold.ai",
            "first_name": "Zaphod",
            "last_name": "Beeblebrox",
            "phone": "15550000000",
        },
        "form": {"id": "65429eadebe8a9f3a30f62d0", "name": "Contact Us"},
    }


def test_webflow_signature_covers_timestamp_and_body_within_five_minutes():
    raw = json.dumps(WEBFLOW).encode()
    headers = webflow.sign(raw, SECRET, timestamp_ms=1_700_000_000_000)
    webflow.verify(headers, raw, SECRET, now=1_700_000_299)
    with pytest.raises(SignatureInvalid, match="tolerance"):
        webflow.verify(headers, raw, SECRET, now=1_700_000_301)
    with pytest.raises(SignatureInvalid, match="does not match"):
        webflow.verify({**headers, "x-webflow-timestamp": "1700000000001"}, raw, SECRET, now=1_700_000_000)
    with pytest.raises(SignatureInvalid):
        accept("webflow", raw, timestamp_ms=1_600_000_000_000)  # a replay of an old delivery


def test_webflow_dashboard_webhooks_are_unsigned_and_use_the_url_token():
    raw = json.dumps(WEBFLOW).encode()
    plain = {"content-type": "application/json"}
    assert only_event(accept("webflow", raw, headers=plain, query={"token": SECRET}))["id"] == WEBFLOW["payload"]["id"]
    with pytest.raises(SignatureInvalid, match="token"):
        accept("webflow", raw, headers=plain, query={"token": "nope"})
    with pytest.raises(SignatureInvalid, match="x-webflow"):
        accept("webflow", raw, headers=plain, query={})


# -- Tally -----------------------------------------------------------------------------------------------
TALLY = {  # a captured payload from the facts file
    "eventId": "02ee4066-93f1-446b-8115-259577c22366",
    "eventType": "FORM_RESPONSE",
    "createdAt": "2025-07-04T13:39:37.979Z",
    "data": {
        "responseId": "jaMb6Ka",
        "submissionId": "jaMb6Ka",
        "respondentId": "77WKOA",
        "formId": "mZA0Av",
        "formName": "Lead Generation Form",
        "createdAt": "2025-07-04T13:39:37.000Z",
        "fields": [
            {"key": "question_ElZ96L", "label": "Full Name", "type": "INPUT_TEXT", "value": "John Doe"},
            {"key": "question_rOJ7YL", "label": "Email Address", "type": "INPUT_EMAIL", "value": "john@company.com"},
            {"key": "question_4795Oo", "label": "Phone Number", "type": "INPUT_PHONE_NUMBER", "value": "+1234567890"},
        ],
    },
}


def test_tally_sample_becomes_a_form_submission_with_the_full_name_split():
    assert mapped(accept("tally", TALLY), "tally") == {
        "id": "02ee4066-93f1-446b-8115-259577c22366",
        "occurred_at": "2025-07-04T13:39:37.000Z",
        "contact": {"email": "john@company.com", "first_name": "John", "last_name": "Doe", "phone": "+1234567890"},
        "form": {"id": "mZA0Av", "name": "Lead Generation Form"},
    }


def test_tally_signature_is_base64_hmac_of_the_raw_body():
    raw = json.dumps(TALLY).encode()
    with pytest.raises(SignatureInvalid):
        accept("tally", raw, secret="not-the-signing-secret")
    reserialised = json.dumps(TALLY, indent=1).encode()  # same JSON, other bytes: not what was signed
    with pytest.raises(SignatureInvalid):
        accept("tally", reserialised, headers=sign_request("tally", raw, SECRET).headers)


# -- Gravity Forms ---------------------------------------------------------------------------------------
GRAVITY = {  # the Entry example from the facts file ("All Fields"), which has no email field
    "id": "2",
    "form_id": "1",
    "post_id": None,
    "date_created": "2019-03-04 15:52:49",
    "date_updated": "2019-03-04 15:52:49",
    "is_starred": "0",
    "is_read": "0",
    "ip": "127.0.0.1",
    "source_url": "https://wordpress.test/?gf_page=preview&id=1",
    "user_agent": "<user-agent>",
    "currency": "USD",
    "payment_status": None,
    "payment_amount": None,
    "transaction_id": None,
    "created_by": "1",
    "status": "active",
    "1.3": "Jane",
    "1.6": "Doe",
    "3": "Tea",
    "4.1": "Bagel",
    "4.3": "Danish",
}


def test_gravityforms_entry_gives_the_email_field_and_the_name_field():
    assert mapped(accept("gravityforms", {**GRAVITY, "2": "jane.doe@example.com"}), "gravityforms") == {
        "id": "2",
        "contact": {"email": "jane.doe@example.com", "first_name": "Jane", "last_name": "Doe"},
        "form": {"id": "1"},
    }


def test_gravityforms_checkbox_inputs_are_not_taken_for_a_name():
    entry = {"id": "3", "form_id": "1", "2": "a@example.com", "4.3": "Danish", "4.6": "Scone", "4.1": "Bagel"}
    assert only_event(accept("gravityforms", entry))["contact"] == {"email": "a@example.com"}


def test_gravityforms_entry_without_an_email_field_is_422():
    with pytest.raises(EventRejected, match=r"contact\.email: is required"):
        accept("gravityforms", GRAVITY)


def test_gravityforms_select_fields_form_encoded_body_maps_by_key():
    body = urlencode(
        {
            "email": "sam@Example.org",
            "first_name": "Sam",
            "last_name": "Lee",
            "phone": "555 0100",
            "company": "Lee & Co",
            "form_id": "7",
        }
    ).encode()
    event = only_event(accept("gravityforms", body, content_type="application/x-www-form-urlencoded"))
    assert event["contact"] == {
        "email": "sam@example.org",
        "first_name": "Sam",
        "last_name": "Lee",
        "phone": "555 0100",
        "company": "Lee & Co",
    }
    assert event["form"] == {"id": "7"}
    again = only_event(accept("gravityforms", body, content_type="application/x-www-form-urlencoded"))
    assert again["id"] == event["id"]  # no entry id: a stable hash of the fields


# -- Elementor -------------------------------------------------------------------------------------------
ELEMENTOR = (
    b"Name=Jane+Doe&Email=jane%40example.com&Message=Hi&Date=May+5%2C+2025"
    b"&Page+URL=https%3A%2F%2Fsite%2Fcontact&form_id=a1b2c3d&form_name=Contact"
)  # the facts' example


def test_elementor_labelled_fields_become_a_form_submission_answered_200():
    accepted = accept("elementor", ELEMENTOR)
    event = only_event(accepted)
    assert event["contact"] == {"email": "jane@example.com", "first_name": "Jane", "last_name": "Doe"}
    assert event["form"] == {"id": "a1b2c3d", "name": "Contact"}
    assert accepted.status == 200  # Elementor shows the visitor an error for anything else
    assert only_event(accept("elementor", ELEMENTOR))["id"] == event["id"]


def test_elementor_advanced_data_is_keyed_by_field_id_and_type():
    body = urlencode(
        {
            "form[id]": "a1b2c3d",
            "form[name]": "Contact",
            "fields[name][id]": "name",
            "fields[name][type]": "text",
            "fields[name][title]": "Your name",
            "fields[name][value]": "Jane Doe",
            "fields[field_3f2][id]": "field_3f2",
            "fields[field_3f2][type]": "email",
            "fields[field_3f2][title]": "Where?",
            "fields[field_3f2][value]": "jane@example.com",
            "fields[tel][type]": "tel",
            "fields[tel][title]": "Call me",
            "fields[tel][value]": "+1 555 0100",
            "meta[date][title]": "Date",
            "meta[date][value]": "May 5, 2025",
        }
    ).encode()
    event = only_event(accept("elementor", body))
    assert event["contact"] == {
        "email": "jane@example.com",
        "first_name": "Jane",
        "last_name": "Doe",
        "phone": "+1 555 0100",
    }
    assert event["form"] == {"id": "a1b2c3d", "name": "Contact"}


def test_form_sources_are_not_purchase_or_unsubscribe_sources():
    request = Request("POST", "/purchases/typeform", "typeform", {}, {}, b"{}")
    with pytest.raises(Exception, match="/forms/typeform") as caught:
        ingest.accept(request, "purchase", {"typeform": SECRET}.get)
    assert caught.value.status == 404
