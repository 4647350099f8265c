"""`make bench`: every benchmark in one run, each in its own process, then docs/benchmarks.md, its charts and
docs/cost-model.md rendered from the figures (templates in bench/templates/).

Run: .venv/bin/python bench/run_all.py [--quick] [--only codec,pipeline,coldstart,quota,ingest,batching] [--from DIR]
--quick shortens every benchmark (a few minutes in all; a full run takes about six, plus some forty for the
batching benchmark, which drains 1,000 events per row at a PAT's 240 calls a minute). The raw figures are
kept as JSON in --keep DIR (default: a temporary folder); --from DIR rewrites the docs from such a folder
without measuring again. With the batching benchmark's figures alone (`--only batching`), only its section of
docs/benchmarks.md is rewritten. Benchmarks report ratios measured in one run against baselines on the same
inputs; nothing here fails on speed. What was profiled and fixed over time is prose in docs/benchmarks-history.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common
from charts import Bar, Group, bar_chart

BENCHES = ("codec", "pipeline", "coldstart", "quota", "ingest", "batching")

# Lambda prices used by the cost model: arm64, us-east-1, first pricing tier (aws.amazon.com/lambda/pricing).
PRICE_GB_SECOND_ARM64 = 0.0000133334
PRICE_PER_MILLION_REQUESTS = 0.20
VCPU_MB = 1769  # Lambda gives a function one full vCPU at 1,769 MB, a proportional share below
MEMORY_SIZES = (128, 256)
KEAP_LATENCY_MS = 100  # per Keap call, the largest latency the pipeline benchmark adds (real Keap is its own)
AWS_CALL_MS = 5  # per DynamoDB/SQS round trip in-region (assumed, not measured here)
# The worker path's figures with delays measured on the checkout before issue 12's batching (5eba217), by
# PYTHONPATH=<that checkout>/shared .venv/bin/python bench/bench_batching.py --only delays --out <folder>.
BATCHING_BEFORE = common.ROOT / "bench" / "baselines" / "batching-5eba217.json"
BATCHING_MARKS = ("<!-- batching", "<!-- /batching -->")


def run_benches(out: Path, quick: bool, only: list[str]) -> dict[str, float]:
    seconds = {}
    for name in only:
        argv = [sys.executable, str(common.ROOT / "bench" / f"bench_{name}.py"), "--out", str(out)]
        if quick:
            argv.append("--quick")
        if name == "codec" and quick:
            argv.append("--no-write")
        if name == "coldstart":
            argv += ["--importtime", "forms: SQS → Keap"]  # the worst case's heaviest imports, for the page
        print(f"== {name}: {' '.join(argv[1:])}", flush=True)
        started = time.monotonic()
        subprocess.run(argv, check=True, cwd=common.ROOT)
        seconds[name] = time.monotonic() - started
    return seconds


def load(out: Path) -> dict[str, Any]:
    """Each benchmark's figures, None for one that did not run."""
    files = {name: out / f"{name}.json" for name in BENCHES}
    return {name: json.loads(f.read_text()) if f.exists() else None for name, f in files.items()}


def growth(latency: dict[str, Any]) -> list[dict[str, Any]]:
    """The critical path at 50 ms per call as tags grow, with the default bound on follow-ups in flight, then
    with a bound that lets every follow-up go at once: the first and last row of each."""
    default = latency.get("default_concurrency", 4)
    at_50 = [r for r in latency["rows"] if r["latency_ms"] == 50]
    kept = [r for r in at_50 if r.get("concurrency", default) == default]
    wide = [r for r in at_50 if r.get("concurrency", default) != default or r["tags"] + 1 <= default]
    out = []
    if len(kept) > 1:
        out.append({"lo": kept[0], "hi": kept[-1], "where": f"{default} in flight (default)"})
    if len(wide) > 1:
        out.append({"lo": wide[0], "hi": wide[-1], "where": f"up to {wide[-1].get('concurrency')} in flight"})
    return out


def charts(d: dict[str, Any], docs: Path) -> list[str]:
    """Draw the charts the figures allow; their file names, in the page's order."""
    made = []

    def draw(name: str, *args: Any, **kwargs: Any) -> None:
        bar_chart(docs / f"benchmarks-{name}.png", *args, **kwargs)
        made.append(f"benchmarks-{name}.png")

    if d["pipeline"]:
        p = d["pipeline"]["cpu"]
        bound, within = 1.1 * p["sequential_cpu_ms"], "target ≤ 1.1× one by one"
        keap = [
            Bar("xmlrpc.client, one by one", p["sequential_cpu_ms"], "baseline"),
            Bar("Pipeline.process", p["pipeline_cpu_ms"]),
        ]
        groups = [
            Group("Form event, Keap path", keap, bound, within),
            Group("Form event, SQS worker path", [Bar("as deployed", p["worker_cpu_ms"], "other")], bound, within),
        ]
        if p.get("kinds"):
            bars = [Bar(k.replace("_", " "), v["cpu_ms"], "other") for k, v in p["kinds"].items()]
            groups.append(Group("Worker path, shipped routes", bars))
        if "ingest" in p:
            groups.append(Group("Ingest path", [Bar("webhook to 202", p["ingest"]["cpu_ms"])]))
        draw("cpu", "CPU per event on one core", groups, "ms")
        if d["pipeline"]["latency"]["rows"]:
            groups = [
                Group(
                    f"{r['latency_ms']} ms per call, {r['tags']} tags + 1 seq, {r.get('concurrency', 4)} in flight",
                    [
                        Bar("one by one", r["sequential_ms"], "baseline"),
                        Bar("keap-relay", r["pipeline_ms"], note=f"{r['pipeline_ms']:.0f} ({r['ratio']:.2f}×)"),
                    ],
                    0.5 * r["sequential_ms"] if r["tags"] == 3 else None,
                    "target ≤ 0.5× one by one",
                )
                for r in d["pipeline"]["latency"]["rows"]
            ]
            draw("latency", "Time per event with latency added to every Keap call", groups, "ms")
    if d["coldstart"]:
        rows = d["coldstart"]["rows"]
        bars = [
            Bar(r["case"], r["cold_ms"], "relay", f"{r['cold_ms']:.0f} ({r['ratio']:.2f}×), {r['rss_mb']:.0f} MB")
            for r in rows
        ]
        for bar in bars[:2]:
            bar.color = "baseline"  # import boto3; the same and one SendMessage
        groups = [Group("import + first call (peak RSS after)", bars)]
        target = (rows[0]["cold_ms"] * 1.3, "target ≤ 1.3× import boto3")
        draw("coldstart", "Cold start in a fresh process", groups, "ms", target=target)
    if d["ingest"]:
        i = d["ingest"]
        groups = []
        for pct in ("p50", "p90", "p99"):
            base, relay = i["standin"][f"{pct}_ms"], i["relay"][f"{pct}_ms"]
            groups.append(Group(pct, [Bar("stand-in, no work", base, "baseline"), Bar("forms function", relay)]))
        draw("ingest", "Webhook in to 202 through the local gateway", groups, "ms")
    if d["quota"]:
        q = d["quota"]
        calls = [
            Bar("quota (PAT)", 240, "baseline"),
            Bar("answered 200", q["calls_per_min"], "ok"),
            Bar("answered 429", q["calls_429"] / (q["window_s"] / 60), "bad"),
        ]
        events = [Bar("ceiling", q["ceiling_events_per_min"], "baseline"), Bar("sustained", q["events_per_min"])]
        groups = [
            Group("Keap calls per minute", calls, 0.9 * 240, "target ≥ 90% of the quota"),
            Group("Events per minute", events),
        ]
        draw("quota", "Against the 240 calls/min quota, shared budget 4/s", groups, "per minute")
    if d["codec"]:
        groups: list[Group] = []
        for case, impl, seconds, ratio, _ in d["codec"]["rows"]:
            if impl.startswith("xmltodict.unparse"):
                continue  # ten times the others: it would flatten the chart (see benchmarks-codec.md)
            label = case.split(" (")[0].replace("findByEmail, ", "")
            if not groups or groups[-1].label != label:
                target = 1.15 if label.startswith("decode") else 1.0
                groups.append(Group(label, [], target, f"target ≤ {target:.2f}× reference"))
            shown = f"{seconds * 1e3:.1f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.0f} µs"
            color = "relay" if impl.startswith("codec") else "baseline"
            groups[-1].bars.append(Bar(impl.split(" (")[0], float(ratio), color, f"{float(ratio):.2f}× ({shown})"))
        draw("codec", "Codec time relative to the reference of each case", groups, "× reference")
    return made


def cost_model(d: dict[str, Any]) -> dict[str, Any] | None:
    """The cost model's rows: each path priced at each memory size, cold starts, calls beyond Lambda."""
    p = d["pipeline"]["cpu"] if d["pipeline"] else {}
    if not p.get("kinds"):
        return None
    paths = []  # (label, CPU ms, Keap round trips, AWS round trips, requests per 1M events)
    if "ingest" in p:
        paths.append(("webhook → 202 (any kind)", p["ingest"]["cpu_ms"], 0, 1, (1_000_000,)))
    for kind, k in p["kinds"].items():
        aws_calls = round(sum(k.get("aws_calls", {}).values())) or 5
        paths.append((f"worker: {plural(kind)}", k["cpu_ms"], 2, aws_calls, (1_000_000, 100_000)))
    priced = []
    for label, cpu_ms, keap_trips, aws_trips, requests in paths:
        for memory in MEMORY_SIZES:
            duration = cpu_ms * VCPU_MB / memory + keap_trips * KEAP_LATENCY_MS + aws_trips * AWS_CALL_MS
            gb_s = 1_000_000 * duration / 1000 * memory / 1024
            dollars = [gb_s * PRICE_GB_SECOND_ARM64 + r / 1e6 * PRICE_PER_MILLION_REQUESTS for r in requests]
            priced.append(
                dict(
                    label=label,
                    cpu_ms=cpu_ms,
                    memory=memory,
                    duration=duration,
                    gb_s=gb_s,
                    requests=requests,
                    dollars=dollars,
                )
            )
    cold_starts = [
        {
            "case": r["case"],
            "cold_ms": r["cold_ms"],
            "gb_s": [1000 * r["cold_ms"] * VCPU_MB / m / 1000 * m / 1024 for m in MEMORY_SIZES],
        }
        for r in (d["coldstart"] or {}).get("rows", [])
        if not r["case"].startswith("baseline")
    ]
    beyond = [
        {
            "label": plural(kind),
            "keap_calls": k["keap_calls"],
            "dynamo": {n.split(".")[1]: v for n, v in k["aws_calls"].items() if n.startswith("dynamodb")},
        }
        for kind, k in p["kinds"].items()
    ]
    assumed = {
        "keap_ms": KEAP_LATENCY_MS,
        "aws_ms": AWS_CALL_MS,
        "gb_s": PRICE_GB_SECOND_ARM64,
        "per_million": PRICE_PER_MILLION_REQUESTS,
    }
    return {
        "priced": priced,
        "cold_starts": cold_starts,
        "beyond": beyond,
        "assumed": assumed,
        "ingest_cpu": p.get("ingest"),
    }


def splice(page: str, section: str) -> str:
    """The page with its batching section (between BATCHING_MARKS) replaced, or put before the closing notes."""
    start, end = BATCHING_MARKS
    if start in page and end in page:
        head, rest = page.split(start, 1)
        return head + section.strip() + rest.split(end, 1)[1]
    head, sep, tail = page.partition("## Why the")
    return head + section.strip() + "\n\n" + sep + tail


def plural(kind: str) -> str:
    """A kind's name as a reader says many of them: form_submission -> form submissions."""
    return kind.replace("_", " ") + "s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs of everything (a smoke run)")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHES)}")
    parser.add_argument("--keep", type=Path, help="keep the raw JSON figures in this folder")
    parser.add_argument("--from", dest="source", type=Path, help="write the docs from figures kept earlier")
    args = parser.parse_args()
    only = [x.strip() for x in args.only.split(",")] if args.only else list(BENCHES)
    run = {
        "seconds": {},
        "quick": args.quick,
        "machine": common.machine(),
        "date": common.today(),
        "argv": " ".join(["bench/run_all.py", *sys.argv[1:]]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        out = args.source or args.keep or Path(tmp)
        kept = out / "run.json"
        earlier = json.loads(kept.read_text()) if kept.exists() else {}
        if args.source is None:
            run["seconds"] = run_benches(out, args.quick, only)
            if args.keep and earlier and set(only) != set(BENCHES):
                # Some benchmarks rerun into kept figures: the page counts each benchmark's latest run.
                run["seconds"] = {**earlier["seconds"], **run["seconds"]}
            kept.write_text(json.dumps(run))
        else:
            run.update(earlier)  # the machine and date of the run that measured, when it recorded them
        figures = load(out)
    seconds = sum(run["seconds"].values())
    page = {
        "d": figures,
        "growth": growth(figures["pipeline"]["latency"]) if figures["pipeline"] else [],
        "charts": charts(figures, common.DOCS),
        "command": ".venv/bin/python bench/run_all.py --quick"
        if run["quick"]
        else "make bench (.venv/bin/python bench/run_all.py)",
        "machine": run["machine"],
        "date": run["date"],
        "minutes": seconds / 60,
    }
    before = json.loads(BATCHING_BEFORE.read_text()) if BATCHING_BEFORE.exists() else {}
    page.update(before=before.get("delays"), before_label="before (5eba217)", argv=run.get("argv"))
    target = common.DOCS / "benchmarks.md"
    if figures["batching"] and not any(figures[name] for name in BENCHES if name != "batching"):
        # Only the batching benchmark's figures: its section is rewritten, the rest keeps its own run's figures.
        target.write_text(splice(target.read_text(), common.render("batching.md.j2", **page)))
        print("wrote the batching section of docs/benchmarks.md")
        return
    target.write_text(common.render("benchmarks.md.j2", **page))
    model = cost_model(figures)
    if model:
        text = common.render("cost-model.md.j2", **model, quota=figures["quota"], **page)
        (common.DOCS / "cost-model.md").write_text(text)
    print(f"wrote docs/benchmarks.md, docs/cost-model.md and {len(page['charts'])} charts in {seconds / 60:.1f} min")


if __name__ == "__main__":
    main()
