"""The local stack's `keap-relay` commands (dev only): run the stack, demo it, invoke one function.

The entry point and the command table are the operator package's (`keap_relay_ops.cli`); it imports this
module only when one of these commands runs. Kept light at import (the stack loads when a command needs it):
`keap-relay dlq` reads `read_state` and `DEFAULT_PORTS` from here.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keap_relay.keap.defaults import DEFAULT_URL

from .defaults import DEFAULT_WEBHOOK_SECRETS, ROOT

if TYPE_CHECKING:
    from .stack import LocalStack

STATE_FILE = Path(".local-stack") / "stack.json"  # under the repository root (git-ignored), while `run` runs
DEFAULT_PORTS = {"gateway": 3000, "emulator": 8765, "moto": 5005}
LOCAL_REGION = "us-east-1"  # the local stack's region (LocalStack's default)

DEFAULT_ROUTES = "config/routes.yaml"  # relative to the repository root
ROUTES_HELP = "routes file (default: the repository's config/routes.yaml)"


def read_state(root: Path) -> dict[str, Any]:
    """The URLs a running `keap-relay run` wrote to .local-stack/stack.json (no secrets); {} when none runs."""
    try:
        return dict(json.loads((root / STATE_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def _routes_path(value: str) -> str:
    # A path the user types is relative to where they are; only the default is the repository's.
    return str(Path(value).resolve())


_KEAP_ENV_HELP = (
    "Keap is an emulator started on 127.0.0.1 unless KEAP_API_KEY or KEAP_URL is set in the environment: "
    f"then the functions use that Keap (KEAP_URL defaults to {DEFAULT_URL}; "
    "KEAP_API_KEY to the emulator's key, for an emulator started with `python -m keap_emulator serve`). "
    "WEBHOOK_SECRETS (a JSON object source -> secret) replaces the local secrets of events/local-secrets.json."
)


def _command(parser: argparse.ArgumentParser, description: str, handler: Any) -> None:
    parser.description = description
    parser.epilog = _KEAP_ENV_HELP
    parser.set_defaults(handler=handler)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    # moto's per-request lines and boto3's credential notices say nothing a user needs.
    for noisy in ("werkzeug", "botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _secrets_from_env() -> dict[str, str]:
    raw = os.environ.get("WEBHOOK_SECRETS")
    return {str(k): str(v) for k, v in json.loads(raw).items()} if raw else dict(DEFAULT_WEBHOOK_SECRETS)


def _add_stack_options(parser: argparse.ArgumentParser) -> None:
    from .stack import DEFAULT_VISIBILITY_TIMEOUT

    parser.add_argument("--routes", type=_routes_path, help=ROUTES_HELP)
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        default=DEFAULT_VISIBILITY_TIMEOUT,
        metavar="SECONDS",
        help="visibility timeout of the local work queues, replacing the template's so that a failed record "
        "is retried after seconds, not minutes (default: %(default)s)",
    )
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)


# ---------------------------------------------------------------------------------------------------- run


def add_run(parser: argparse.ArgumentParser) -> None:
    """`keap-relay run`'s arguments."""
    _command(parser, "start the local stack on fixed ports and keep it running until Ctrl-C", cmd_run)
    _add_stack_options(parser)
    for name, port in DEFAULT_PORTS.items():
        parser.add_argument(f"--{name}-port", type=int, default=port, help=f"{name} port (default: %(default)s)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def _curl_example(stack: LocalStack) -> str | None:
    sample = stack.root / "events" / "forms" / "http-generic.json"
    if not sample.exists():
        return None
    from keap_relay.events.sources import sign_request

    event = json.loads(sample.read_text(encoding="utf-8"))
    body = str(event.get("body") or "").encode()
    secret = stack.webhook_secrets.get("generic")
    if secret is None:
        return None
    signed = sign_request("generic", body, secret).headers
    headers = " ".join(f"-H {shlex.quote(f'{name}: {value}')}" for name, value in signed.items())
    return (
        f"curl -sS -X POST {stack.webhook_url('forms', 'generic')} {headers} --data-binary {shlex.quote(body.decode())}"
    )


def describe(stack: LocalStack) -> dict[str, Any]:
    """URLs of a running stack (no secrets): printed by `run` and written to .local-stack/stack.json."""
    return {
        "gateway": stack.gateway_url,
        "routes": [f"{r.method} {stack.gateway_url}{r.path}" for r in stack.spec.routes],
        "emulator": stack.emulator.base_url if stack.emulator is not None else None,
        "keap_url": stack.keap_url,
        "moto": stack.moto_url,
        "region": stack.region,
        "queues": {k: {"queue": stack.queue_url(k), "dlq": stack.dlq_url(k)} for k in stack.kinds},
        "tables": dict(stack.deployed.table_names),  # logical id -> name (the archive's: `keap-relay archive`)
        "visibility_timeout": stack.visibility_timeout,
        "pid": os.getpid(),
    }


def _print_run_banner(stack: LocalStack, info: dict[str, Any]) -> None:
    lines = ["", "keap-relay local stack is up", "", "Webhooks (API Gateway HTTP API stand-in):"]
    lines += [f"  {route}" for route in info["routes"]]
    if stack.emulator is not None:
        lines += [
            "",
            f"Keap emulator            {stack.keap_url}  (functions use KEAP_API={stack.keap_api or 'rest'})",
            f"  state                  {info['emulator']}/_emulator/state",
            f"  call log               {info['emulator']}/_emulator/calls",
        ]
    else:
        lines += ["", f"Keap: {stack.keap_url} (from KEAP_URL / KEAP_API_KEY; no emulator started)"]
    lines += ["", f"moto (SQS, EventBridge, DynamoDB)  {info['moto']}  region {info['region']}"]
    for kind, urls in info["queues"].items():
        lines.append(f"  {kind:<13} queue {urls['queue']}  dlq {urls['dlq']}")
    lines.append(f"  work queues use a {stack.visibility_timeout} s visibility timeout locally (--visibility-timeout)")
    curl = _curl_example(stack)
    if curl:
        lines += ["", "Try it (a signed sample form):", f"  {curl}"]
    lines += [
        "",
        f"Editing {stack.routes_file.name} deploys it (the functions restart; nothing else is lost).",
        "Ctrl-C to stop.",
        "",
    ]
    print("\n".join(lines), flush=True)


def _wait_for_signal(every_second: Callable[[], None] = lambda: None) -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1):
        every_second()


def _watch_routes(stack: Any) -> None:
    """An edited routes file is deployed while `run` runs (the archive, queues and emulator stay), so a route
    can be fixed and archived events replayed under it."""
    said = stack.redeploy_edited_routes()
    if said:
        print(said, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    from .stack import LocalStack

    _setup_logging(args.verbose)
    stack = LocalStack.from_env(
        gateway_port=args.gateway_port,
        emulator_port=args.emulator_port,
        moto_port=args.moto_port,
        routes_file=args.routes or DEFAULT_ROUTES,
        visibility_timeout=args.visibility_timeout,
        root=args.root,
    )
    state = args.root / STATE_FILE
    with stack:
        info = describe(stack)
        state.parent.mkdir(exist_ok=True)
        state.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        _print_run_banner(stack, info)
        try:
            _wait_for_signal(lambda: _watch_routes(stack))
        finally:
            state.unlink(missing_ok=True)
            print("stopping ...", flush=True)
    return 0


# ---------------------------------------------------------------------------------------------------- demo


def add_demo(parser: argparse.ArgumentParser) -> None:
    """`keap-relay demo`'s arguments."""
    _command(
        parser,
        "send every sample webhook and bus event through a stack and show what Keap holds: the stack "
        "`keap-relay run` (make run) started when one is up, else one started for the demo",
        cmd_demo,
    )
    _add_stack_options(parser)
    parser.add_argument("--gateway", metavar="URL", help="use the running stack at URL instead of starting one")
    parser.add_argument(
        "--emulator",
        metavar="URL",
        help="with --gateway: the emulator's base URL (default: from .local-stack/stack.json, written by `run`)",
    )
    parser.add_argument("--moto", metavar="URL", help="with --gateway: moto's URL (default: as --emulator)")
    parser.add_argument(
        "--new-stack", action="store_true", help="start a stack for the demo even when `keap-relay run`'s is up"
    )
    parser.add_argument("--verbose", action="store_true", help="show the stack's log")


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    return True


def _answers(url: str) -> bool:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=1):
            return True
    except OSError:
        return False


def running_stack(root: Path) -> dict[str, Any]:
    """The state of the stack `keap-relay run` keeps up, or {} when none is: no state file, or one left
    behind by a run that was killed (its process gone, or its gateway not answering)."""
    state = read_state(root)
    if not state.get("gateway") or not _pid_alive(state.get("pid")) or not _answers(str(state["gateway"])):
        return {}
    return state


def _http_json(url: str) -> Any:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - URL given by the user
        return json.loads(response.read())


# What the demo says about the stack it sends through, by the case.
_OWN_STACK = "starting a stack for this demo, stopped when it ends"
_DEMO_STACK_LINES = {
    "new": f"--new-stack: {_OWN_STACK}.",
    "none": f"No `keap-relay run` (make run) stack is up: {_OWN_STACK}.",
    # Its functions call a real Keap (KEAP_API_KEY): the samples would create contacts there.
    "real-keap": f"The `keap-relay run` stack calls a real Keap, not the emulator: {_OWN_STACK} "
    "(--gateway URL sends to that one anyway).",
    "run": "Using the stack `keap-relay run` started (pid {pid}): gateway {gateway}, Keap {emulator}/_emulator/state",
}


def _demo_target(root: Path, new_stack: bool) -> tuple[dict[str, Any], str]:
    """The `run` stack's state to send through ({} to start one), and the line saying which."""
    known = {} if new_stack else running_stack(root)
    case = "new" if new_stack else "none" if not known else "real-keap" if not known.get("emulator") else "run"
    return (known if case == "run" else {}), _DEMO_STACK_LINES[case].format(**known)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import load_samples, run_demo, wait_queues_empty
    from .resources import client
    from .stack import LocalStack

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    if not args.verbose:
        logging.getLogger("keap_emulator").setLevel(logging.WARNING)
    samples = load_samples(args.root)
    if not samples:
        print(f"no samples under {args.root / 'events'}", file=sys.stderr)
        return 1
    known = read_state(args.root)  # with --gateway: where its emulator and moto are
    gateway = args.gateway
    if gateway is None:
        known, why = _demo_target(args.root, args.new_stack)
        gateway = known.get("gateway")
        print(why + "\n", flush=True)
    if gateway is None:
        with LocalStack.from_env(
            routes_file=args.routes or DEFAULT_ROUTES, visibility_timeout=args.visibility_timeout, root=args.root
        ) as stack:
            emulator = stack.emulator
            outcomes = run_demo(
                samples,
                gateway_url=stack.gateway_url,
                events=stack.events,
                sqs=stack.sqs,
                dlq_urls={k: stack.dlq_url(k) for k in stack.kinds},
                secrets=stack.webhook_secrets,
                drain=lambda: stack.wait_drained(60),
                snapshot=(lambda: emulator.model.snapshot()) if emulator is not None else None,
                out=sys.stdout,
            )
    else:
        emulator_url = args.emulator or known.get("emulator")
        moto_url = args.moto or known.get("moto")
        region = known.get("region", LOCAL_REGION)
        sqs = client("sqs", moto_url, region) if moto_url else None
        queues = known.get("queues") or {}
        outcomes = run_demo(
            samples,
            gateway_url=gateway.rstrip("/"),
            events=client("events", moto_url, region) if moto_url else None,
            sqs=sqs,
            dlq_urls={k: q["dlq"] for k, q in queues.items() if q.get("dlq")},
            secrets=_secrets_from_env(),
            drain=(lambda: wait_queues_empty(sqs, [q["queue"] for q in queues.values()])) if sqs else lambda: None,
            snapshot=(lambda: _http_json(emulator_url + "/_emulator/state")) if emulator_url else None,
            out=sys.stdout,
        )
    failed = [o for o in outcomes if not o.applied]
    print(f"\n{len(outcomes) - len(failed)} of {len(outcomes)} samples applied.")
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------------- invoke


def add_invoke(parser: argparse.ArgumentParser) -> None:
    """`keap-relay invoke`'s arguments."""
    _command(parser, "run one event through one function in this process (no Docker, no queue)", cmd_invoke)
    parser.add_argument("--function", required=True, help="function folder under functions/ (forms, purchases, ...)")
    parser.add_argument("--event", required=True, help="event JSON file (- for stdin), e.g. events/forms/bare.json")
    parser.add_argument("--routes", type=_routes_path, help=ROUTES_HELP)
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)


def cmd_invoke(args: argparse.Namespace) -> int:
    from .invoke import invoke_function

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    raw = sys.stdin.read() if args.event == "-" else Path(args.event).read_text(encoding="utf-8")
    event = json.loads(raw)
    result, ok = invoke_function(
        args.function,
        event,
        root=args.root,
        routes_file=args.routes or DEFAULT_ROUTES,
        keap_api_key=os.environ.get("KEAP_API_KEY") or None,
        keap_url=os.environ.get("KEAP_URL") or None,
        webhook_secrets=_secrets_from_env(),
        keap_api=os.environ.get("KEAP_API") or None,
    )
    print(json.dumps(result, indent=2, default=str))
    return 0 if ok else 1
