"""Command line of the emulator: `serve` runs it on 127.0.0.1, `inspect` summarises a running one."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import urllib.request
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from keap_emulator.faults import FaultPlan
from keap_emulator.quotas import QuotaPlan
from keap_emulator.server import DEFAULT_API_KEY as DEFAULT_KEY
from keap_emulator.server import EmulatorServer
from keap_emulator.world import WorldError

DEFAULT_PORT = 8765
KEY_ENV = "KEAP_EMULATOR_API_KEY"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("a rate is between 0 and 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m keap_emulator`."""
    parser = argparse.ArgumentParser(
        prog="python -m keap_emulator",
        description="A Keap (Infusionsoft) ContactService XML-RPC emulator for local runs and tests. "
        "It binds 127.0.0.1 only.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve",
        help="run the emulator until Ctrl-C",
        description="Serve XML-RPC at http://127.0.0.1:PORT/crm/xmlrpc/v1 (also /crm/xmlrpc, /api/xmlrpc) and "
        "REST v2 under http://127.0.0.1:PORT/crm/rest/v2. "
        "Clients authenticate with the header X-Keap-API-Key: KEY or Authorization: Bearer KEY; the first "
        "XML-RPC parameter is a placeholder. Inspection lives under /_emulator/ (see GET /).",
    )
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT}; 0 = any)")
    serve.add_argument("--db", default=":memory:", help="SQLite file to keep state in (default: in memory)")
    serve.add_argument(
        "--api-key",
        default=os.environ.get(KEY_ENV, DEFAULT_KEY),
        help=f"the key clients must send (default: ${KEY_ENV}, else {DEFAULT_KEY!r})",
    )
    serve.add_argument("--seed", metavar="FILE", help="world JSON file (default: the bundled default_world.json)")
    serve.add_argument(
        "--quota",
        choices=("pat", "none"),
        default="none",
        help="rate limits: 'pat' = Keap's PAT/SAK limits (10/s, 240/min, 30000/day); default none",
    )
    serve.add_argument("--quota-per-second", type=int, metavar="N", help="limit per 1-second window")
    serve.add_argument("--quota-per-minute", type=int, metavar="N", help="limit per 1-minute window")
    serve.add_argument("--quota-per-day", type=int, metavar="N", help="limit per UTC day")
    faults = serve.add_argument_group("fault injection (rates are chances per call, 0..1, adding up to <= 1)")
    faults.add_argument("--latency-ms", type=int, default=0, metavar="N", help="delay added before every answer")
    faults.add_argument("--rate-5xx", type=_rate, default=0.0, metavar="F", help="answer HTTP 502/503 (not applied)")
    faults.add_argument("--rate-429", type=_rate, default=0.0, metavar="F", help="answer HTTP 429 (not applied)")
    faults.add_argument("--rate-drop", type=_rate, default=0.0, metavar="F", help="close the connection unanswered")
    faults.add_argument(
        "--drop-after-apply", action="store_true", help="dropped calls are applied first (the answer is lost)"
    )
    faults.add_argument(
        "--rate-malformed", type=_rate, default=0.0, metavar="F", help="HTTP 200 with a truncated XML body"
    )
    faults.add_argument(
        "--rate-fault",
        type=_rate,
        default=0.0,
        metavar="F",
        help="answer [DatabaseError]Error returning results",
    )
    faults.add_argument(
        "--fault-methods",
        metavar="M[,M]",
        help="inject only into these methods, e.g. ContactService.addToGroup",
    )
    faults.add_argument(
        "--fault-surfaces",
        metavar="S[,S]",
        help="inject only into these surfaces: xmlrpc, rest (default both)",
    )
    faults.add_argument("--fault-seed", type=int, metavar="N", help="seed for reproducible fault draws")
    serve.add_argument("--quiet", action="store_true", help="do not log each call to stderr")

    inspect = sub.add_parser("inspect", help="print a summary of a running emulator's state")
    inspect.add_argument("--url", default=f"http://127.0.0.1:{DEFAULT_PORT}", help="the emulator's base URL")
    inspect.add_argument("--json", action="store_true", help="print the raw state JSON instead")
    return parser


def _quota_from(args: argparse.Namespace) -> QuotaPlan | None:
    custom = (args.quota_per_second, args.quota_per_minute, args.quota_per_day)
    if any(v is not None for v in custom):
        return QuotaPlan(*custom)
    return QuotaPlan.pat() if args.quota == "pat" else None


def _faults_from(args: argparse.Namespace) -> FaultPlan:
    methods = {m.strip() for m in args.fault_methods.split(",") if m.strip()} if args.fault_methods else None
    return FaultPlan(
        latency_ms=args.latency_ms,
        rate_5xx=args.rate_5xx,
        rate_429=args.rate_429,
        rate_drop=args.rate_drop,
        drop_after_apply=args.drop_after_apply,
        rate_malformed=args.rate_malformed,
        rate_fault=args.rate_fault,
        methods=methods,
        seed=args.fault_seed,
        surfaces={x.strip() for x in args.fault_surfaces.split(",") if x.strip()} if args.fault_surfaces else None,
    )


def serve(args: argparse.Namespace) -> int:
    """Run the emulator in the foreground until Ctrl-C or SIGTERM."""
    try:
        emu = EmulatorServer(
            port=args.port,
            db=args.db,
            api_key=args.api_key,
            seed=args.seed,
            quota=_quota_from(args),
            faults=_faults_from(args),
        ).start()
    except (ValueError, WorldError, OSError) as exc:
        print(f"keap_emulator: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    quota = emu.quota.to_dict() if emu.quota else "none"
    base = emu.base_url
    print(f"Keap ContactService emulator: {emu.url}", flush=True)
    print(
        "  auth: header X-Keap-API-Key or Authorization: Bearer, with the --api-key value (not shown)\n"
        f"  db: {args.db}  world: {args.seed or 'default'}  quota: {quota}\n"
        f"  index:   {base}/\n"
        f"  state:   {base}/_emulator/state\n"
        f"  calls:   {base}/_emulator/calls\n"
        f"  contact: {base}/_emulator/contacts/<id>\n"
        f"  control: POST {base}/_emulator/faults | /_emulator/quota | /_emulator/reset\n"
        f"  summary: python -m keap_emulator inspect --url {base}",
        flush=True,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()
    emu.stop()
    return 0


def _get(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=10) as response:  # noqa: S310 - loopback only, checked
        return json.load(response)


def summarise(state: dict[str, Any], calls: list[dict[str, Any]], base: str) -> str:
    """A readable summary of a state snapshot and call log."""
    world = state.get("world", {})
    tag_names = {t["id"]: t.get("name", "") for t in world.get("tags", [])}
    seq_names = {s["id"]: s.get("name", "") for s in world.get("sequences", [])}
    set_names = {a["id"]: a.get("name", "") for a in world.get("action_sets", [])}
    contacts = state.get("contacts", [])
    lines = [f"Keap emulator at {base}: {len(contacts)} contact(s), {len(calls)} call(s) logged"]
    for c in contacts:
        cid = c["Id"]
        name = " ".join(p for p in (c.get("FirstName"), c.get("LastName")) if p) or "(no name)"
        lines.append(f"#{cid} {name} <{c.get('Email', '')}>")
        tags = ", ".join(f"{t} {tag_names.get(t, '?')}" for t in c.get("tags", []))
        lines.append(f"    tags: {tags or '-'}")
        for e in (e for e in state.get("enrolments", []) if e["contact_id"] == cid):
            nxt = f"next step {e['next_step_id']}" if e["next_step_id"] else "finished"
            lines.append(f"    sequence {e['sequence_id']} {seq_names.get(e['sequence_id'], '?')}: {e['state']}, {nxt}")
        runs = Counter(r["action_set_id"] for r in state.get("action_set_runs", []) if r["contact_id"] == cid)
        for set_id, count in sorted(runs.items()):
            lines.append(f"    action set {set_id} {set_names.get(set_id, '?')}: run {count}x")
    applies = [t for t in state.get("tag_events", []) if t["op"] == "apply"]
    lines.append(
        f"tag applications: {len(applies)}; sequence starts: {len(state.get('sequence_starts', []))}; "
        f"action-set runs: {len(state.get('action_set_runs', []))}"
    )
    by_status = Counter(str(c.get("http_status")) for c in calls)
    injected = Counter(c["injected"] for c in calls if c.get("injected"))
    if calls:
        lines.append("calls by HTTP status: " + ", ".join(f"{k}: {v}" for k, v in sorted(by_status.items())))
    if injected:
        lines.append("injected: " + ", ".join(f"{k}: {v}" for k, v in sorted(injected.items())))
    return "\n".join(lines)


def inspect(args: argparse.Namespace) -> int:
    """Print the summary (or raw JSON) of a running emulator."""
    parts = urlsplit(args.url)
    if parts.scheme != "http" or parts.hostname not in _LOOPBACK:
        print(
            "keap_emulator: inspect only talks to an emulator on loopback (http://127.0.0.1:PORT)",
            file=sys.stderr,
        )
        return 2
    base = f"http://{parts.netloc}"
    try:
        state = _get(base, "/_emulator/state")
        calls = _get(base, "/_emulator/calls")
    except OSError as exc:
        print(f"keap_emulator: cannot reach {base}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(state, indent=2) if args.json else summarise(state, calls, base))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m keap_emulator`."""
    args = build_parser().parse_args(argv)
    return serve(args) if args.command == "serve" else inspect(args)
