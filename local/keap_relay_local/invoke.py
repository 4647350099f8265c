"""`invoke`: one event through one function, in this process, without Docker and without a queue."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from keap_relay.keap.defaults import DEFAULT_URL

from .defaults import DEFAULT_WEBHOOK_SECRETS, EMULATOR_API_KEY, ROOT
from .resources import MotoServer, provision
from .runtime import LambdaContext, error_result, load_handler
from .stack import function_environment
from .template import read_stack

# Variables kept from the caller's environment while the handler runs; everything else (a developer's
# AWS profile and keys above all) is hidden so the function can only reach moto and Keap.
_KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT")

# Results that mean the event was not applied, whichever trigger shape it had.
FAILED_RESULTS = (
    ("HTTP error status", lambda r: isinstance(r.get("statusCode"), int) and r["statusCode"] >= 400),
    ("batch item failures", lambda r: bool(r.get("batchItemFailures"))),
    ("dead-lettered", lambda r: r.get("status") == "dead_lettered"),
)


def failure_of(result: Any) -> str | None:
    """Why a handler result counts as a failure, or None when it does not."""
    if not isinstance(result, dict):
        return None
    return next((why for why, test in FAILED_RESULTS if test(result)), None)


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update({k: v for k, v in saved.items() if k in _KEPT})
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def invoke_function(
    function: str,
    event: Any,
    *,
    root: str | Path | None = None,
    routes_file: str | Path = "config/routes.yaml",
    keap_url: str | None = None,
    keap_api_key: str | None = None,
    webhook_secrets: dict[str, str] | None = None,
    region: str = "us-east-1",
    keap_api: str | None = None,
) -> tuple[Any, bool]:
    """Run `event` through `functions/<function>/app.py` here; returns (result or error body, ok).

    Keap is an ephemeral emulator unless `keap_url` or `keap_api_key` is given (as for LocalStack).
    `keap_api` (xmlrpc | rest) replaces the template's KEAP_API, which is rest by default.
    moto stands in for the DLQ and the idempotency table; QUEUE_URL is left unset, so HTTP events are
    processed inline.
    """
    base = Path(root).resolve() if root else ROOT
    spec = read_stack(base / "template.yaml", region)
    if function not in spec.functions:
        raise KeyError(f"no function {function!r} in the template (have: {', '.join(spec.functions)})")
    fn = spec.functions[function]
    routes = Path(routes_file)
    with contextlib.ExitStack() as stack:
        if keap_api_key is None and keap_url is None:
            from keap_emulator import EmulatorServer

            emulator = EmulatorServer(port=0, api_key=EMULATOR_API_KEY).start()
            stack.callback(emulator.stop)
            url = emulator.url
        else:
            url = keap_url or DEFAULT_URL
        moto = MotoServer(0)
        moto.start()
        stack.callback(moto.stop)
        deployed = provision(spec, moto.url, region, visibility_timeout=None)
        env = function_environment(
            spec,
            function,
            deployed,
            moto_url=moto.url,
            region=region,
            keap_url=url,
            keap_api_key=keap_api_key,
            routes_file=routes if routes.is_absolute() else base / routes,
            webhook_secrets=webhook_secrets or DEFAULT_WEBHOOK_SECRETS,
            with_queue=False,
            extra={"KEAP_API": keap_api} if keap_api else None,
        )
        # Handler logs and metrics go to stderr, so stdout carries the result alone (pipe it to jq).
        with _environment(env), contextlib.redirect_stdout(sys.stderr):
            try:
                handler = load_handler(base, fn.code_dir, fn.handler, f"invoke_{function}")
                result = handler(event, LambdaContext(env["AWS_LAMBDA_FUNCTION_NAME"], fn.memory, fn.timeout, region))
            except Exception as exc:  # reported the way Lambda reports it
                return error_result(exc), False
    return result, failure_of(result) is None
