"""A Keap answer holding characters XML 1.0 forbids, over HTTP through the client: read, once, not retried.

The emulator drops such characters when it writes XML, as any XML writer should; Keap has been seen not to
(a `&#11;` in a contact's field). So this answer comes from a stand-in on 127.0.0.1 that sends Keap's bytes.
"""

import http.server
import threading
from collections.abc import Iterator

import pytest

from keap_relay.keap import ClientOptions, ContactService
from keap_relay.keap.errors import KeapMalformedResponse

LOAD_WITH_VT = (
    b"<?xml version='1.0' encoding='UTF-8'?><methodResponse><params><param><value><struct>"
    b"<member><name>Id</name><value><i4>7</i4></value></member>"
    b"<member><name>Company</name><value>Acme&#11;Ltd</value></member>"
    b"</struct></value></param></params></methodResponse>"
)


class _Canned(http.server.BaseHTTPRequestHandler):
    bodies: list[bytes] = []
    posts: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.posts.append(self.path)
        body = self.bodies[min(len(self.posts), len(self.bodies)) - 1]
        self.send_response(200)
        self.send_header("Content-Type", "text/xml; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def keap() -> Iterator[type[_Canned]]:
    handler = type("Handler", (_Canned,), {"bodies": [], "posts": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    handler.url = f"http://127.0.0.1:{server.server_port}/crm/xmlrpc/v1"
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


def test_the_answer_is_read_with_the_character_dropped_in_one_call(keap) -> None:
    keap.bodies = [LOAD_WITH_VT]
    contact = ContactService(keap.url, "key").load(7, ["Id", "Company"])
    assert contact == {"Id": 7, "Company": "AcmeLtd"}
    assert len(keap.posts) == 1  # before: KeapMalformedResponse, retried


def test_a_truncated_answer_stays_malformed(keap) -> None:
    keap.bodies = [LOAD_WITH_VT[:-30]]
    waits: list[float] = []
    with pytest.raises(KeapMalformedResponse):
        ContactService(keap.url, "key", options=ClientOptions(sleep=waits.append)).load(7, ["Id", "Company"])
    assert len(keap.posts) > 1 and waits  # still a transient error, retried as before
