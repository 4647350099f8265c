"""moto's WSGI application served by waitress on 127.0.0.1, so boto3's connections stay open between calls.

`python -m moto.server` and `ThreadedMotoServer` run moto on werkzeug's development server, which closes the
connection after every answer: each boto3 call would pay a TCP connect the deployed functions never pay
against AWS. waitress serves the same application (`DomainDispatcherApplication` over `create_backend_app`)
with HTTP/1.1 keep-alive. (moto's own request handler keeps headers with underscores, which waitress drops;
only S3 metadata uses them, and the local stack has no S3.)

    python -m keap_relay_local.motohttp -H 127.0.0.1 -p 5000
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Worker threads: an SQS long poll holds one for its whole wait, and every poller of a stack long-polls.
THREADS = 32
# A connection with no request for this long is closed; longer than any SQS long poll (20 s).
IDLE_TIMEOUT = 120
STOP_GRACE = 5.0  # how long stop() lets requests in flight finish


def _loopback(ip_address: str) -> str:
    try:
        if ipaddress.IPv4Address(ip_address).is_loopback:
            return ip_address
    except ValueError:
        pass
    raise ValueError(f"motohttp binds an IPv4 loopback address only, not {ip_address!r}")


class MotoHTTPServer:
    """Drop-in for moto's `ThreadedMotoServer` (start/stop/get_host_and_port), with kept-alive connections.

    `port=0` picks a free port; `get_host_and_port()` tells which. `app` defaults to moto's application.
    """

    def __init__(
        self, ip_address: str = "127.0.0.1", port: int = 0, verbose: bool = False, *, app: WSGIApp | None = None
    ) -> None:
        self._host = _loopback(ip_address)
        self._port = port
        self._verbose = verbose
        self._app = app
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._stop_lock = threading.Lock()

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from waitress.server import create_server

        if self._server is not None:
            raise RuntimeError("already started")
        app = self._app or DomainDispatcherApplication(create_backend_app)
        # Bound here, so a port in use fails start() itself.
        self._server = create_server(
            app, host=self._host, port=self._port, threads=THREADS, channel_timeout=IDLE_TIMEOUT, ident="moto"
        )
        if self._verbose:
            host, port = self.get_host_and_port()
            print(f"moto (keep-alive) on http://{host}:{port}", flush=True)
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, args=(self._server,), name="motohttp", daemon=True)
        self._thread.start()

    def _serve(self, server: Any) -> None:
        """waitress's loop (`server.run()`), one poll at a time until stop() says to end."""
        from waitress import wasyncore

        while not self._stopping:
            wasyncore.loop(timeout=1.0, map=server._map, use_poll=True, count=1)
        with self._stop_lock:  # stop() has pulled the trigger for the last time: its pipe may close now
            wasyncore.close_all(server._map)

    def get_host_and_port(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("call start() first")
        return self._host, int(self._server.effective_port)

    def stop(self) -> None:
        """Stop listening, let requests in flight finish (up to STOP_GRACE), close every connection."""
        from waitress import wasyncore

        server, self._server = self._server, None
        if server is None:
            return
        # Sockets are closed in the loop's own thread; the trigger's thunk runs there.
        server.trigger.pull_trigger(lambda: wasyncore.dispatcher.close(server))
        server.task_dispatcher.shutdown(timeout=STOP_GRACE)
        with self._stop_lock:
            self._stopping = True
            server.pull_trigger()  # wakes the loop, which then closes everything
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def main(argv: list[str] | None = None) -> None:
    """`python -m keap_relay_local.motohttp`: moto on loopback with keep-alive, until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m keap_relay_local.motohttp", description=__doc__.split("\n")[0])
    parser.add_argument("-H", "--host", default="127.0.0.1", help="IPv4 loopback address to bind")
    parser.add_argument("-p", "--port", type=int, default=int(os.environ.get("MOTO_PORT", 5000)), help="0: any")
    parser.add_argument("-v", "--verbose", action="store_true", help="waitress's log at debug level")
    args = parser.parse_args(argv)
    try:
        server = MotoHTTPServer(args.host, args.port, verbose=True)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(message)s")

    from .moto_sqs_move import install as install_message_move_tasks

    # The actions moto lacks are patched into this process, the one that serves moto, as the local stack does.
    install_message_move_tasks()
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # before start(): the server's threads inherit it
    server.start()
    # moto builds some callback URLs (Lambda, Batch) from MOTO_PORT, which `python -m moto.server` sets too.
    os.environ.setdefault("MOTO_PORT", str(server.get_host_and_port()[1]))
    signal.sigwait(stop_signals)
    server.stop()


if __name__ == "__main__":
    main()
