"""Benchmark: form events (3 tags + 1 sequence) through the pipeline vs the same calls made one by one.

Run: .venv/bin/python bench/bench_pipeline.py [--events N] [--latency-ms 0,20,50,100]
The emulator runs in its own process (so this process's CPU time is the pipeline's alone), with a fixed
latency added to every call. Writes docs/benchmarks-pipeline.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import xmlrpc.client
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "shared"), str(ROOT / "local")]

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # one INFO line per event would swamp the report

from keap_relay.aws.config import Settings  # noqa: E402
from keap_relay.aws.pipeline import Pipeline  # noqa: E402

KEY = "bench-key"
ROUTES = """version: 1
forms:
  - match: {}
    tags: [101, 102, 103]
    campaigns: [11]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_emulator(latency_ms: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "keap_emulator", "serve", "--port", str(port), "--api-key", KEY,
         "--latency-ms", str(latency_ms)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'local'}{os.pathsep}{ROOT / 'shared'}"},
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{base}/_emulator/state", timeout=1).read()
            return proc, f"{base}/crm/xmlrpc/v1"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("emulator did not start")


def event(i: int) -> dict:
    return {"kind": "form_submission", "source": "bench", "id": uuid.uuid4().hex,
            "contact": {"email": f"bench{i}-{uuid.uuid4().hex[:6]}@example.com", "first_name": "Bench"}}


def run_pipeline(url: str, routes: str, n: int) -> tuple[float, float]:
    settings = Settings(kind="form_submission", keap_url=url, routes_file=routes, keap_api_key_env=KEY)
    pipeline = Pipeline("form_submission", settings)
    pipeline.process(event(-1))  # warm: client, routes, validators, connections
    events = [event(i) for i in range(n)]
    wall, cpu = time.perf_counter(), time.process_time()
    for ev in events:
        pipeline.process(ev)
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n


class KeepAlive(xmlrpc.client.Transport):
    """The standard library's transport already keeps the connection; named for the report."""


def run_sequential(url: str, n: int) -> tuple[float, float]:
    proxy = xmlrpc.client.ServerProxy(url, transport=KeepAlive(headers=[("X-Keap-API-Key", KEY)]))
    cs = proxy.ContactService

    def one(i: int) -> None:
        cid = cs.addWithDupCheck("placeholder", {"Email": f"seq{i}-{uuid.uuid4().hex[:6]}@example.com",
                                                 "FirstName": "Bench"}, "Email")
        for tag in (101, 102, 103):
            cs.addToGroup("placeholder", cid, tag)
        cs.addToCampaign("placeholder", cid, 11)

    one(-1)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        one(i)
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--latency-ms", default="0,20,50,100")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks-pipeline.md"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        routes = os.path.join(tmp, "routes.yaml")
        Path(routes).write_text(ROUTES)
        for latency in [int(x) for x in args.latency_ms.split(",")]:
            proc, url = start_emulator(latency)
            try:
                p_wall, p_cpu = run_pipeline(url, routes, args.events)
                s_wall, s_cpu = run_sequential(url, args.events)
            finally:
                proc.terminate()
                proc.wait()
            rows.append((latency, p_wall, s_wall, p_cpu, s_cpu))
            print(f"latency {latency:>3} ms: pipeline {p_wall*1000:7.1f} ms/event, sequential "
                  f"{s_wall*1000:7.1f} ms/event, ratio {p_wall/s_wall:.2f}; CPU {p_cpu*1000:.2f} vs "
                  f"{s_cpu*1000:.2f} ms/event")
    lines = [
        "# Benchmark: pipeline critical path and CPU per event",
        "",
        f"Command: `.venv/bin/python bench/bench_pipeline.py --events {args.events} --latency-ms {args.latency_ms}`"
        f" (also `make bench`)  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}",
        "",
        "Each event: a form submission whose routes give 3 tags + 1 follow-up sequence. The pipeline validates,"
        " plans and runs it (upsert, then the 4 follow-ups at once, bounded at 4). The baseline makes the same"
        " 5 XML-RPC calls one after another with `xmlrpc.client` on a kept-alive connection. The emulator runs"
        " in its own process with the added latency on every call, so CPU is this process's alone.",
        "",
        "| added latency | pipeline ms/event | sequential ms/event | ratio | pipeline CPU ms/event |"
        " baseline CPU ms/event | CPU overhead |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for latency, p_wall, s_wall, p_cpu, s_cpu in rows:
        lines.append(f"| {latency} ms | {p_wall*1000:.1f} | {s_wall*1000:.1f} | {p_wall/s_wall:.2f} | "
                     f"{p_cpu*1000:.2f} | {s_cpu*1000:.2f} | {p_cpu/s_cpu:.2f}× |")
    lines += ["", "Target: ratio ≤ 0.5 at 50 ms added latency (two round trips instead of five).", ""]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
