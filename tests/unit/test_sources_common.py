"""The mapping rules and body readers every source adapter shares."""

import pytest

from keap_relay.events.errors import BodyUnparseable, SignatureInvalid, UnsupportedMediaType
from keap_relay.events.sources import _common as c


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Ada.Lovelace@EXAMPLE.Com ", "Ada.Lovelace@example.com"),  # local part kept, domain lower-cased
        ("bob@example.com", "bob@example.com"),
        ("no-at-sign", "no-at-sign"),  # left for the schema to refuse, naming the field
        ("   ", None),
        (None, None),
        (42, None),
    ],
)
def test_email_is_trimmed_and_its_domain_lower_cased(raw, expected):
    assert c.email_address(raw) == expected


@pytest.mark.parametrize(
    ("full", "expected"),
    [
        ("Darlene Daugherty", ("Darlene", "Daugherty")),
        ("Ana de la Cruz Ramos", ("Ana", "de la Cruz Ramos")),
        ("  Cher  ", ("Cher", None)),
        ("", (None, None)),
        (None, (None, None)),
    ],
)
def test_a_full_name_splits_into_first_word_and_the_rest(full, expected):
    assert c.split_name(full) == expected


def test_contact_splits_the_full_name_only_when_no_first_or_last_name_is_given():
    assert c.contact("a@example.com", name="Ada Lovelace") == {
        "email": "a@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
    }
    assert c.contact("a@example.com", "Augusta", None, name="Ada Lovelace") == {
        "email": "a@example.com",
        "first_name": "Augusta",
    }


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (1199, "USD", "11.99"),
        ("4900", "USD", "49.00"),
        (500, "JPY", "500"),  # zero-decimal
        (12345, "KWD", "12.345"),  # three-decimal
        (0, "EUR", "0.00"),
        (-250, "USD", "-2.50"),
        (True, "USD", None),
        ("12.5", "USD", None),  # minor units are whole
        (None, "USD", None),
    ],
)
def test_minor_units_become_a_decimal_string_in_major_units(amount, currency, expected):
    assert c.money_from_minor(amount, currency) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("403.00", "403.00"),
        (14.99, "14.99"),
        (7, "7"),
        ("6.72549", "6.7255"),
        ("NaN", None),
        ("Infinity", None),
        ("1e13", None),
        ("abc", None),
        (None, None),
        (False, None),
    ],
)
def test_decimal_amounts_keep_their_digits_and_fit_the_schema(value, expected):
    assert c.money(value) == expected


def test_currency_codes_are_upper_cased_three_letters():
    assert c.currency_code("usd") == "USD"
    assert c.currency_code("dollars") is None


@pytest.mark.parametrize(
    ("value", "naive_is_utc", "expected"),
    [
        ("2018-01-18T18:17:02Z", False, "2018-01-18T18:17:02Z"),
        ("2019-06-04T13:53:06-04:00", False, "2019-06-04T13:53:06-04:00"),
        ("2009-03-26 21:40:57", False, None),  # no zone: unknown unless the vendor's times are UTC
        ("2009-03-26 21:40:57", True, "2009-03-26T21:40:57Z"),
        ("yesterday", True, None),
    ],
)
def test_times_are_iso_8601_with_a_zone_or_left_out(value, naive_is_utc, expected):
    assert c.iso_time(value, naive_is_utc=naive_is_utc) == expected


def test_unix_times_become_utc_iso_and_nonsense_is_dropped():
    assert c.iso_from_unix(1513299569) == "2017-12-15T00:59:29Z"
    assert c.iso_from_unix("1521243339.873676") == "2018-03-16T23:35:39.873676Z"
    assert c.iso_from_unix(float("inf")) is None
    assert c.iso_from_unix(10**20) is None
    assert c.iso_from_unix(True) is None


def test_stable_ids_depend_only_on_the_identifying_fields():
    one = c.stable_id("unsubscribe", "a6b5da1054", "x@example.com", "2009-03-26 21:40:57")
    assert one == c.stable_id("unsubscribe", "a6b5da1054", "x@example.com", "2009-03-26 21:40:57")
    assert one != c.stable_id("unsubscribe", "a6b5da1054", "y@example.com", "2009-03-26 21:40:57")
    assert len(one) == 40


@pytest.mark.parametrize(
    ("label", "field"),
    [
        ("Email Address", "email"),
        ("What is your first name?", "first_name"),
        ("q3_name", "name"),
        ("Last Name", "last_name"),
        ("Surname", "last_name"),
        ("q13_phoneNumber", "phone"),
        ("Company name", "company"),
        ("Full Name", "name"),
        ("Business email", "email"),
        ("Product name", None),
        ("form_name", None),
        ("IP address", None),
        ("Message", None),
        ("Username", None),
    ],
)
def test_form_field_labels_name_contact_fields(label, field):
    assert c.field_for(label) == field


def test_contact_from_fields_keeps_the_first_value_of_each_field():
    got = c.contact_from_fields(
        [
            ("email", " first@Example.com "),
            ("email", "second@example.com"),
            ("name", {"first": "Wowa", "last": "Mawi"}),
            ("phone", 15550000000.0),
            ("company", ""),
            (None, "ignored"),
        ]
    )
    assert got == {"email": "first@example.com", "first_name": "Wowa", "last_name": "Mawi", "phone": "15550000000"}


def test_text_is_clipped_to_the_schema_limit():
    assert c.text("x" * 5000) == "x" * c.TEXT_MAX
    assert c.text(True) is None and c.text({"a": 1}) is None


def test_json_bodies_refuse_nan_deep_nesting_and_bad_bytes():
    assert c.json_object(b'{"a": 1}') == {"a": 1}
    for raw in (b'{"a": NaN}', b"[" * 100_000, b"\xff\xfe\x00", b'{"a": 1', b"[1]"):
        with pytest.raises(BodyUnparseable):
            c.json_object(raw)


def test_form_bodies_keep_bracket_names_and_the_last_repeat():
    headers = {"content-type": "application/x-www-form-urlencoded; charset=UTF-8"}
    body = b"data[reason]=manual&data[email]=a%40example.com&data[reason]=hard&blank="
    assert c.form_body(headers, body) == {"data[reason]": "hard", "data[email]": "a@example.com", "blank": ""}
    with pytest.raises(BodyUnparseable):
        c.form_body(headers, b"a=\xff\xfe")
    with pytest.raises(BodyUnparseable):
        c.form_body({"content-type": "application/x-www-form-urlencoded; charset=klingon"}, b"a=1")


def test_multipart_bodies_yield_their_text_fields():
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="formID"\r\n\r\n243231271343446\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="upload"; filename="a.txt"\r\n\r\nfile\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="pretty"\r\n\r\nName:A, B\r\n--XyZ--\r\n'
    )
    headers = {"content-type": "multipart/form-data; boundary=XyZ"}
    assert c.multipart_body(headers, body) == {"formID": "243231271343446", "pretty": "Name:A, B"}
    with pytest.raises(BodyUnparseable):
        c.multipart_body({"content-type": "multipart/form-data"}, body)
    with pytest.raises(BodyUnparseable):
        c.multipart_body(headers, b"no parts at all")


def test_media_types_are_checked_without_their_parameters():
    assert c.require_media({"content-type": "Application/JSON; charset=utf-8"}, (c.JSON,)) == c.JSON
    with pytest.raises(UnsupportedMediaType, match="text/xml"):
        c.require_media({"content-type": "text/xml"}, (c.JSON, c.FORM))


def test_token_compare_never_raises_and_never_echoes_the_secret():
    c.verify_token({"token": "s3cret"}, "s3cret")
    for query in ({}, {"token": ""}, {"token": "wrong"}, {"token": "s3crét"}, {"token": "s3cret,s3cret"}):
        with pytest.raises(SignatureInvalid) as caught:
            c.verify_token(query, "s3cret")
        assert "s3cret" not in str(caught.value)


def test_signed_timestamps_outside_the_tolerance_are_refused():
    c.check_age(1000, 300, now=1299)
    for stamp in (600, 1400, float("nan")):
        with pytest.raises(SignatureInvalid, match="tolerance"):
            c.check_age(stamp, 300, now=1000)
