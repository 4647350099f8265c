"""One function's "container": a process that loads functions/<fn>/app.py and serves POST /invoke.

Run as `python -m keap_relay_local.fnhost --function forms --port 0`; the process prints one
`KEAP_RELAY_FNHOST_READY {"port": ...}` line once it listens. `FunctionHost` is the parent's
handle on such a process: start, invoke, kill, restart.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .runtime import Handler, LambdaContext, error_result, load_handler, local_function_name

READY_PREFIX = "KEAP_RELAY_FNHOST_READY "
FUNCTION_ERROR_HEADER = "X-Amz-Function-Error"

# The only parent variables a function process inherits; Lambda gives a handler a clean environment,
# and not passing the developer's own AWS credentials keeps every boto3 call pointed at moto.
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT", "PYTHONHASHSEED")


class FunctionError(RuntimeError):
    """An invocation that failed the way Lambda reports it: unhandled error, timeout or dead runtime."""

    def __init__(self, function: str, error_type: str, message: str) -> None:
        super().__init__(f"{function}: {error_type}: {message}")
        self.function = function
        self.error_type = error_type


# ---------------------------------------------------------------------------------------------------
# Child side: the runtime inside the "container".


class _Runtime:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = Path(args.root)
        self._handler: Handler | None = None
        self._init_error: BaseException | None = None
        self._lock = threading.Lock()
        self.init()

    def init(self) -> None:
        """Lambda's INIT phase; a failure is retried on the next invoke, as Lambda does."""
        try:
            self._handler = load_handler(self.root, self.args.code_dir, self.args.handler, self.args.function)
            self._init_error = None
        except BaseException as exc:  # any import failure is an init error
            self._init_error = exc
            logging.getLogger(__name__).exception("init failed for %s", self.args.function)

    def invoke(self, event: Any) -> tuple[Any, str | None]:
        with self._lock:
            if self._handler is None:
                self.init()
        if self._handler is None:
            failure = self._init_error or ImportError("no handler")
            return error_result(failure, "Runtime.ImportModuleError"), "Unhandled"
        context = LambdaContext(self.args.lambda_name, self.args.memory, self.args.timeout, self.args.region)
        finished = threading.Event()
        # Lambda ends the sandbox at the Timeout: nothing the handler would do after it (a checkpoint
        # write, an answer) happens. Every invocation then in flight in this process ends with it.
        watchdog = threading.Timer(self.args.timeout, _time_out, (context, finished, self.args.timeout))
        watchdog.daemon = True
        watchdog.start()
        try:
            return self._handler(event, context), None
        except Exception as exc:  # Lambda turns every handler exception into an error result
            traceback_text = "".join(error_result(exc)["stackTrace"])
            print(f"[ERROR] {type(exc).__name__}: {exc}\n{traceback_text}", file=sys.stderr, flush=True)
            return error_result(exc), "Unhandled"
        finally:
            finished.set()
            watchdog.cancel()


def _time_out(context: LambdaContext, finished: threading.Event, timeout: float) -> None:
    """The invocation ran past the function's Timeout: end the process, as Lambda ends the sandbox."""
    if finished.is_set():
        return
    print(f"{context.aws_request_id} Task timed out after {timeout:.2f} seconds", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def _request_handler(runtime: _Runtime) -> type[BaseHTTPRequestHandler]:
    class InvokeHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Keep-alive answers otherwise wait ~40 ms on Nagle + delayed ACK (measured by bench/bench_ingest.py).
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            self._reply(200, {"function": runtime.args.function, "pid": os.getpid()})

        def do_POST(self) -> None:
            if self.path != "/invoke":
                self._reply(404, {"message": "Not Found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                event = json.loads(self.rfile.read(length) or b"null")
            except ValueError as exc:
                self._reply(400, {"errorMessage": f"event is not JSON: {exc}", "errorType": "InvalidRequest"})
                return
            result, function_error = runtime.invoke(event)
            try:
                body = json.dumps(result).encode()
            except (TypeError, ValueError) as exc:
                body = json.dumps(error_result(exc, "Runtime.MarshalError")).encode()
                function_error = "Unhandled"
            self._reply(200, body, function_error)

        def _reply(self, status: int, payload: Any, function_error: str | None = None) -> None:
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if function_error:
                self.send_header(FUNCTION_ERROR_HEADER, function_error)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the gateway and pollers log invocations; per-request lines here would be noise

    return InvokeHandler


def _exit_with_parent(parent_pid: int) -> None:
    """A function process must not outlive the stack that started it, however that stack ended."""
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(0)


def serve(argv: list[str] | None = None) -> None:
    """Entry point of the function process."""
    parser = argparse.ArgumentParser(prog="python -m keap_relay_local.fnhost", description=__doc__)
    parser.add_argument("--function", required=True, help="short name, the folder under functions/")
    parser.add_argument("--root", default=".", help="repository root (holds shared/ and functions/)")
    parser.add_argument("--code-dir", help="function code folder relative to root (default functions/<fn>)")
    parser.add_argument("--handler", default="app.handler")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=30.0, help="the function's Timeout in seconds")
    parser.add_argument("--memory", type=int, default=128)
    parser.add_argument("--lambda-name", help="function name the context reports")
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    args = parser.parse_args(argv)
    args.code_dir = args.code_dir or f"functions/{args.function}"
    args.lambda_name = args.lambda_name or local_function_name(args.function)
    # Lambda's root logger passes warnings and up; a handler's own loggers set their own level.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    runtime = _Runtime(args)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _request_handler(runtime))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    # Ctrl-C reaches the whole process group; the parent stops its functions itself, in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if args.parent_pid:
        threading.Thread(target=_exit_with_parent, args=(args.parent_pid,), daemon=True).start()
    print(READY_PREFIX + json.dumps({"port": server.server_address[1], "pid": os.getpid()}), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


# ---------------------------------------------------------------------------------------------------
# Parent side.


class FunctionHost:
    """Starts, invokes, kills and restarts one function process.

    The process serves its one route with the standard library's HTTP server, not a WSGI server: it is the
    function's cold start, and an import of waitress there would count in every measured start.
    """

    def __init__(
        self,
        function: str,
        *,
        root: Path,
        env: dict[str, str],
        code_dir: str | None = None,
        handler: str = "app.handler",
        timeout: float = 30.0,
        memory: int = 128,
        region: str = "us-east-1",
        start_timeout: float = 60.0,
    ) -> None:
        self.function = function
        self.root = root
        self._env = env
        options = {
            "function": function,
            "root": root,
            "code-dir": code_dir or f"functions/{function}",
            "handler": handler,
            "timeout": timeout,
            "memory": memory,
            "region": region,
            "lambda-name": local_function_name(function),
            "parent-pid": os.getpid(),
        }
        flags = [part for name, value in options.items() for part in (f"--{name}", str(value))]
        self._argv = [sys.executable, "-m", "keap_relay_local.fnhost", *flags]
        self.timeout = timeout
        self.start_timeout = start_timeout
        self._log = logging.getLogger(f"keap_relay_local.functions.{function}")
        self._lock = threading.RLock()
        self._proc: subprocess.Popen[str] | None = None
        self._port: int | None = None
        self._ready = threading.Event()
        self.restarts = 0

    def __repr__(self) -> str:
        return f"FunctionHost({self.function!r}, pid={self.pid}, port={self._port})"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/invoke"

    def _child_env(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
        # keap_relay_local itself must import in the child even without the editable install.
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self._env)
        return env

    def spawn(self) -> None:
        """Start the process without waiting for it to listen (see `wait_ready`)."""
        with self._lock:
            self._port = None
            self._ready = threading.Event()
            self._proc = subprocess.Popen(
                self._argv,
                cwd=self.root,
                env=self._child_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
            )
            threading.Thread(
                target=self._pump, args=(self._proc, self._ready), name=f"fnhost-log-{self.function}", daemon=True
            ).start()

    def _pump(self, proc: subprocess.Popen[str], ready: threading.Event) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not ready.is_set() and line.startswith(READY_PREFIX):
                self._port = int(json.loads(line[len(READY_PREFIX) :])["port"])
                ready.set()
                continue
            self._log.info("%s", line.rstrip("\n"))
        proc.stdout.close()
        ready.set()  # a process that died before listening must not keep wait_ready hanging

    def wait_ready(self, timeout: float | None = None) -> None:
        if not self._ready.wait(self.start_timeout if timeout is None else timeout) or self._port is None:
            code = None if self._proc is None else self._proc.poll()
            self.stop()
            raise RuntimeError(f"function {self.function!r} did not start (exit code {code}); see its log")

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def stop(self, grace: float = 3.0) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def signal_stop(self) -> None:
        """SIGTERM without waiting, so that several processes can wind down together before `stop`."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()

    def kill(self) -> None:
        """SIGKILL, as when Lambda's sandbox dies: in-flight invocations fail."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()

    def _end(self, proc: subprocess.Popen[str] | None) -> None:
        """SIGKILL `proc` if it still runs (never a newer process started meanwhile)."""
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            proc.wait()

    def restart(self) -> None:
        with self._lock:
            self.stop()
            self.start()
            self.restarts += 1

    def invoke(self, event: Any, request_id: str | None = None) -> Any:
        """Run one event; returns the handler's result or raises FunctionError."""
        with self._lock:
            if not self.alive:
                # A dead container is replaced on the next invoke, as Lambda does.
                self._log.warning("function %s is not running; starting a new one", self.function)
                self.stop()
                self.start()
                self.restarts += 1
            port, proc = self._port, self._proc
        body = json.dumps(event).encode()
        # The process ends itself at the Timeout (see _time_out); waiting a little longer is only a backstop.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=self.timeout + 2)
        started = time.monotonic()
        try:
            conn.request(
                "POST",
                "/invoke",
                body,
                {"Content-Type": "application/json", "X-Request-Id": request_id or str(uuid.uuid4())},
            )
            response = conn.getresponse()
            payload = response.read()
            function_error = response.getheader(FUNCTION_ERROR_HEADER)
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, TimeoutError) or time.monotonic() - started >= self.timeout:
                # Timed out: the process is ended (if it has not ended itself), as Lambda ends the sandbox;
                # the next invoke starts a new one.
                self._end(proc)
                message = f"Task timed out after {self.timeout:.2f} seconds"
                raise FunctionError(self.function, "Sandbox.Timedout", message) from exc
            raise FunctionError(self.function, "Runtime.ExitError", f"runtime exited: {exc!r}") from exc
        finally:
            conn.close()
        result = json.loads(payload or b"null")
        if function_error or response.status != 200:
            message = result.get("errorMessage", "") if isinstance(result, dict) else str(result)
            error_type = result.get("errorType", "Unhandled") if isinstance(result, dict) else "Unhandled"
            raise FunctionError(self.function, error_type, message)
        return result


def wait_all_ready(hosts: list[FunctionHost]) -> None:
    """Start several processes in parallel: interpreter start-up dominates, so overlap it."""
    for host in hosts:
        host.spawn()
    deadline = time.monotonic() + max((h.start_timeout for h in hosts), default=0)
    try:
        for host in hosts:
            host.wait_ready(max(0.1, deadline - time.monotonic()))
    except BaseException:
        for host in hosts:
            host.stop()
        raise


if __name__ == "__main__":
    serve()
