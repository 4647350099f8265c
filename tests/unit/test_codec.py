"""The XML-RPC codec: Keap's documented samples, every type and quirk, faults, unsafe bodies, encode errors."""

import enum
import xmlrpc.client
from collections import OrderedDict
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from keap_relay.keap import codec
from keap_relay.keap.errors import KeapError, KeapFault, KeapMalformedResponse, KeapRequestError, KeapUnsafeResponse

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "keap_samples"


def response(value_xml: str) -> bytes:
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n<methodResponse><params><param>"
        f"<value>{value_xml}</value></param></params></methodResponse>"
    ).encode()


def decode_value(value_xml: str):
    return codec.decode_response(response(value_xml))


# ---------------------------------------------------------------- the API document's samples

EXPECTED_SAMPLES = {
    "ContactService.add": 16,
    "ContactService.merge": True,
    "ContactService.addToCampaign": False,
    "ContactService.addToGroup": False,
    "ContactService.getNextCampaignStep": 15,
    "ContactService.findByEmail": [
        {"FirstName": "John", "Id": 16, "LastName": "Doe"},
        {"FirstName": "Ron", "Id": 18, "LastName": "Doe"},
    ],
    "ContactService.load": {"FirstName": "Ron", "Id": 18, "LastName": "Doe"},
    "ContactService.pauseCampaign": True,
    "ContactService.removeFromCampaign": True,
    "ContactService.removeFromGroup": False,
    "ContactService.rescheduleCampaignStep": 3,
    # Untyped strings are data, whitespace included; member names are stripped.
    "ContactService.runActionSequence": [
        {
            "Action": "\n                    Apply/Remove Tag\n                  ",
            "Message": "\n                    tags applied to Contact: Nurture Subscriber\n                  ",
            "IsError": False,
        }
    ],
    "ContactService.addWithDupCheck": 40,
    "ContactService.update": 16,
}


@pytest.mark.parametrize("method", sorted(EXPECTED_SAMPLES))
def test_every_documented_sample_response_decodes_to_its_values(method):
    body = (SAMPLES / f"{method}.response.xml").read_bytes()
    result = codec.decode_response(body, method)
    assert result == EXPECTED_SAMPLES[method]
    assert type(result) is type(EXPECTED_SAMPLES[method])


def test_the_document_has_no_resume_campaign_sample_and_its_stub_is_malformed():
    body = (SAMPLES / "ContactService.resumeCampaignForContact.response.xml").read_bytes()
    with pytest.raises(KeapMalformedResponse):
        codec.decode_response(body, "ContactService.resumeCampaignForContact")


def test_samples_cover_every_response_in_the_document():
    assert {p.name.split(".response")[0] for p in SAMPLES.glob("*.response.xml")} == set(EXPECTED_SAMPLES) | {
        "ContactService.resumeCampaignForContact"
    }


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.request.xml")), ids=lambda p: p.name)
def test_every_documented_sample_request_can_be_sent_by_the_encoder(path):
    params, method = xmlrpc.client.loads(path.read_bytes(), use_builtin_types=True)
    ours = codec.encode_call(method, params)
    assert xmlrpc.client.loads(ours, use_builtin_types=True) == (params, method)


# ---------------------------------------------------------------- types and Keap's quirks


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        ("plain", "plain"),
        ("  padded \n", "  padded \n"),
        ("\n", "\n"),
        ("<string>typed</string>", "typed"),
        ("<string>  spaced  </string>", "  spaced  "),
        ("<string></string>", ""),
        ("<string/>", ""),
        ("", ""),
        ("a &amp; b &lt;c&gt; &#13;", "a & b <c> \r"),
        ("<![CDATA[<raw> & ]]>", "<raw> & "),
        ("Zoë 🎉 日本", "Zoë 🎉 日本"),
    ],
)
def test_strings_typed_or_untyped_keep_their_text_verbatim(xml, expected):
    assert decode_value(xml) == expected


def test_empty_value_element_is_an_empty_string():
    assert codec.decode_response(b"<methodResponse><params><param><value/></param></params></methodResponse>") == ""


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        ("<int>42</int>", 42),
        ("<i4>-7</i4>", -7),
        ("<i4>\n   3\n  </i4>", 3),
        ("<i8>9007199254740993</i8>", 9007199254740993),
        ("<int>2147483647</int>", 2147483647),
    ],
)
def test_integers_of_every_tag_and_spacing(xml, expected):
    result = decode_value(xml)
    assert result == expected and type(result) is int


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        ("<boolean>1</boolean>", True),
        ("<boolean>0</boolean>", False),
        ("<boolean>\n          1\n        </boolean>", True),
        ("\n  <boolean> 0 </boolean>\n", False),
    ],
)
def test_booleans_with_keaps_surrounding_whitespace(xml, expected):
    assert decode_value(xml) is expected


@pytest.mark.parametrize(("xml", "expected"), [("<double>49.5</double>", 49.5), ("<double> -0.25 </double>", -0.25)])
def test_doubles(xml, expected):
    assert decode_value(xml) == expected


@pytest.mark.parametrize(
    "text",
    ["20141006T20:07:55", "2014-10-06T20:07:55", " 20141006T20:07:55\n"],
)
def test_datetimes_in_keaps_form_and_the_dashed_form_are_naive(text):
    result = decode_value(f"<dateTime.iso8601>{text}</dateTime.iso8601>")
    assert result == datetime(2014, 10, 6, 20, 7, 55)
    assert result.tzinfo is None


def test_base64_including_line_breaks_and_empty():
    assert decode_value("<base64>aGVs\nbG8=</base64>") == b"hello"
    assert decode_value("<base64></base64>") == b""


def test_struct_member_names_are_stripped_and_values_nested():
    xml = """<struct>
      <member><name>
        Id
      </name><value><i4>7</i4></value></member>
      <member><name>Tags</name><value><array><data>
        <value><i4>1</i4></value><value>two</value><value/>
      </data></array></value></member>
      <member><name>Nested</name><value><struct>
        <member><name>deep</name><value><boolean>1</boolean></value></member>
      </struct></value></member>
      <member><name>Empty</name><value></value></member>
    </struct>"""
    assert decode_value(xml) == {"Id": 7, "Tags": [1, "two", ""], "Nested": {"deep": True}, "Empty": ""}


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        ("<struct></struct>", {}),
        ("<struct/>", {}),
        ("<struct>\n   </struct>", {}),
        ("<array><data></data></array>", []),
        ("<array><data/></array>", []),
        ("<array>\n <data>\n </data>\n</array>", []),
        ("<array><data><value>only</value></data></array>", ["only"]),
        (
            "<array><data><value><struct><member><name>a</name><value>b</value></member></struct></value></data></array>",
            [{"a": "b"}],
        ),
    ],
)
def test_empty_and_single_element_containers(xml, expected):
    assert decode_value(xml) == expected


def test_a_stray_nil_decodes_to_none():
    assert decode_value("<nil/>") is None


def test_non_utf8_declared_encoding_is_honoured():
    body = (
        "<?xml version='1.0' encoding='ISO-8859-1'?><methodResponse><params><param><value>Zoë</value>"
        "</param></params></methodResponse>".encode("latin-1")
    )
    assert codec.decode_response(body) == "Zoë"


# ---------------------------------------------------------------- faults


def fault_body(code_xml: str, string_xml: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<methodResponse>
  <fault>
    <value>
      <struct>
        <member><name>faultCode</name><value>{code_xml}</value></member>
        <member><name>faultString</name><value>{string_xml}</value></member>
      </struct>
    </value>
  </fault>
</methodResponse>""".encode()


def test_a_fault_is_raised_as_its_category_with_code_and_string():
    with pytest.raises(KeapFault) as caught:
        codec.decode_response(
            fault_body("<i4>6</i4>", "[Loading]Error loading follow-up sequence"), "ContactService.addToCampaign"
        )
    err = caught.value
    assert (err.code, err.message, err.method) == (
        6,
        "[Loading]Error loading follow-up sequence",
        "ContactService.addToCampaign",
    )
    assert err.fault_code == 6 and err.fault_string == err.message
    assert err.error_class == "KeapLoadingError" and not err.transient


def test_a_transient_fault_keeps_its_flag():
    with pytest.raises(KeapFault) as caught:
        codec.decode_response(
            fault_body("<int>\n 4\n</int>", "<string>[DatabaseError]Error returning results</string>")
        )
    assert caught.value.error_class == "KeapDatabaseError"
    assert caught.value.transient and not caught.value.maybe_delivered


def test_a_fault_with_an_unknown_category_and_code_is_a_plain_keap_fault():
    with pytest.raises(KeapFault) as caught:
        codec.decode_response(fault_body("<i4>99</i4>", "[Novel]Something new"))
    assert caught.value.error_class == "KeapFault"
    assert caught.value.code == 99


# ---------------------------------------------------------------- unsafe and malformed bodies

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<methodResponse><params><param><value>&lol9;</value></param></params></methodResponse>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<methodResponse><params><param><value>&xxe;</value></param></params></methodResponse>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE methodResponse SYSTEM "http://127.0.0.1:9/evil.dtd">
<methodResponse><params><param><value>x</value></param></params></methodResponse>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]>
<methodResponse><params><param><value>x</value></param></params></methodResponse>"""

EMPTY_DOCTYPE = b"""<?xml version="1.0"?><!DOCTYPE methodResponse>
<methodResponse><params><param><value>x</value></param></params></methodResponse>"""


@pytest.mark.parametrize(
    "body",
    [BILLION_LAUGHS, XXE, EXTERNAL_DTD, PARAMETER_ENTITY, EMPTY_DOCTYPE],
    ids=["billion-laughs", "xxe", "external-dtd", "parameter-entity", "bare-doctype"],
)
def test_doctype_and_entity_bodies_are_refused_unexpanded(body):
    with pytest.raises(KeapUnsafeResponse) as caught:
        codec.decode_response(body, "ContactService.load")
    err = caught.value
    assert isinstance(err, KeapError)
    assert not err.transient
    assert err.method == "ContactService.load"
    assert "DOCTYPE" in str(err)
    assert "lol" not in str(err) and "root:" not in str(err)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml at all",
        b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        b"<?xml version='1.0'?><methodResponse><params><param><value><i4>1</i4>",
        b"<methodResponse></methodResponse>",
        b"<methodResponse>\n</methodResponse>",
        b"<methodResponse><params><param><value><i4>abc</i4></value></param></params></methodResponse>",
        b"<methodResponse><params><param><value><boolean>2</boolean></value></param></params></methodResponse>",
        b"<methodResponse><params><param><value><dateTime.iso8601>yesterday</dateTime.iso8601></value>"
        b"</param></params></methodResponse>",
        b"<methodResponse><params><param><value><money>1</money></value></param></params></methodResponse>",
        b"<methodResponse><params><param><value><i4/></value></param></params></methodResponse>",
        b"<methodResponse><params><param><value><struct><member><value>x</value></member></struct></value>"
        b"</param></params></methodResponse>",
        b"<methodResponse><params><param><value><struct><member><name>a</name><value>1</value><value>2</value>"
        b"</member></struct></value></param></params></methodResponse>",
        b"<methodResponse><params><param><value><base64>!!!</base64></value></param></params></methodResponse>",
        b"<methodResponse><fault><value><struct></struct></value></fault></methodResponse>",
        b"<methodResponse><fault><value>oops</value></fault></methodResponse>",
        b"<methodResponse><params><param><value>1</value></param><param><value>2</value></param></params>"
        b"</methodResponse>",
    ],
)
def test_bodies_that_are_not_a_readable_response_are_malformed_and_transient(body):
    with pytest.raises(KeapMalformedResponse) as caught:
        codec.decode_response(body, "ContactService.load")
    assert caught.value.transient and caught.value.maybe_delivered
    assert caught.value.method == "ContactService.load"


def test_absurd_nesting_is_malformed_not_a_crash():
    depth = 3000
    body = response("<array><data><value>" * depth + "x" + "</value></data></array>" * depth)
    with pytest.raises(KeapMalformedResponse):
        codec.decode_response(body)


# ---------------------------------------------------------------- encoding


def roundtrip(*params):
    body = codec.encode_call("ContactService.add", params)
    assert body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    got, method = xmlrpc.client.loads(body, use_builtin_types=True)
    assert method == "ContactService.add"
    return got


def test_encodes_every_type_keap_accepts():
    moment = datetime(2026, 11, 26, 10, 0, 5)
    params = (
        "key",
        {"s": "x", "b": True, "i": -5, "f": 49.5, "d": moment, "raw": b"\x00\xff", "l": [1, "a"], "t": {}, "e": []},
    )
    assert roundtrip(*params) == params


def test_tuples_are_arrays_and_dates_are_midnight_datetimes():
    assert roundtrip((1, 2), date(1990, 5, 17)) == ([1, 2], datetime(1990, 5, 17))


def test_datetimes_use_keaps_compact_form():
    body = codec.encode_call("m", [datetime(2024, 1, 2, 3, 4, 5), datetime(5, 6, 7, 8, 9, 10)])
    assert b"<dateTime.iso8601>20240102T03:04:05</dateTime.iso8601>" in body
    assert b"<dateTime.iso8601>00050607T08:09:10</dateTime.iso8601>" in body


def test_strings_are_escaped_and_carriage_returns_survive():
    text = "Tom & Jerry <tom@example.com>\r\nline 2\t\u00e9\U0001f600"
    body = codec.encode_call("m", [text])
    assert b"&amp;" in body and b"&lt;" in body and b"&gt;" in body and b"&#13;" in body
    assert b"\r" not in body
    assert xmlrpc.client.loads(body)[0] == (text,)
    assert codec.decode_response(response(body.split(b"<value>")[1].split(b"</value>")[0].decode())) == text


def test_booleans_are_not_integers_and_ints_at_the_edges_of_i4_pass():
    assert roundtrip(True, False, 2**31 - 1, -(2**31)) == (True, False, 2**31 - 1, -(2**31))
    body = codec.encode_call("m", [True, 1])
    assert b"<boolean>1</boolean>" in body and b"<int>1</int>" in body


def test_subclasses_of_supported_types_encode_as_their_base():
    class Colour(enum.IntEnum):
        RED = 3

    class Name(str):
        pass

    assert roundtrip(Colour.RED, Name("ada"), OrderedDict(a=1)) == (3, "ada", {"a": 1})
    assert b"<int>3</int>" in codec.encode_call("m", [Colour.RED])


def test_method_name_is_escaped():
    body = codec.encode_call("a&b", [])
    assert xmlrpc.client.loads(body) == ((), "a&b")


def encode_error(*params) -> KeapRequestError:
    with pytest.raises(KeapRequestError) as caught:
        codec.encode_call("ContactService.update", ("key", *params))
    assert caught.value.error_class == "KeapEncodeError"
    return caught.value


@pytest.mark.parametrize(
    ("params", "path", "words"),
    [
        ((1, {"Id": 2**31}), 'params[2]["Id"]', "32-bit"),
        (({"Id": -(2**31) - 1},), 'params[1]["Id"]', "32-bit"),
        (({"_OrderTotal": float("nan")},), 'params[1]["_OrderTotal"]', "no XML-RPC form"),
        (({"x": [1, float("inf")]},), 'params[1]["x"][1]', "no XML-RPC form"),
        (({"Company": None},), 'params[1]["Company"]', "<nil/>"),
        ((None,), "params[1]", "<nil/>"),
        (({"Notes": "bell\x07"},), 'params[1]["Notes"]', "U+0007"),
        (({"Notes": "nul\x00"},), 'params[1]["Notes"]', "U+0000"),
        (({"Notes": "half \ud800 surrogate"},), 'params[1]["Notes"]', "U+D800"),
        (({"bad\x0bkey": 1},), "params[1]", "U+000B"),
        (({5: "x"},), "params[1][5]", "not a string"),
        (({"tags": {1, 2}},), 'params[1]["tags"]', "set values have no XML-RPC form"),
        (({"when": datetime(2024, 1, 1, tzinfo=UTC)},), 'params[1]["when"]', "timezone"),
        (({"when": datetime(2024, 1, 1, 0, 0, 0, 5)},), 'params[1]["when"]', "microseconds"),
        (([[object()]],), "params[1][0][0]", "object values"),
    ],
)
def test_unencodable_values_name_their_path(params, path, words):
    err = encode_error(*params)
    assert str(err).startswith(f"ContactService.update: {path}")
    assert words in str(err)


def test_encode_errors_are_permanent_value_errors_that_do_not_echo_values():
    err = encode_error({"Email": "ada@example.com", "Id": 2**40})
    assert isinstance(err, ValueError) and isinstance(err, KeapError)
    assert not err.transient
    assert str(2**40) not in str(err) and "ada@example.com" not in str(err)


def test_recursive_structures_are_refused_cleanly():
    loop: list = []
    loop.append(loop)
    err = encode_error(loop)
    assert "recursive" in str(err)


def test_malformed_messages_do_not_echo_response_data():
    body = response("<struct><member><name>Id</name><value><i4>ada@example.com</i4></value></member></struct>")
    with pytest.raises(KeapMalformedResponse) as caught:
        codec.decode_response(body, "ContactService.load")
    assert "ada@example.com" not in str(caught.value) and "ValueError" in str(caught.value)
    with pytest.raises(KeapMalformedResponse, match="unexpected element 'money'"):
        codec.decode_response(response("<money>1</money>"))
