"""The HTTP transport against the emulator: keep-alive pool, idle expiry, dead sockets, URL handling."""

import socket
import threading
import xmlrpc.client

import pytest

from keap_emulator.server import DEFAULT_API_KEY
from keap_relay.keap.errors import KeapRequestError
from keap_relay.keap.transport import HTTPTransport, _peer_closed

KEY = DEFAULT_API_KEY
HEADERS = {"Content-Type": "text/xml; charset=UTF-8", "X-Keap-API-Key": KEY}
LOAD = xmlrpc.client.dumps(("placeholder", 1, ["Id"]), "ContactService.load").encode()


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def counting(transport):
    connects = []
    original = transport._connect

    def connect(method):
        connects.append(method)
        return original(method)

    transport._connect = connect
    return connects


def test_post_returns_status_lower_cased_headers_and_body(emu):
    transport = HTTPTransport(emu.url, headers=HEADERS)
    response = transport.post(LOAD, method="ContactService.load")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert b"<methodResponse>" in response.body


def test_non_200_answers_are_returned_not_raised(emu):
    transport = HTTPTransport(emu.url, headers={**HEADERS, "X-Keap-API-Key": "wrong"})
    assert transport.post(LOAD).status == 401


def test_connections_idle_longer_than_the_limit_are_discarded(emu):
    clock = Clock()
    transport = HTTPTransport(emu.url, headers=HEADERS, idle_timeout=30.0, clock=clock)
    connects = counting(transport)
    transport.post(LOAD)
    clock.now += 29.0
    transport.post(LOAD)
    assert len(connects) == 1
    clock.now += 31.0
    transport.post(LOAD)
    assert len(connects) == 2


def test_the_pool_keeps_at_most_pool_size_idle_connections(emu):
    transport = HTTPTransport(emu.url, headers=HEADERS, pool_size=2)
    barrier = threading.Barrier(5)
    statuses = []

    def work():
        barrier.wait()
        statuses.append(transport.post(LOAD).status)

    threads = [threading.Thread(target=work) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 5
    assert len(transport._idle) <= 2
    transport.close()
    assert transport._idle == []


def test_a_socket_closed_by_the_peer_is_detected():
    a, b = socket.socketpair()
    with a, b:

        class Conn:
            sock = a

        assert _peer_closed(Conn()) is False
        b.close()
        assert _peer_closed(Conn()) is True


@pytest.mark.parametrize("url", ["ftp://api.example.com/x", "api.example.com/crm/xmlrpc/v1", "https:///nohost"])
def test_urls_other_than_http_or_https_are_refused(url):
    with pytest.raises(KeapRequestError):
        HTTPTransport(url, headers=HEADERS)


def test_https_urls_use_tls_on_443_and_the_repr_hides_the_query():
    transport = HTTPTransport("https://user:pw@api.example.com/crm/xmlrpc/v1?access_token=abc", headers=HEADERS)
    assert (transport._host, transport._port) == ("api.example.com", 443)
    assert transport._headers["Host"] == "api.example.com"
    assert "abc" not in repr(transport) and "pw" not in repr(transport)
