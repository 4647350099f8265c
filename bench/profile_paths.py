"""Runs one path of the pipeline in a loop, to be profiled from outside with py-spy (on-CPU samples only).

Run: .venv/bin/py-spy record -r 1000 -f raw -o /tmp/worker.txt -- .venv/bin/python bench/profile_paths.py worker
then: .venv/bin/python bench/profile_paths.py --report /tmp/worker.txt
Paths: `keap` is Pipeline.process (validate, plan, run; no AWS); `worker` is Pipeline.handle with an SQS batch of
one and the deployed durability (idempotency, checkpoints, the shared budget on moto); `bare` is the baseline,
the same XML-RPC calls with xmlrpc.client. Form events with 3 tags + 1 sequence, as in bench_pipeline.py.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
import bench_pipeline as bp


def loop(path: str, events: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, common.moto() as moto_url:
        os.environ.update(common.aws_env(moto_url))
        _, deployed = common.provision(moto_url)
        routes = Path(tmp) / "routes.yaml"
        routes.write_text(bp.routes_text(3))
        with common.emulator(0) as base:
            url = base + "/crm/xmlrpc/v1"
            if path == "bare":
                run = bp.Sequential(url, 3)
                make = bp.event
            elif path == "keap":
                run = bp.pipeline_for(url, str(routes)).process
                make = bp.event
            else:
                worker = bp.pipeline_for(
                    url,
                    str(routes),
                    idempotency_table=deployed.table_names["IdempotencyTable"],
                    queue_url=deployed.queue_urls["FormsQueue"],
                    dlq_url=deployed.queue_urls["FormsDLQ"],
                    keap_rate_limit=bp.WORKER_BUDGET,
                )
                arn = deployed.queue_arns["FormsQueue"]
                run = worker.handle

                def make(tag: str) -> dict:
                    return common.sqs_event(bp.event(tag), arn)

            with common.muted():
                for _ in range(events):
                    run(make("prof"))


def report(raw: Path, top: int) -> None:
    """Self and inclusive share of on-CPU samples per function, from py-spy's raw (collapsed) output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")" if " (" in f else f for f in stack.split(";")
        ]
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    print(f"{total} on-CPU samples")
    print("self %  | function")
    for name, n in own.most_common(top):
        print(f"{100 * n / total:6.1f} | {name}")
    print("\ninclusive % | function")
    for name, n in inclusive.most_common(top * 2):
        print(f"{100 * n / total:6.1f} | {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", choices=["bare", "keap", "worker"], default="worker")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--report", type=Path, help="summarise a py-spy raw profile instead of running")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    if args.report:
        report(args.report, args.top)
    else:
        loop(args.path, args.events)


if __name__ == "__main__":
    main()
