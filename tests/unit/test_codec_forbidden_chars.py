"""Keap's answers that carry characters XML 1.0 forbids: read with them dropped, and a warning without the value."""

import logging

import pytest

from keap_relay.keap import codec
from keap_relay.keap.errors import KeapMalformedResponse, KeapUnsafeResponse


def response(value_xml: str | bytes) -> bytes:
    value = value_xml.encode() if isinstance(value_xml, str) else value_xml
    return (
        b"<?xml version='1.0' encoding='UTF-8'?>\n<methodResponse><params><param><value>"
        + value
        + b"</value></param></params></methodResponse>"
    )


CONTACT = "<struct><member><name>Company</name><value>{}</value></member></struct>"

# What Keap (or a proxy) may put in a field -> what the relay reads.
FORBIDDEN = {
    "decimal reference (seen from Keap)": ("Acme&#11;Ltd", "AcmeLtd"),
    "hex reference": ("Acme&#x0B;Ltd", "AcmeLtd"),
    "NUL reference": ("Acme&#0;Ltd", "AcmeLtd"),
    "surrogate reference": ("Acme&#xD800;Ltd", "AcmeLtd"),
    "U+FFFE reference": ("Acme&#65534;Ltd", "AcmeLtd"),
    "beyond Unicode": ("Acme&#x110000;Ltd", "AcmeLtd"),
    "raw vertical tab": ("Acme\x0bLtd", "AcmeLtd"),
    "raw NUL": ("Acme\x00Ltd", "AcmeLtd"),
    "raw U+FFFF": ("Acme\uffffLtd", "AcmeLtd"),
    "several, allowed references kept": ("&#1;A&#38;B&#x1F;&#9;C&#233;", "A&B\tCé"),
}


@pytest.mark.parametrize(("field", "expected"), FORBIDDEN.values(), ids=FORBIDDEN.keys())
def test_forbidden_characters_are_dropped(field: str, expected: str) -> None:
    assert codec.decode_response(response(CONTACT.format(field))) == {"Company": expected}


def test_a_raw_utf8_surrogate_is_dropped() -> None:
    body = response(b"<string>Acme\xed\xa0\x80Ltd</string>")
    assert codec.decode_response(body) == "AcmeLtd"


def test_a_str_body_is_repaired_too() -> None:
    body = response("<string>Acme&#11;Ltd</string>").decode()
    assert codec.decode_response(body) == "AcmeLtd"


def test_the_repair_is_logged_with_method_and_count_but_not_the_value(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="keap_relay.keap"):
        codec.decode_response(response(CONTACT.format("secret-name&#11;&#12;")), "ContactService.load")
    (record,) = caplog.records
    message = record.getMessage()
    assert "ContactService.load" in message and "2 character(s)" in message
    assert "secret-name" not in message


def test_a_clean_answer_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="keap_relay.keap"):
        assert codec.decode_response(response("<string>Acme &amp; Co</string>")) == "Acme & Co"
    assert caplog.records == []


UNREADABLE = {
    "truncated with a forbidden character": response("<string>a&#11;b</string>")[:-20],
    "not XML with a forbidden character": b"<html>\x0b502 Bad Gateway",
    "truncated": response("<string>ab</string>")[:-20],
    "not XML": b"502 Bad Gateway",
    "empty": b"",
}


@pytest.mark.parametrize("body", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_a_truncated_or_non_xml_answer_stays_malformed(body: bytes) -> None:
    with pytest.raises(KeapMalformedResponse):
        codec.decode_response(body, "ContactService.load")


def test_a_doctype_stays_refused_after_the_repair() -> None:
    body = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><methodResponse>&#11;</methodResponse>'
    with pytest.raises(KeapUnsafeResponse):
        codec.decode_response(body)


def test_a_fault_with_a_forbidden_character_is_still_the_fault() -> None:
    body = (
        b"<?xml version='1.0'?><methodResponse><fault><value><struct>"
        b"<member><name>faultCode</name><value><i4>8</i4></value></member>"
        b"<member><name>faultString</name><value>[RecordNotFound]&#11;Contact</value></member>"
        b"</struct></value></fault></methodResponse>"
    )
    with pytest.raises(Exception) as caught:
        codec.decode_response(body, "ContactService.load")
    assert not isinstance(caught.value, KeapMalformedResponse)
    assert "[RecordNotFound]Contact" in str(caught.value)
