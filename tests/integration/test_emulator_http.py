"""The emulator's HTTP surface: XML-RPC as a third-party client sees it, auth, wire style, inspection."""

import http.client
import json
import re
import urllib.error
import urllib.request
import xmlrpc.client
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

KEY = "test-key-9f2c"


@pytest.fixture
def keap(emu):
    return xmlrpc.client.ServerProxy(emu.url, headers=[("X-Keap-API-Key", KEY)]).ContactService


def post(url, body: bytes, headers=None):
    """POST raw bytes; returns (status, headers, body) whatever the status."""
    request = urllib.request.Request(url, body, {"Content-Type": "text/xml", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def call_xml(method: str, *values: str) -> bytes:
    params = "".join(f"<param><value>{v}</value></param>" for v in values)
    return (
        f"<?xml version='1.0' encoding='UTF-8'?><methodCall><methodName>{method}</methodName>"
        f"<params>{params}</params></methodCall>"
    ).encode()


# ------------------------------------------------------------------------------------------- the fifteen methods


def test_all_fifteen_methods_with_the_documented_parameter_shapes(emu, keap):
    cid = keap.add("privateKey", {"FirstName": "John", "LastName": "Doe", "Email": "there_he_go@itsjohndoe.com"})
    assert isinstance(cid, int) and cid > 0
    dup = keap.addWithDupCheck(
        "privateKey", {"FirstName": "Ron", "LastName": "Doe", "Email": "ron@x.com"}, "EmailAndName"
    )
    assert isinstance(dup, int) and dup != cid
    assert keap.update("privateKey", cid, {"Company": "Doe & Sons"}) == cid
    assert keap.addToGroup("privateKey", cid, 100) is True
    assert keap.removeFromGroup("privateKey", cid, 100) is True
    assert keap.addToCampaign("privateKey", cid, 11) is True
    assert keap.getNextCampaignStep("privateKey", cid, 11) == 1101
    assert keap.rescheduleCampaignStep("privateKey", [cid, dup], 1101) == 1
    assert keap.pauseCampaign("privateKey", cid, 11) is True
    assert keap.resumeCampaignForContact("privateKey", cid, 11) is True
    assert keap.removeFromCampaign("privateKey", cid, 11) is True
    actions = keap.runActionSequence("privateKey", cid, 21)
    assert actions == [
        {
            "Action": "Apply/Remove Tag",
            "Message": "tags applied to Contact: Customer: first purchase",
            "IsError": False,
        }
    ]
    found = keap.findByEmail("privateKey", "THERE_HE_GO@itsjohndoe.com", ["Id", "FirstName", "LastName"])
    assert found == [{"Id": cid, "FirstName": "John", "LastName": "Doe"}]
    loaded = keap.load("privateKey", cid, ["Id", "Company", "Groups", "DateCreated", "Phone1"])
    assert loaded["Company"] == "Doe & Sons"
    assert loaded["Groups"] == "201"
    assert isinstance(loaded["DateCreated"], xmlrpc.client.DateTime)
    assert "Phone1" not in loaded
    assert keap.merge("privateKey", cid, dup) is True
    assert emu.model.get_contact(dup) is None
    methods = {c["method"] for c in emu.calls()}
    assert len(methods) == 15
    assert all(c["http_status"] == 200 and c["applied"] for c in emu.calls())


def test_runtime_params_struct_is_accepted_by_run_action_sequence(keap, emu):
    cid = keap.add("k", {"Email": "a@example.com"})
    assert keap.runActionSequence("k", cid, 21, {"note": "x"})[0]["IsError"] is False
    assert emu.model.action_set_runs(cid)[0]["params"] == {"note": "x"}


def test_faults_arrive_as_xmlrpc_faults(keap):
    with pytest.raises(xmlrpc.client.Fault) as excinfo:
        keap.update("k", 48872, {"FirstName": "x"})
    assert excinfo.value.faultCode == 5
    assert excinfo.value.faultString == "[RecordNotFound]Unable to perform update. Record not found for Id:48872"
    with pytest.raises(xmlrpc.client.Fault) as excinfo:
        keap.addToCampaign("k", keap.add("k", {"FirstName": "a"}), 99)
    assert (excinfo.value.faultCode, excinfo.value.faultString) == (
        6,
        "[Loading]Error loading follow-up sequence",
    )


def test_unknown_method_is_no_such_handler(emu):
    proxy = xmlrpc.client.ServerProxy(emu.url, headers=[("X-Keap-API-Key", KEY)])
    with pytest.raises(xmlrpc.client.Fault) as excinfo:
        proxy.APIEmailService.sendTemplate("k")
    assert (excinfo.value.faultCode, excinfo.value.faultString) == (
        0,
        "No such handler: APIEmailService.sendTemplate",
    )


@pytest.mark.parametrize(
    "args",
    [("k", 1), ("k", "1", 100), (1, 1, 100), ("k", 1, 100, 5), ("k", True, 100)],
    ids=["too-few", "string-id", "int-key", "too-many", "bool-id"],
)
def test_wrong_parameter_count_or_type_is_invalid_parameter(keap, emu, args):
    emu.model.add({"FirstName": "a"})
    with pytest.raises(xmlrpc.client.Fault) as excinfo:
        keap.addToGroup(*args)
    assert excinfo.value.faultCode == 12
    assert excinfo.value.faultString.startswith(
        "[InvalidParameter]Invalid parameters for ContactService.addToGroup"
        "(String privateKey, int contactId, int groupId): got ("
    )
    assert emu.model.contact_tags(1) == set()


# ------------------------------------------------------------------------------------------- parsing refusals


def test_nil_is_refused_like_keap(emu):
    proxy = xmlrpc.client.ServerProxy(emu.url, headers=[("X-Keap-API-Key", KEY)], allow_none=True)
    with pytest.raises(xmlrpc.client.Fault) as excinfo:
        proxy.ContactService.add("k", {"FirstName": "Ada", "Company": None})
    assert (excinfo.value.faultCode, excinfo.value.faultString) == (
        0,
        "Failed to parse XML-RPC request: Unknown type: nil",
    )
    assert emu.model.contact_ids() == []


def test_doctype_and_entities_are_refused(emu):
    body = (
        b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x "boom">]><methodCall><methodName>ContactService.add'
        b"</methodName><params><param><value>k</value></param><param><value><struct><member><name>FirstName"
        b"</name><value>&x;</value></member></struct></value></param></params></methodCall>"
    )
    status, _, raw = post(emu.url, body, {"X-Keap-API-Key": KEY})
    assert status == 200
    with pytest.raises(xmlrpc.client.Fault) as excinfo:
        xmlrpc.client.loads(raw)
    assert excinfo.value.faultCode == 0
    assert excinfo.value.faultString.startswith("Failed to parse XML-RPC request: DOCTYPE is disallowed")
    assert emu.model.contact_ids() == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "Failed to parse XML-RPC request: Premature end of file."),
        (b"<methodCall><methodName>ContactService.add", "Failed to parse XML-RPC request: "),
    ],
)
def test_unparseable_bodies_are_code_0_faults(emu, body, expected):
    status, _, raw = post(emu.url, body, {"X-Keap-API-Key": KEY})
    assert status == 200
    with pytest.raises(xmlrpc.client.Fault) as excinfo:
        xmlrpc.client.loads(raw)
    assert excinfo.value.faultCode == 0
    assert excinfo.value.faultString.startswith(expected)


def test_docs_style_int_and_string_tags_are_accepted(emu):
    emu.model.add({"FirstName": "a"})
    body = call_xml("ContactService.addToGroup", "<string>privateKey</string>", "<int>1</int>", "<i4>100</i4>")
    status, _, raw = post(emu.url, body, {"X-Keap-API-Key": KEY})
    assert status == 200
    assert raw.endswith(b"<value><boolean>1</boolean></value></param></params></methodResponse>")
    assert emu.model.contact_tags(1) == {100}


# ------------------------------------------------------------------------------------------- wire style


def test_raw_response_uses_untyped_strings_and_i4(emu):
    cid = emu.model.add({"FirstName": "Ron <&> Doe", "Email": "ron@example.com", "LastName": ""})
    body = call_xml(
        "ContactService.findByEmail",
        "privateKey",
        "ron@example.com",
        "<array><data><value>Id</value><value>FirstName</value><value>LastName</value></data></array>",
    )
    status, headers, raw = post(emu.url, body, {"X-Keap-API-Key": KEY})
    assert status == 200
    assert headers["Content-Type"] == "text/xml;charset=UTF-8"
    assert raw == (
        b'<?xml version="1.0" encoding="UTF-8"?><methodResponse><params><param><value><array><data>'
        b"<value><struct>"
        b"<member><name>FirstName</name><value>Ron &lt;&amp;&gt; Doe</value></member>"
        b"<member><name>Id</name><value><i4>" + str(cid).encode() + b"</i4></value></member>"
        b"</struct></value></data></array></value></param></params></methodResponse>"
    )


def test_raw_dates_doubles_and_faults(emu):
    cid = emu.model.add({"Email": "a@example.com", "_OrderTotal": "49.00"})
    body = call_xml(
        "ContactService.load",
        "k",
        f"<i4>{cid}</i4>",
        "<array><data><value>DateCreated</value><value>_OrderTotal</value></data></array>",
    )
    _, _, raw = post(emu.url, body, {"X-Keap-API-Key": KEY})
    assert re.search(rb"<value><dateTime\.iso8601>\d{8}T\d\d:\d\d:\d\d</dateTime\.iso8601></value>", raw)
    assert b"<value><double>49.0</double></value>" in raw
    _, _, raw = post(
        emu.url,
        call_xml("ContactService.load", "k", "<i4>999</i4>", "<array><data/></array>"),
        {"X-Keap-API-Key": KEY},
    )
    assert raw == (
        b'<?xml version="1.0" encoding="UTF-8"?><methodResponse><fault><value><struct>'
        b"<member><name>faultCode</name><value><i4>5</i4></value></member>"
        b"<member><name>faultString</name><value>[RecordNotFound]Unable to perform load. Record not found for "
        b"Id:999</value></member></struct></value></fault></methodResponse>"
    )


def test_datetimes_sent_by_a_client_round_trip(keap):
    cid = keap.add("k", {"Email": "a@example.com", "Birthday": datetime(1990, 5, 17, 0, 0, 0)})
    assert str(keap.load("k", cid, ["Birthday"])["Birthday"]) == "19900517T00:00:00"


# ------------------------------------------------------------------------------------------- auth


def test_wrong_or_missing_key_is_a_401_from_the_proxy(emu):
    for headers in ([("X-Keap-API-Key", "wrong-key-123")], [], [("Authorization", "Bearer wrong-key-123")]):
        proxy = xmlrpc.client.ServerProxy(emu.url, headers=headers)
        with pytest.raises(xmlrpc.client.ProtocolError) as excinfo:
            proxy.ContactService.add("k", {"FirstName": "x"})
        assert excinfo.value.errcode == 401
    status, headers, raw = post(emu.url, call_xml("ContactService.add", "k", "<struct/>"), {"X-Keap-API-Key": "no"})
    assert status == 401
    assert headers["Content-Type"] == "application/json"
    assert json.loads(raw) == {
        "code": "401",
        "message": "Invalid Access Token",
        "status": "Unauthorized",
        "details": None,
    }
    assert emu.model.contact_ids() == []
    assert [c["http_status"] for c in emu.calls()] == [401, 401, 401, 401]
    assert not any(c["applied"] for c in emu.calls())


def test_bearer_works_and_the_first_param_is_a_placeholder(emu):
    proxy = xmlrpc.client.ServerProxy(emu.url, headers=[("Authorization", f"Bearer {KEY}")])
    assert proxy.ContactService.add("backwards-compatability", {"FirstName": "Ada"}) == 1
    proxy = xmlrpc.client.ServerProxy(emu.url, headers=[("x-keap-api-key", KEY)])
    assert proxy.ContactService.add("", {"FirstName": "Bob"}) == 2


def test_keys_never_appear_in_answers_or_the_call_log(emu):
    secret = "KeapAK-do-not-echo-me"
    status, _, raw = post(emu.url, call_xml("ContactService.add", secret, "<struct/>"), {"X-Keap-API-Key": secret})
    assert status == 401 and secret.encode() not in raw
    # a client that also puts its real key in the first param and sends an unparseable body
    body = call_xml("ContactService.add", secret, "<struct><member><name>x</name><value><i4>zz</i4></value>")
    status, _, raw = post(emu.url, body, {"X-Keap-API-Key": KEY})
    assert status == 200 and secret.encode() not in raw and KEY.encode() not in raw
    log = json.dumps(emu.calls())
    assert secret not in log and KEY not in log
    assert KEY not in repr(emu)


# ------------------------------------------------------------------------------------------- HTTP details


@pytest.mark.parametrize("path", ["/crm/xmlrpc/v1", "/crm/xmlrpc", "/api/xmlrpc", "/crm/xmlrpc/"])
def test_every_keap_path_serves_xmlrpc(emu, path):
    proxy = xmlrpc.client.ServerProxy(emu.base_url + path, headers=[("X-Keap-API-Key", KEY)])
    assert proxy.ContactService.add("k", {"FirstName": "Ada"}) == 1


def test_wrong_verb_on_the_rpc_path_is_405(emu):
    for method in ("GET", "PUT", "DELETE"):
        request = urllib.request.Request(emu.url, method=method, headers={"X-Keap-API-Key": KEY})
        with pytest.raises(urllib.error.HTTPError) as excinfo:
            urllib.request.urlopen(request, timeout=5)
        assert excinfo.value.code == 405
        assert excinfo.value.headers["Allow"] == "POST"


def test_connections_are_kept_alive(emu):
    conn = http.client.HTTPConnection(*emu.address, timeout=5)
    try:
        for _ in range(3):
            conn.request(
                "POST",
                "/crm/xmlrpc/v1",
                call_xml("ContactService.add", "k", "<struct/>"),
                {"X-Keap-API-Key": KEY},
            )
            response = conn.getresponse()
            assert response.status == 200
            assert response.getheader("Connection") != "close"
            response.read()
        first_socket = conn.sock
        conn.request("GET", "/_emulator/calls")
        assert json.loads(conn.getresponse().read())[2]["applied"] is True
        assert conn.sock is first_socket
    finally:
        conn.close()
    assert emu.model.contact_ids() == [1, 2, 3]


def test_chunked_request_bodies_are_read(emu):
    body = call_xml(
        "ContactService.add",
        "k",
        "<struct><member><name>FirstName</name><value>Chunk</value></member></struct>",
    )
    conn = http.client.HTTPConnection(*emu.address, timeout=5)
    try:
        conn.request(
            "POST",
            "/crm/xmlrpc/v1",
            iter([body[:40], body[40:]]),
            {"X-Keap-API-Key": KEY},
            encode_chunked=True,
        )
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    assert emu.model.get_contact(1)["FirstName"] == "Chunk"


def test_concurrent_dup_checks_for_one_email_make_one_contact(emu):
    def upsert(i):
        proxy = xmlrpc.client.ServerProxy(emu.url, headers=[("X-Keap-API-Key", KEY)])
        return proxy.ContactService.addWithDupCheck("k", {"Email": "same@example.com", "City": f"c{i}"}, "Email")

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(upsert, range(16)))
    assert set(ids) == {1}
    assert emu.model.find_ids_by_email("same@example.com") == [1]


def test_the_server_binds_loopback_only(emu):
    assert emu.address[0] == "127.0.0.1"
    assert emu.url.startswith("http://127.0.0.1:") and emu.url.endswith("/crm/xmlrpc/v1")


# ------------------------------------------------------------------------------------------- inspection and control


def test_call_log_records_status_fault_and_application(emu, keap):
    keap.add("k", {"FirstName": "Ada"})
    with pytest.raises(xmlrpc.client.Fault):
        keap.load("k", 99, ["Id"])
    first, second = emu.calls()
    assert (
        first["method"],
        first["http_status"],
        first["fault_code"],
        first["applied"],
        first["injected"],
    ) == ("ContactService.add", 200, None, True, None)
    assert (second["method"], second["fault_code"], second["applied"]) == ("ContactService.load", 5, False)
    assert isinstance(first["at"], float)


def test_inspection_endpoints_need_no_key(emu, keap):
    cid = keap.add("k", {"FirstName": "Ada", "Email": "ada@example.com"})
    keap.addToGroup("k", cid, 100)
    keap.addToCampaign("k", cid, 12)
    state = get_json(emu.base_url + "/_emulator/state")
    assert state["contacts"][0]["FirstName"] == "Ada"
    assert state["contacts"][0]["tags"] == [100]
    assert state["enrolments"][0]["sequence_id"] == 12
    assert [c["method"] for c in get_json(emu.base_url + "/_emulator/calls")] == [
        "ContactService.add",
        "ContactService.addToGroup",
        "ContactService.addToCampaign",
    ]
    view = get_json(f"{emu.base_url}/_emulator/contacts/{cid}")
    assert view["contact"]["Groups"] == "100"
    assert view["tags"] == [100]
    assert view["enrolments"][0]["next_step_id"] == 1201
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(emu.base_url + "/_emulator/contacts/999", timeout=5)
    assert excinfo.value.code == 404
    with urllib.request.urlopen(emu.base_url + "/", timeout=5) as response:
        index = response.read().decode()
    for link in (
        "/_emulator/state",
        "/_emulator/calls",
        "/_emulator/contacts/",
        "/_emulator/faults",
        "/_emulator/quota",
        "/_emulator/reset",
    ):
        assert link in index


def test_reset_over_http_returns_to_the_seeded_world(emu, keap):
    keap.add("k", {"FirstName": "Ada"})
    status, _, raw = post(emu.base_url + "/_emulator/reset", b"")
    assert status == 200 and json.loads(raw) == {"reset": True}
    assert emu.model.contact_ids() == []
    assert emu.calls() == []


def test_a_client_hanging_up_is_not_reported_as_an_emulator_error(emu, capsys):
    # A function killed mid-call leaves the emulator writing to a closed socket: routine, not a bug to print.
    httpd = emu._httpd
    try:
        raise BrokenPipeError(32, "Broken pipe")
    except BrokenPipeError:
        httpd.handle_error(None, ("127.0.0.1", 1))
    assert capsys.readouterr().err == ""
    try:
        raise ValueError("a real emulator bug")
    except ValueError:
        httpd.handle_error(None, ("127.0.0.1", 1))
    assert "a real emulator bug" in capsys.readouterr().err
