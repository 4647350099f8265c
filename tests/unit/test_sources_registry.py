"""The source registry: every adapter declares what it serves and signs what it verifies."""

import pytest
from sources_support import SG_PRIVATE, SG_PUBLIC

from keap_relay.aws import ingest
from keap_relay.aws.http import Request, parse_request
from keap_relay.events.canonical import KINDS
from keap_relay.events.errors import MethodNotAllowed, SignatureInvalid, UnknownSource
from keap_relay.events.sources import SOURCES, sign_request, source_spec, sources_for

SECRET = "registry-secret-for-tests"
EXPECTED = {
    "form_submission": {"generic", "typeform", "jotform", "webflow", "tally", "gravityforms", "elementor"},
    "purchase": {"generic", "shopify", "woocommerce", "stripe", "gumroad", "lemonsqueezy"},
    "unsubscribe": {"generic", "mailchimp", "sendgrid", "mailgun", "postmark"},
}


def secret_of(name):
    return SG_PRIVATE if name == "sendgrid" else SECRET


def test_each_kind_accepts_its_sources_and_generic_serves_all():
    for kind, names in EXPECTED.items():
        assert set(sources_for(kind)) == names
    assert set(SOURCES) == set().union(*EXPECTED.values())


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_adapter_declares_its_kinds_types_and_authentication(name):
    module, spec = SOURCES[name], source_spec(name)
    assert module.__doc__ and module.__doc__.strip()
    assert spec.kinds and set(spec.kinds) <= set(KINDS)
    assert spec.content_types and all("/" in t for t in spec.content_types)
    assert spec.auth and set(spec.auth) <= {"signature", "token"}
    assert callable(module.parse) and callable(module.sign)
    assert callable(getattr(module, "verify", None)) == spec.by_signature
    assert "POST" in spec.methods and spec.success_status in (200, 202)


@pytest.mark.parametrize("name", sorted(n for n in SOURCES if source_spec(n).by_signature))
def test_every_signing_adapter_verifies_what_it_signs_and_nothing_else(name):
    module, secret = SOURCES[name], secret_of(name)
    body = b'{"signature": {}, "event-data": {}}' if name == "mailgun" else b'[{"email": "a@example.com"}]'
    signed = sign_request(name, body, secret)
    headers = {k.lower(): v for k, v in signed.headers.items()}
    verify_with = SG_PUBLIC if name == "sendgrid" else secret
    module.verify(headers, signed.body, verify_with)
    tampered = signed.body.replace(b"{}", b'{"x": 1}', 1) if name == "mailgun" else signed.body.replace(b"a@", b"b@")
    if name != "mailgun":  # Mailgun signs timestamp + token, not the event: its tamper test is the signature
        with pytest.raises(SignatureInvalid):
            module.verify(headers, tampered, verify_with)
    with pytest.raises(SignatureInvalid):
        module.verify({"content-type": "application/json"}, tampered.replace(b'"signature"', b'"x"'), verify_with)


@pytest.mark.parametrize("name", sorted(n for n in SOURCES if source_spec(n).auth == ("token",)))
def test_token_sources_get_the_secret_in_the_url_not_in_headers(name):
    signed = sign_request(name, b"x", SECRET)
    assert signed.query == {"token": SECRET}
    assert SECRET not in str(signed.headers) and SECRET not in repr(signed)


def test_unknown_sources_are_404_listing_what_the_kind_accepts():
    with pytest.raises(UnknownSource) as caught:
        ingest.accept(Request("POST", "/forms/typefrom", "typefrom", {}, {}, b""), "form_submission", {}.get)
    assert caught.value.status == 404
    assert "typefrom" in caught.value.detail and "typeform" in caught.value.detail
    with pytest.raises(UnknownSource, match="/unsubscribes/mailchimp"):
        ingest.accept(Request("POST", "/forms/mailchimp", "mailchimp", {}, {}, b""), "form_submission", {}.get)


def test_other_methods_are_405_and_a_source_without_a_secret_is_401():
    with pytest.raises(MethodNotAllowed, match="POST"):
        ingest.accept(Request("GET", "/forms/typeform", "typeform", {}, {}, b""), "form_submission", {}.get)
    with pytest.raises(SignatureInvalid, match="no webhook secret"):
        ingest.accept(Request("POST", "/forms/typeform", "typeform", {}, {}, b"{}"), "form_submission", {}.get)


def test_an_adapter_bug_is_a_4xx_not_a_crash(monkeypatch, caplog):
    from keap_relay.events.sources import tally

    def broken(headers, raw_body):
        raise KeyError("a bug")

    monkeypatch.setattr(tally, "parse", broken)
    signed = sign_request("tally", b"{}", SECRET)
    request = Request("POST", "/forms/tally", "tally", signed.headers, {}, b"{}")
    with pytest.raises(Exception, match="could not be read as a tally webhook") as caught:
        ingest.accept(request, "form_submission", {"tally": SECRET}.get)
    assert caught.value.status == 400
    assert "tally adapter failed in parse" in caplog.text and "KeyError" in caplog.text


def test_requests_never_show_their_query_values_or_body():
    event = {
        "requestContext": {"http": {"method": "POST"}},
        "rawPath": "/forms/jotform",
        "pathParameters": {"source": "jotform"},
        "queryStringParameters": {"token": SECRET},
        "headers": {"Content-Type": "multipart/form-data"},
        "body": "secret-body",
        "isBase64Encoded": False,
    }
    request = parse_request(event)
    assert request.query == {"token": SECRET} and request.headers == {"content-type": "multipart/form-data"}
    assert SECRET not in repr(request) and "secret-body" not in repr(request)


def test_the_raw_query_string_is_read_when_parameters_are_absent():
    event = {
        "requestContext": {"http": {"method": "GET"}},
        "rawPath": "/unsubscribes/mailchimp",
        "rawQueryString": "token=a%2Bb&x=1&x=2",
    }
    assert parse_request(event).query == {"token": "a+b", "x": "1,2"}
