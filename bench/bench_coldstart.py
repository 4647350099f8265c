"""Benchmark: each function's cold start (import + first invocation, fresh process) vs a handler importing boto3.

Run: .venv/bin/python bench/bench_coldstart.py [--quick] [--runs N] [--importtime CASE] [--also DIR]
                                             [--secrets-manager] [--no-pyc]
Every run is a new process (bench/_coldstart_child.py) with the function's environment as the local stack
wires it (moto for SQS/DynamoDB, the emulator for Keap, the template's KEAP_RATE_LIMIT=4 shared budget):
it imports functions/<fn>/app.py and answers a first event, then a second. Two first events per function:
a signed webhook (ingest path: verify, validate, SendMessage) and an SQS batch of one (worker path:
idempotency, budget, Keap calls). Baselines: a handler that only imports boto3, and one that also sends
one SQS message (the AWS work an ingest cannot avoid). Reports the median and the peak RSS.

Closer to a deployed function: --secrets-manager reads the Keap key and the webhook secrets from Secrets Manager
(on moto) by ARN, as in AWS, instead of from environment variables; --no-pyc runs keap-relay's code without
.pyc files, as `sam build` ships it (the layer is read-only in Lambda, so every cold start compiles it).
Before/after in one run: --also DIR (repeatable) runs each function case from another tree's functions/ and
shared/ too (e.g. `git worktree add /tmp/before HEAD`), in the same rounds, and prints the ratios.
"""

from __future__ import annotations

import compileall
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from keap_relay.events.kinds import FOLDERS, kind_named

BASELINE_IMPORT = "import boto3\n\n\ndef handler(event, context):\n    return {'statusCode': 202, 'body': ''}\n"
BASELINE_SEND = (
    "import json\nimport os\n\nimport boto3\n\nsqs = None\n\n\ndef handler(event, context):\n"
    "    global sqs\n    sqs = sqs or boto3.client('sqs')\n"
    "    sqs.send_message(QueueUrl=os.environ['QUEUE_URL'], MessageBody=event.get('body') or '{}')\n"
    "    return {'statusCode': 202, 'body': json.dumps({'status': 'queued'})}\n"
)


def http_event(function: str) -> dict[str, Any]:
    return common.webhook_event(common.sample_event(function))


def sqs_event(function: str, deployed: Any) -> dict[str, Any]:
    return common.sqs_event(common.sample_event(function), deployed.queue_arns[kind_named(function).queue])


def one_run(
    code_dir: Path,
    events: list[dict[str, Any]],
    env: dict[str, str],
    tmp: Path,
    importtime: bool = False,
    layer: Path | None = None,
) -> dict[str, Any]:
    event_file = tmp / f"event-{uuid.uuid4().hex}.json"
    event_file.write_text(json.dumps(events))
    argv = (
        [sys.executable]
        + (["-X", "importtime"] if importtime else [])
        + [str(common.ROOT / "bench" / "_coldstart_child.py"), str(code_dir), str(event_file)]
        + ([str(layer)] if layer else [])
    )
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=tmp, timeout=120, check=False)
    wall = (time.perf_counter() - started) * 1e3
    line = next((x for x in proc.stdout.splitlines() if x.startswith("COLDSTART ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"cold-start child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(line[len("COLDSTART ") :])
    result["process_ms"] = wall
    if importtime:
        result["importtime"] = proc.stderr
    return result


def deployed_secrets(moto_url: str, webhook_secrets: dict[str, str]) -> dict[str, str]:
    """The Keap key and the webhook secrets stored in Secrets Manager (moto); the variables naming them."""
    import boto3

    client = boto3.client(
        "secretsmanager",
        endpoint_url=moto_url,
        region_name=common.REGION,
        aws_access_key_id=common.FAKE_AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=common.FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=common.FAKE_AWS["AWS_SESSION_TOKEN"],
    )
    tag = uuid.uuid4().hex[:8]
    key = client.create_secret(Name=f"bench-keap-key-{tag}", SecretString=common.EMULATOR_KEY)["ARN"]
    hooks = client.create_secret(Name=f"bench-webhooks-{tag}", SecretString=json.dumps(webhook_secrets))["ARN"]
    return {"KEAP_API_KEY_SECRET_ARN": key, "WEBHOOK_SECRETS_ARN": hooks}


def tree_copy(root: Path, dest: Path, bytecode: bool) -> Path:
    """functions/ and shared/keap_relay of a tree, with their .pyc compiled (as a warm local checkout has them)
    or without any (as sam build ships them)."""
    for part in ("functions", "shared/keap_relay"):
        shutil.copytree(root / part, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if bytecode:
        compileall.compile_dir(dest, quiet=1)
    return dest


def interpreter_ms(env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        times.append((time.perf_counter() - started) * 1e3)
    return common.median(times)


def top_imports(importtime: str, n: int = 15) -> list[tuple[str, float]]:
    """The heaviest imports made by the handler's import and first call (-X importtime), cumulative ms, for
    modules imported directly by code that is not itself a library's internals (the first two levels)."""
    rows = []
    for line in importtime.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        if not cumulative.strip().isdigit():
            continue
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        if depth <= 1:
            rows.append((name.strip(), int(cumulative) / 1000))
    return sorted(rows, key=lambda r: -r[1])[:n]


def run(
    quick: bool = False,
    runs: int | None = None,
    importtime: str | None = None,
    also: list[Path] | None = None,
    secrets_manager: bool = False,
    no_pyc: bool = False,
) -> dict[str, Any]:
    from keap_relay_local.defaults import DEFAULT_WEBHOOK_SECRETS

    runs = runs or (2 if quick else 5)
    cases: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp_name, common.moto() as moto_url, common.emulator(0) as keap:
        tmp = Path(tmp_name)
        spec, deployed = common.provision(moto_url)
        base_env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
        if no_pyc:  # nothing compiled is written back: every run compiles keap-relay's code again
            base_env["PYTHONDONTWRITEBYTECODE"] = "1"
        secrets = deployed_secrets(moto_url, DEFAULT_WEBHOOK_SECRETS) if secrets_manager else {}
        envs = {}
        for function in FOLDERS:
            env = common.function_env(
                spec,
                function,
                deployed,
                moto_url,
                keap,
                routes_file=common.ROOT / "config" / "routes.yaml",
                webhook_secrets=DEFAULT_WEBHOOK_SECRETS,
                # The shared budget books every call in DynamoDB as deployed, at a rate that never makes the
                # first invocation wait for the next second (that wait is pacing, not start-up).
                extra={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "KEAP_RATE_LIMIT": "1000"},
            )
            if secrets:
                env = {k: v for k, v in env.items() if k not in ("KEAP_API_KEY", "WEBHOOK_SECRETS")} | secrets
            envs[function] = {**base_env, **env}
        for name, source in (
            ("baseline: import boto3", BASELINE_IMPORT),
            ("baseline: import boto3 + one SendMessage", BASELINE_SEND),
        ):
            code = tmp / name.split(":")[1].strip().replace(" ", "-").replace("+", "and")
            code.mkdir()
            (code / "app.py").write_text(source)
            cases[name] = {"code": code, "env": envs["forms"], "events": lambda: [http_event("forms")] * 2}
        trees = [("", common.ROOT)] + [(f" [{Path(d).name}]", Path(d).resolve()) for d in also or []]
        if no_pyc or also:  # each tree as a copy, so all compile alike (or none is compiled, with --no-pyc)
            trees = [(label, tree_copy(root, tmp / f"tree-{i}", not no_pyc)) for i, (label, root) in enumerate(trees)]
        for label, root in trees:
            for function in FOLDERS:
                code = root / "functions" / function
                cases[f"{function}: webhook → 202{label}"] = {
                    "code": code,
                    "layer": root / "shared",
                    "env": envs[function],
                    "events": lambda f=function: [http_event(f), http_event(f)],
                }
                cases[f"{function}: SQS → Keap{label}"] = {
                    "code": code,
                    "layer": root / "shared",
                    "env": envs[function],
                    "events": lambda f=function: [sqs_event(f, deployed), sqs_event(f, deployed)],
                }
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
        for _ in range(runs):  # rounds over all cases, so drift on a shared machine hits all alike
            for name, case in cases.items():
                results[name].append(one_run(case["code"], case["events"](), case["env"], tmp, layer=case.get("layer")))
        python_ms = interpreter_ms(envs["forms"], runs)
        profile = None
        if importtime:
            worst = cases[importtime]
            timed = one_run(worst["code"], worst["events"](), worst["env"], tmp, True, worst.get("layer"))
            profile = top_imports(timed["importtime"])
    rows = []
    baseline = None
    for name, runs_of in results.items():
        row = {"case": name}
        for key in ("import_ms", "first_ms", "second_ms", "rss_mb", "process_ms"):
            row[key] = common.median([r[key] for r in runs_of])
        row["rss_mb"] = max(r["rss_mb"] for r in runs_of)
        row["cold_ms"] = common.median([r["import_ms"] + r["first_ms"] for r in runs_of])
        row["status"] = runs_of[0]["status"]
        row["failures"] = runs_of[0]["failures"]
        baseline = baseline or row["cold_ms"]
        row["ratio"] = row["cold_ms"] / baseline
        rows.append(row)
        print(
            f"  {name:<42} import {row['import_ms']:6.0f} ms + first {row['first_ms']:6.0f} ms = "
            f"{row['cold_ms']:6.0f} ms ({row['ratio']:.2f}x); warm {row['second_ms']:5.1f} ms; "
            f"peak RSS {row['rss_mb']:5.1f} MB"
        )
    by_case = {row["case"]: row for row in rows}
    for label, _ in trees[1:]:
        for name, row in by_case.items():
            if name.endswith(label) and name[: -len(label)] in by_case:
                this = by_case[name[: -len(label)]]
                print(
                    f"  {name[: -len(label)]:<42} {this['cold_ms']:6.0f} ms vs {row['cold_ms']:6.0f} ms{label}: "
                    f"{this['cold_ms'] / row['cold_ms']:.2f}x"
                )
    return {
        "rows": rows,
        "runs": runs,
        "python_ms": python_ms,
        "top_imports": profile,
        "command": "bench/bench_coldstart.py"
        + (" --quick" if quick else "")
        + (" --secrets-manager" if secrets_manager else "")
        + (" --no-pyc" if no_pyc else ""),
    }


def main() -> None:
    parser = common.cli(__doc__, "2 runs per case instead of 5")
    parser.add_argument("--runs", type=int, help="runs per case")
    parser.add_argument(
        "--importtime",
        metavar="CASE",
        help="also list the heaviest imports of one case, e.g. 'forms: SQS → Keap' (-X importtime)",
    )
    parser.add_argument(
        "--also",
        type=Path,
        action="append",
        metavar="DIR",
        help="also run each function case from this tree's functions/ and shared/ (e.g. a worktree of HEAD)",
    )
    parser.add_argument(
        "--secrets-manager", action="store_true", help="read the secrets from Secrets Manager (moto), as deployed"
    )
    parser.add_argument(
        "--no-pyc", action="store_true", help="keap-relay's code without .pyc (a layer built without bytecode)"
    )
    args = parser.parse_args()
    data = run(args.quick, args.runs, args.importtime, args.also, args.secrets_manager, args.no_pyc)
    if data["top_imports"]:
        for name, ms in data["top_imports"]:
            print(f"  {ms:7.1f} ms  {name}")
    common.save("coldstart", data, args.out)


if __name__ == "__main__":
    main()
