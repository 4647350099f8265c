"""What the source adapters share: body readers, signature schemes, value rules, event builders, form labels."""

import pytest

from keap_relay.events.errors import BodyUnparseable, EventIgnored, SignatureInvalid, UnsupportedMediaType
from keap_relay.events.sources import _bodies as bodies
from keap_relay.events.sources import _event as event
from keap_relay.events.sources import _form_fields as form_fields
from keap_relay.events.sources import _signatures as signatures
from keap_relay.events.sources import _values as values


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
    assert values.email_address(raw) == expected


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
    assert values.split_name(full) == expected


def test_contact_splits_the_full_name_only_when_no_first_or_last_name_is_given():
    assert event.contact("a@example.com", name="Ada Lovelace") == {
        "email": "a@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
    }
    assert event.contact("a@example.com", "Augusta", None, name="Ada Lovelace") == {
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
    assert values.money_from_minor(amount, currency) == expected


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
    assert values.money(value) == expected


def test_currency_codes_are_upper_cased_three_letters():
    assert values.currency_code("usd") == "USD"
    assert values.currency_code("dollars") is None


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
    assert values.iso_time(value, naive_is_utc=naive_is_utc) == expected


def test_unix_times_become_utc_iso_and_nonsense_is_dropped():
    assert values.iso_from_unix(1513299569) == "2017-12-15T00:59:29Z"
    assert values.iso_from_unix("1521243339.873676") == "2018-03-16T23:35:39.873676Z"
    assert values.iso_from_unix(float("inf")) is None
    assert values.iso_from_unix(10**20) is None
    assert values.iso_from_unix(True) is None


def test_stable_ids_depend_only_on_the_identifying_fields():
    one = values.stable_id("unsubscribe", "a6b5da1054", "x@example.com", "2009-03-26 21:40:57")
    assert one == values.stable_id("unsubscribe", "a6b5da1054", "x@example.com", "2009-03-26 21:40:57")
    assert one != values.stable_id("unsubscribe", "a6b5da1054", "y@example.com", "2009-03-26 21:40:57")
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
    assert form_fields.contact_field_for(label) == field


def test_contact_from_fields_keeps_the_first_value_of_each_field():
    got = form_fields.contact_from_fields(
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
    assert values.clean_text("x" * 5000) == "x" * values.TEXT_MAX
    assert values.clean_text(True) is None and values.clean_text({"a": 1}) is None


def test_json_bodies_refuse_nan_deep_nesting_and_bad_bytes():
    assert bodies.json_object(b'{"a": 1}') == {"a": 1}
    for raw in (b'{"a": NaN}', b"[" * 100_000, b"\xff\xfe\x00", b'{"a": 1', b"[1]"):
        with pytest.raises(BodyUnparseable):
            bodies.json_object(raw)


def test_form_bodies_keep_bracket_names_and_the_last_repeat():
    headers = {"content-type": "application/x-www-form-urlencoded; charset=UTF-8"}
    body = b"data[reason]=manual&data[email]=a%40example.com&data[reason]=hard&blank="
    assert bodies.form_body(headers, body) == {"data[reason]": "hard", "data[email]": "a@example.com", "blank": ""}
    with pytest.raises(BodyUnparseable):
        bodies.form_body(headers, b"a=\xff\xfe")
    with pytest.raises(BodyUnparseable):
        bodies.form_body({"content-type": "application/x-www-form-urlencoded; charset=klingon"}, b"a=1")


def test_multipart_bodies_yield_their_text_fields():
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="formID"\r\n\r\n243231271343446\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="upload"; filename="a.txt"\r\n\r\nfile\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="pretty"\r\n\r\nName:A, B\r\n--XyZ--\r\n'
    )
    headers = {"content-type": "multipart/form-data; boundary=XyZ"}
    assert bodies.multipart_body(headers, body) == {"formID": "243231271343446", "pretty": "Name:A, B"}
    with pytest.raises(BodyUnparseable):
        bodies.multipart_body({"content-type": "multipart/form-data"}, body)
    with pytest.raises(BodyUnparseable):
        bodies.multipart_body(headers, b"no parts at all")


def test_media_types_are_checked_without_their_parameters():
    assert bodies.require_media_type({"content-type": "Application/JSON; charset=utf-8"}, (bodies.JSON,)) == bodies.JSON
    with pytest.raises(UnsupportedMediaType, match="text/xml"):
        bodies.require_media_type({"content-type": "text/xml"}, (bodies.JSON, bodies.FORM))


def test_token_compare_never_raises_and_never_echoes_the_secret():
    signatures.verify_token({"token": "s3cret"}, "s3cret")
    for query in ({}, {"token": ""}, {"token": "wrong"}, {"token": "s3crét"}, {"token": "s3cret,s3cret"}):
        with pytest.raises(SignatureInvalid) as caught:
            signatures.verify_token(query, "s3cret")
        assert "s3cret" not in str(caught.value)


def test_signed_timestamps_outside_the_tolerance_are_refused():
    signatures.require_recent(1000, 300, now=1299)
    for stamp in (600, 1400, float("nan")):
        with pytest.raises(SignatureInvalid, match="tolerance"):
            signatures.require_recent(stamp, 300, now=1000)


@pytest.mark.parametrize(
    ("scheme", "header", "expected"),
    [
        # The same body and secret, written the way each vendor writes it.
        (
            signatures.HmacHeader("x-hex", "hex"),
            "x-hex",
            "1a9fab6cd4b8cdcaad8640f3eca73fa924c62ff24f3833254ef3547232153767",
        ),
        (signatures.HmacHeader("x-b64", "base64"), "x-b64", "Gp+rbNS4zcqthkDz7Kc/qSTGL/JPODMlTvNUcjIVN2c="),
        (
            signatures.HmacHeader("x-pre", "base64", scheme="sha256"),
            "x-pre",
            "sha256=Gp+rbNS4zcqthkDz7Kc/qSTGL/JPODMlTvNUcjIVN2c=",
        ),
    ],
)
def test_hmac_header_schemes_sign_the_raw_body_and_verify_what_they_sign(scheme, header, expected):
    assert scheme.sign(b'{"a": 1}', "s3cret") == {header: expected}
    scheme.verify({header: f"  {expected} "}, b'{"a": 1}', "s3cret")
    with pytest.raises(SignatureInvalid, match="does not match the body"):
        scheme.verify({header: expected}, b'{"a": 2}', "s3cret")
    with pytest.raises(SignatureInvalid, match=f"missing {header} header"):
        scheme.verify({}, b'{"a": 1}', "s3cret")


def test_hex_digests_compare_in_any_case_base64_ones_exactly_and_a_scheme_name_in_any_case():
    body, secret = b"body", "s3cret"
    hex_scheme = signatures.HmacHeader("x-sig", "hex", scheme="sha256")
    hex_scheme.verify({"x-sig": hex_scheme.sign(body, secret)["x-sig"].upper()}, body, secret)
    b64_scheme = signatures.HmacHeader("x-sig", "base64")
    with pytest.raises(SignatureInvalid):
        b64_scheme.verify({"x-sig": b64_scheme.sign(body, secret)["x-sig"].lower()}, body, secret)
    for malformed in ("md5=" + hex_scheme.sign(body, secret)["x-sig"][7:], "sha256=", "no-equals-sign"):
        with pytest.raises(SignatureInvalid, match=r"malformed x-sig header \(expected sha256=<hex>\)"):
            hex_scheme.verify({"x-sig": malformed}, body, secret)


def test_constant_time_equal_compares_any_text_without_raising():
    assert signatures.constant_time_equal("s3crét", "s3crét")
    assert not signatures.constant_time_equal("s3crét", "s3cret")
    assert signatures.constant_time_equal(b"\xff", b"\xff")


def test_an_address_is_read_by_the_vendors_keys_the_first_present_of_several_winning():
    keys = event.AddressKeys("a1", "a2", "town", ("province_code", "province"), "zip", ("cc", "country"))
    place = {"a1": " 1 Main St ", "a2": "", "town": "Ottawa", "province": "Ontario", "zip": "K2P", "cc": "CA"}
    assert event.address_from(place, keys) == {
        "line1": "1 Main St",
        "city": "Ottawa",
        "region": "Ontario",
        "postal_code": "K2P",
        "country_code": "CA",
    }
    assert event.address_from({"province_code": "ON", "province": "Ontario"}, keys) == {"region": "ON"}


def test_a_delivery_of_another_type_is_ignored_naming_what_it_was():
    event.ignore_unless("FORM_RESPONSE", "FORM_RESPONSE", "tally eventType")
    with pytest.raises(EventIgnored) as caught:
        event.ignore_unless("PARTIAL", "FORM_RESPONSE", "tally eventType")
    assert caught.value.detail == "tally eventType 'PARTIAL' is not FORM_RESPONSE; ignored"


def test_purchase_and_form_submission_keep_only_what_the_vendor_gave():
    person = {"email": "a@example.com"}
    assert event.purchase("shop", "order-1", None, person, order_id=" 1 ", total="9.00", currency=None) == {
        "kind": "purchase",
        "source": "shop",
        "id": "order-1",
        "contact": person,
        "order": {"id": "1", "total": "9.00"},
    }
    submission = event.form_submission("forms", "e1", "2025-01-01T00:00:00Z", {}, form_id=7, form_name="")
    assert submission == {
        "kind": "form_submission",
        "source": "forms",
        "id": "e1",
        "occurred_at": "2025-01-01T00:00:00Z",
        "contact": {},  # kept, so a missing email is reported as such
        "form": {"id": "7"},
    }
