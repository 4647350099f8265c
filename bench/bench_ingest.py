"""Benchmark: webhook in to 202 through the local gateway with the queue on moto, vs a handler that does no work.

Run: .venv/bin/python bench/bench_ingest.py [--quick] [--requests N]
Both runs go through the same local stack machinery (gateway → function process → answer); the real forms
function verifies the signature, validates the event and sends it to its SQS queue (moto), while the stand-in
answers 202 at once (the idea of tests/e2e/test_stack_machinery.py's stand-in repository). Requests are sent one
after another on one kept-alive connection, signed as the generic source signs; the first few are not counted.
The queue pollers are stopped for the real run, so the worker path does not share the function's CPU (in AWS
it runs in other containers).
"""

from __future__ import annotations

import http.client
import http.server
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

WARMUP = 10

STANDIN_TEMPLATE = textwrap.dedent("""\
    AWSTemplateFormatVersion: "2010-09-09"
    Transform: AWS::Serverless-2016-10-31
    Resources:
      FormsFunction:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: functions/forms/
          Handler: app.handler
          Timeout: 30
          Events:
            Post:
              Type: HttpApi
              Properties: {Method: POST, Path: "/forms/{source}"}
    """)
STANDIN_HANDLER = textwrap.dedent("""\
    import json

    def handler(event, context):
        return {"statusCode": 202, "headers": {"content-type": "application/json"},
                "body": json.dumps({"status": "queued", "id": "standin"})}
    """)


def signed_request() -> tuple[bytes, dict[str, str]]:
    return common.signed_webhook(common.sample_event("form_submission"))


def drive(url: str, n: int) -> list[float]:
    """Latency in ms of each of n POSTs after the warm-up; every answer must be 202."""
    parts = urlsplit(url)
    assert parts.hostname == common.HOST
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    requests = [signed_request() for _ in range(n + WARMUP)]
    times = []
    try:
        for i, (body, headers) in enumerate(requests):
            started = time.perf_counter()
            conn.request("POST", parts.path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            elapsed = (time.perf_counter() - started) * 1e3
            if response.status != 202:
                raise SystemExit(f"expected 202, got {response.status}: {payload[:300]!r}")
            if i >= WARMUP:
                times.append(elapsed)
    finally:
        conn.close()
    return times


def summary(times: list[float]) -> dict[str, float]:
    return {
        "p50_ms": common.percentile(times, 50),
        "p90_ms": common.percentile(times, 90),
        "p99_ms": common.percentile(times, 99),
        "mean_ms": sum(times) / len(times),
        "n": len(times),
    }


def run(quick: bool = False, requests: int | None = None) -> dict[str, Any]:
    from keap_relay_local.stack import LocalStack

    # The gateway, moto and the emulator (in this process) send headers and body in two writes; without
    # TCP_NODELAY each answer then waits ~40 ms for the client's delayed ACK, a local artefact that would
    # swamp the figures. Set here for every in-process server (a bench-only setting).
    http.server.BaseHTTPRequestHandler.disable_nagle_algorithm = True

    n = requests or (100 if quick else 400)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "template.yaml").write_text(STANDIN_TEMPLATE)
        (root / "functions" / "forms").mkdir(parents=True)
        (root / "functions" / "forms" / "app.py").write_text(STANDIN_HANDLER)
        (root / "routes.yaml").write_text("version: 1\n")
        with LocalStack(root=root, routes_file="routes.yaml") as stack:
            standin = drive(stack.webhook_url("forms"), n)
    with LocalStack() as stack:
        for poller in stack._pollers.values():  # a bench-only reach inside: ingest alone is measured
            poller.stop()
        real = drive(stack.webhook_url("forms"), n)
        queued = stack.queue_counts("forms")["Visible"]
    data = {
        "relay": summary(real),
        "standin": summary(standin),
        "queued": queued,
        "requests": n,
        "command": "bench/bench_ingest.py" + (" --quick" if quick else ""),
    }
    for name in ("relay", "standin"):
        s = data[name]
        print(
            f"  {name:<8} p50 {s['p50_ms']:6.2f} ms  p90 {s['p90_ms']:6.2f} ms  p99 {s['p99_ms']:6.2f} ms  (n={s['n']})"
        )
    print(
        f"  ratio p50 {data['relay']['p50_ms'] / data['standin']['p50_ms']:.2f}, "
        f"p99 {data['relay']['p99_ms'] / data['standin']['p99_ms']:.2f}; {queued} messages on the queue"
    )
    return data


def main() -> None:
    parser = common.cli(__doc__, "100 requests instead of 400")
    parser.add_argument("--requests", type=int, help="requests per run")
    args = parser.parse_args()
    common.save("ingest", run(args.quick, args.requests), args.out)


if __name__ == "__main__":
    main()
