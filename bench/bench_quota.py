"""Benchmark: sustained events/minute against Keap's Personal Access Token quota (240 calls/min), 429s, quota used.

Run: .venv/bin/python bench/bench_quota.py [--quick] [--seconds N]
The emulator enforces QuotaPlan.pat() (10/s, 240/min, 30,000/day) with 50 ms added to every call. The workers
are the real worker path as deployed with KeapRateLimit=4: two containers per kind (the template's
WorkerConcurrency for that rate), each its own Pipeline fed by an SQS event source mapping (the local stack's
QueuePoller, batches of 10) from the kind's queue on moto, all sharing the Keap budget through the idempotency
table (SharedBudget, KEAP_RATE_LIMIT=4) — the shared budget, not the per-container limiter. A backlog of form
events (5 calls each) and purchases (4 calls each) is queued first; figures are taken over a window after a
warm-up: events applied per minute, Keap calls answered 200 and 429 (from the emulator's call log), the share of
the 240/min quota used, the budget's DynamoDB writes per Keap call, and how long each batch invocation ran.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from keap_relay.events.kinds import kind_named

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

QUOTA_PER_MINUTE = 240
LATENCY_MS = 50
WORKERS_PER_KIND = 2  # template.yaml RateProfiles["4"].WorkerConcurrency
ROUTES = """version: 1
forms:
  - match: {}
    tags: [101, 102, 103]
    campaigns: [11]
purchases:
  - match: {}
    tags: [201, 202]
    action_sets: [21]
"""
CALLS_PER_EVENT = {"forms": 5, "purchases": 4}  # function folder -> Keap calls per event with ROUTES


class Meter:
    """What the bench counts in-process: applied events, batch durations, and the containers (whose shared
    budgets count their own DynamoDB writes)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.applied: list[tuple[float, str]] = []
        self.batches: list[tuple[float, float]] = []  # (end time, seconds)
        self.containers: list[Any] = []
        self.stopping = threading.Event()


def instrument(meter: Meter) -> type:
    """A Pipeline that counts what it applies and steps aside once the run is over."""
    from keap_relay.aws import queue
    from keap_relay.aws.pipeline import EventFailed, Pipeline

    class CountingPipeline(Pipeline):
        def process(self, event: Any, attempts: int = 1, **invocation: Any) -> dict[str, Any]:
            if meter.stopping.is_set():  # the run is over: hand the record back at once instead of pacing on
                failure = queue.Failure.retryable(
                    "BenchStopped", "bench over", "bench", kind=self.kind, attempts=attempts
                )
                raise EventFailed(failure)
            result = super().process(event, attempts, **invocation)
            with meter.lock:
                meter.applied.append((time.time(), self.kind))
            return result

    return CountingPipeline


def keap_calls(base: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{base}/_emulator/calls", timeout=30) as response:  # loopback only
        return json.loads(response.read())


def run(quick: bool = False, seconds: int | None = None) -> dict[str, Any]:
    from keap_relay.aws.config import Settings
    from keap_relay_local.poller import QueuePoller
    from keap_relay_local.resources import client
    from keap_relay_local.runtime import LambdaContext

    window = seconds or (40 if quick else 120)
    warmup = 10 if quick else 15
    meter = Meter()
    pipeline_class = instrument(meter)
    rate = QUOTA_PER_MINUTE / 60
    with (
        tempfile.TemporaryDirectory() as tmp,
        common.moto() as moto_url,
        common.emulator(LATENCY_MS, quota="pat") as keap,
    ):
        os.environ.update(common.aws_env(moto_url))
        routes = Path(tmp) / "routes.yaml"
        routes.write_text(ROUTES)
        spec, deployed = common.provision(moto_url)
        sqs = client("sqs", moto_url, common.REGION)
        # A backlog that outlasts the run: ~1.5x what the quota allows.
        per_kind = int(QUOTA_PER_MINUTE * (window + warmup) / 60 / 4.5 * 1.5 / len(CALLS_PER_EVENT)) + 10
        for function in CALLS_PER_EVENT:
            kind = kind_named(function).name
            url = deployed.queue_urls[spec.functions[function].queue]
            for start in range(0, per_kind, 10):
                entries = [
                    {"Id": str(i), "MessageBody": json.dumps(common.sample_event(kind))}
                    for i in range(min(10, per_kind - start))
                ]
                sqs.send_message_batch(QueueUrl=url, Entries=entries)
        pollers = []
        for function in CALLS_PER_EVENT:
            kind = kind_named(function).name
            env = common.function_env(
                spec,
                function,
                deployed,
                moto_url,
                keap,
                routes_file=routes,
                webhook_secrets={},
                extra={"KEAP_RATE_LIMIT": str(int(rate)), "KEAP_MAX_CALLS_PER_SECOND": "", "RETRY_BASE_SECONDS": "1"},
            )
            fn = spec.functions[function]
            for worker in range(WORKERS_PER_KIND):
                container = pipeline_class(kind, Settings.from_env(kind, env))
                meter.containers.append(container)

                def invoke(
                    _name: str,
                    batch: dict[str, Any],
                    container: Any = container,
                    label: str = f"{function}-{worker}",
                    timeout: float = fn.timeout,
                ) -> Any:
                    started = time.monotonic()
                    try:
                        return container.handle(batch, LambdaContext(label, 256, timeout, common.REGION))
                    finally:
                        with meter.lock:
                            meter.batches.append((time.time(), time.monotonic() - started))

                poller = QueuePoller(
                    f"{function}-{worker}",
                    sqs=client("sqs", moto_url, common.REGION),
                    queue_url=deployed.queue_urls[fn.queue],
                    queue_arn=deployed.queue_arns[fn.queue],
                    invoke=invoke,
                    region=common.REGION,
                    batch_size=fn.batch_size,
                    batching_window=fn.batching_window,
                    report_item_failures=True,
                )
                pollers.append(poller)
        started = time.time()
        with common.muted():  # EMF metrics and log lines go to stdout, as in Lambda
            calls = drive(pollers, meter, started, warmup, window, keap)
    return report(calls, meter, pollers, spec, started + warmup, window, warmup, quick)


def drive(pollers: list[Any], meter: Meter, started: float, warmup: int, window: int, keap: str) -> list[dict]:
    """Run the workers through the warm-up and the window; the emulator's call log at the end."""
    for poller in pollers:
        poller.start()
    begin = started + warmup
    end = begin + window
    while time.time() < end:
        time.sleep(max(0.1, min(15.0, end - time.time())))
        done = sum(1 for at, _ in meter.applied if begin <= at < end)
        print(f"  {time.time() - started:4.0f} s: {done} events applied in the window", file=sys.stderr, flush=True)
    meter.stopping.set()
    calls = keap_calls(keap)
    for poller in pollers:
        poller.signal_stop()
    for poller in pollers:
        poller.stop()
    return calls


def report(
    calls: list[dict], meter: Meter, pollers: list[Any], spec: Any, begin: float, window: int, warmup: int, quick: bool
) -> dict[str, Any]:
    end = begin + window
    in_window = [c for c in calls if begin <= c["at"] < end]
    ok = sum(1 for c in in_window if c["http_status"] == 200)
    throttled = sum(1 for c in in_window if c["http_status"] == 429)
    applied = [kind for at, kind in meter.applied if begin <= at < end]
    minutes = window / 60
    batch_seconds = [s for t, s in meter.batches if begin <= t]
    budget_calls = sum(1 for c in calls if c["http_status"] in (200, 429))  # the budget is booked for every call
    budget_writes = sum(c.runner.keap.client.rate_limiter.writes for c in meter.containers)  # SharedBudget
    data = {
        "window_s": window,
        "warmup_s": warmup,
        "latency_ms": LATENCY_MS,
        "containers": len(pollers),
        "events_per_min": len(applied) / minutes,
        "events_per_min_by_kind": {
            k: applied.count(k) / minutes for k in (kind_named(f).name for f in CALLS_PER_EVENT)
        },
        "ceiling_events_per_min": QUOTA_PER_MINUTE / (sum(CALLS_PER_EVENT.values()) / len(CALLS_PER_EVENT)),
        "calls_ok": ok,
        "calls_429": throttled,
        "share_429": throttled / max(1, ok + throttled),
        "quota_used": ok / (QUOTA_PER_MINUTE * minutes),
        "calls_per_min": ok / minutes,
        "budget_writes_per_call": budget_writes / max(1, budget_calls),
        "batch_p50_s": common.percentile(batch_seconds, 50) if batch_seconds else None,
        "batch_max_s": max(batch_seconds) if batch_seconds else None,
        "function_timeout_s": spec.functions["forms"].timeout,
        "command": "bench/bench_quota.py" + (" --quick" if quick else ""),
    }
    print(
        f"  {data['events_per_min']:.1f} events/min (ceiling {data['ceiling_events_per_min']:.1f}); "
        f"{ok} calls ok, {throttled} answered 429 ({data['share_429']:.2%}); quota used {data['quota_used']:.1%}; "
        f"{data['budget_writes_per_call']:.2f} budget writes per call; batches p50 {data['batch_p50_s'] or 0:.1f} s, "
        f"max {data['batch_max_s'] or 0:.1f} s (function timeout {data['function_timeout_s']} s)"
    )
    return data


def main() -> None:
    parser = common.cli(__doc__, "a 40 s window instead of 120 s")
    parser.add_argument("--seconds", type=int, help="length of the measured window")
    args = parser.parse_args()
    common.save("quota", run(args.quick, args.seconds), args.out)


if __name__ == "__main__":
    main()
