"""Shared plumbing of the benchmarks: paths, loopback-only services in child processes, statistics."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# After PYTHONPATH, so that PYTHONPATH=<another checkout>/shared measures that checkout's relay (a "before" figure).
for _entry in (ROOT / "local", ROOT / "shared", ROOT / "ops"):
    if str(_entry) not in sys.path:
        sys.path.append(str(_entry))

HOST = "127.0.0.1"  # every server a benchmark starts binds loopback only
EMULATOR_KEY = "bench-key"
BENCH_KEAP_API = "xmlrpc"  # see function_env
REGION = "us-east-1"
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}
CHILD_PYTHONPATH = os.pathsep.join([str(ROOT / "local"), str(ROOT / "shared")])


def machine() -> str:
    """One line naming the machine the figures were measured on."""
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu or 'unknown CPU'}), "
        f"Python {platform.python_version()}"
    )


def today() -> str:
    return time.strftime("%Y-%m-%d")


def render(template: str, **context) -> str:
    """A report from its Jinja2 template in bench/templates/ (jinja2 is in the `bench` extra, loaded here only)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        f=format,  # {{ x|f(".2f") }}
        g2=lambda value: f"{round(value, 2):g}",
        mark=lambda ok: "✔" if ok else "✘",
        pairs=lambda items: ", ".join(f"{k} {v}" for k, v in dict(items).items()),  # {a: 1} -> "a 1"
        counts=lambda values: ", ".join(f"{k} ×{n}" for k, n in sorted(Counter(values).items())),
    )
    return env.get_template(template).render(context)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).read()  # loopback only
            return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{what} did not start within {timeout:.0f} s")


@contextlib.contextmanager
def _child_server(
    argv: list[str], probe_path: str, what: str, port: int, env: dict[str, str] | None = None
) -> Iterator[str]:
    """A server in its own process on loopback (its CPU is not the caller's), our code on its path; yields its
    base URL once `probe_path` answers, and stops it on the way out."""
    env = {**os.environ, **(env or {}), "PYTHONPATH": CHILD_PYTHONPATH}
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    base = f"http://{HOST}:{port}"
    try:
        _wait_http(base + probe_path, proc, what)
        yield base
    finally:
        proc.terminate()
        proc.wait()


@contextlib.contextmanager
def emulator(latency_ms: int = 0, quota: str | None = None) -> Iterator[str]:
    """A Keap emulator in its own process; yields its base URL."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "keap_emulator",
        "serve",
        "--port",
        str(port),
        "--api-key",
        EMULATOR_KEY,
        "--latency-ms",
        str(latency_ms),
        "--quiet",
    ]
    if quota:
        argv += ["--quota", quota]
    with _child_server(argv, "/_emulator/state", "the emulator", port) as base:
        yield base


@contextlib.contextmanager
def moto(keep_alive: bool = True) -> Iterator[str]:
    """moto in server mode in its own process on loopback; yields its URL.

    By default on keap_relay_local.motohttp, which keeps connections alive as AWS's endpoints do (and has
    the local stack's SQS message-move tasks); `keep_alive=False` is `python -m moto.server`, whose
    werkzeug server closes the connection after every answer, for comparing the two.
    """
    port = free_port()
    module = "keap_relay_local.motohttp" if keep_alive else "moto.server"
    argv = [sys.executable, "-m", module, "-H", HOST, "-p", str(port)]
    with _child_server(argv, "/moto-api/data.json", "moto", port, FAKE_AWS) as url:
        yield url


def provision(moto_url: str, visibility_timeout: int = 180):
    """The real template's queues, rules and table created in moto; returns (StackSpec, Deployed)."""
    from keap_relay_local.resources import provision as provision_stack
    from keap_relay_local.template import read_stack

    spec = read_stack(ROOT / "template.yaml", REGION)
    return spec, provision_stack(spec, moto_url, REGION, visibility_timeout)


def aws_env(moto_url: str) -> dict[str, str]:
    """Variables that point boto3 at moto, with moto's dummy credentials."""
    return {**FAKE_AWS, "AWS_ENDPOINT_URL": moto_url, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}


def function_env(spec, function: str, deployed, moto_url: str, keap: str, **wiring) -> dict[str, str]:
    """A function's environment as the local stack wires it, with Keap at the emulator `keap` (its base URL)."""
    from keap_relay_local.stack import function_environment

    # The benchmarks measure the XML-RPC path (their baselines are xmlrpc.client calls, and earlier rounds'
    # figures were XML-RPC); REST v2, the functions' default since issue 11, gets its own rounds.
    wiring["extra"] = {"KEAP_API": BENCH_KEAP_API, **(wiring.get("extra") or {})}
    return function_environment(
        spec,
        function,
        deployed,
        moto_url=moto_url,
        region=REGION,
        keap_url=keap + "/crm/xmlrpc/v1",
        keap_api_key=EMULATOR_KEY,
        **wiring,
    )


def sample_event(word: str, email: str | None = None) -> dict:
    """The kind's sample (events/<folder>/sqs.json) with a fresh id and email, so idempotency never short-cuts
    it: what the shipped routes act on. `word` names the kind any way the kinds table knows."""
    from keap_relay.events.kinds import kind_named

    sample = json.loads((ROOT / "events" / kind_named(word).folder / "sqs.json").read_text())
    body = json.loads(sample["Records"][0]["body"])
    body["id"] = f"bench-{uuid.uuid4().hex}"
    body["contact"]["email"] = email or f"bench-{uuid.uuid4().hex[:10]}@example.com"
    return body


def form_event(tag: str, form_id: str | None = None) -> dict:
    """A fresh form event from the `bench` source (new id and email), for `form_id` when given."""
    event = {
        "kind": "form_submission",
        "source": "bench",
        "id": uuid.uuid4().hex,
        "contact": {"email": f"{tag}-{uuid.uuid4().hex[:8]}@example.com", "first_name": "Bench"},
    }
    if form_id:
        event["form"] = {"id": form_id}
    return event


def signed_webhook(event: dict) -> tuple[bytes, dict[str, str]]:
    """A canonical event as the generic source sends it: compact JSON, signed by the source adapter with the
    local secret; the body and its headers."""
    from keap_relay.events.sources import sign_request
    from keap_relay_local.defaults import LOCAL_WEBHOOK_SECRET

    signed = sign_request("generic", json.dumps(event, separators=(",", ":")).encode(), LOCAL_WEBHOOK_SECRET)
    return signed.body, signed.headers


def webhook_event(event: dict) -> dict:
    """API Gateway's event for a signed generic webhook carrying `event` (the function's http-generic.json)."""
    from keap_relay.events.kinds import by_name

    sample = json.loads((ROOT / "events" / by_name(event["kind"]).folder / "http-generic.json").read_text())
    body, headers = signed_webhook(event)
    sample["headers"].update(headers, **{"content-length": str(len(body))})
    return {**sample, "body": body.decode()}


def sqs_event(event: dict, queue_arn: str) -> dict:
    """Lambda's SQS event for a batch of one message carrying `event`, received once."""
    from keap_relay_local.poller import build_sqs_event

    message = {
        "MessageId": uuid.uuid4().hex,
        "ReceiptHandle": uuid.uuid4().hex,
        "Body": json.dumps(event),
        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
    }
    return build_sqs_event([message], queue_arn, REGION)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def save(name: str, data: dict, out_dir: Path | None) -> None:
    """Write one benchmark's raw figures as JSON (run_all.py reads them back to build docs/benchmarks.md)."""
    if out_dir is None:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(data, indent=1, default=str))


def cli(doc: str, quick: str) -> argparse.ArgumentParser:
    """A benchmark's command line: --quick (`quick` says what it shortens) and --out, for run_all.py."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--out", type=Path, help="write the figures as JSON into this folder")
    return parser


@contextlib.contextmanager
def muted() -> Iterator[None]:
    """Powertools writes logs and EMF metrics to stdout (its handler holds the stream object): point file
    descriptor 1 at /dev/null meanwhile, so the work is done and the text dropped."""
    sys.stdout.flush()
    saved = os.dup(1)
    sink = os.open(os.devnull, os.O_WRONLY)
    os.dup2(sink, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(sink)
