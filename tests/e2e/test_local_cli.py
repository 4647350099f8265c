"""The commands a user runs: `keap-relay` and `python -m keap_relay_local run|demo|invoke`, each in its own process."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import REPO

from keap_relay_ops.cli import COMMANDS

pytestmark = pytest.mark.e2e


# The console script `make setup` installs beside the interpreter.
KEAP_RELAY = str(Path(sys.executable).with_name("keap-relay"))


def run_cli(
    *args: str, stdin: str | None = None, timeout: float = 120, command: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    # Without KEAP_API_KEY the commands use the emulator: a developer's real key must never reach a test.
    env = {k: v for k, v in os.environ.items() if k not in ("KEAP_API_KEY", "KEAP_URL", "WEBHOOK_SECRETS")}
    return subprocess.run(
        [*(command or (sys.executable, "-m", "keap_relay_local")), *args],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("command", [(KEAP_RELAY,), (sys.executable, "-m", "keap_relay_local")], ids=["script", "-m"])
def test_help_lists_every_command_on_one_line(command: tuple[str, ...]) -> None:
    done = run_cli("--help", command=command)
    assert done.returncode == 0, done.stderr
    lines = [line.split(maxsplit=1) for line in done.stdout.splitlines()]
    for name, entry in COMMANDS.items():
        assert [name, entry.summary] in lines, done.stdout
    assert {"run", "demo", "invoke", "dlq"} <= set(COMMANDS)


def test_an_unknown_command_exits_2_with_one_line_on_stderr() -> None:
    done = run_cli("frobnicate", command=(KEAP_RELAY,))
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("keap-relay: ") and "'frobnicate'" in line


def test_a_command_that_cannot_run_says_why_in_one_line_without_a_traceback() -> None:
    done = run_cli("invoke", "--function", "forms", "--event", "events/forms/no-such.json", command=(KEAP_RELAY,))
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("keap-relay invoke: ") and "events/forms/no-such.json" in line


def test_invoke_runs_a_bare_event_through_the_function_and_prints_its_result() -> None:
    done = run_cli("invoke", "--function", "forms", "--event", "events/forms/bare.json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # stdout is the result alone; logs went to stderr
    assert result["status"] == "applied"


def test_invoke_processes_an_http_event_inline_without_a_queue() -> None:
    done = run_cli("invoke", "--function", "forms", "--event", "events/forms/http-generic.json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["statusCode"] == 200  # 202 would mean it was queued
    assert json.loads(result["body"])["status"] == "applied"


def test_invoke_exits_1_when_the_handler_raises(standin_root: Path) -> None:
    done = run_cli("invoke", "--root", str(standin_root), "--function", "echo", "--event", "-", stdin='{"boom": 1}')
    assert done.returncode == 1
    assert json.loads(done.stdout)["errorType"] == "RuntimeError"


def test_invoke_exits_1_when_the_webhook_is_refused() -> None:
    event = json.loads((REPO / "events/forms/http-generic.json").read_text())
    event["headers"]["x-relay-signature"] = "sha256=" + "0" * 64
    done = run_cli("invoke", "--function", "forms", "--event", "-", stdin=json.dumps(event))
    assert done.returncode == 1
    assert json.loads(done.stdout)["statusCode"] == 401


def test_demo_applies_every_sample_and_shows_keap_state() -> None:
    done = run_cli("demo", timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    # No `run` stack is up during the tests (the run tests stop theirs): the demo starts its own and says so.
    assert done.stdout.startswith("No `keap-relay run` (make run) stack is up: starting a stack"), done.stdout[:300]
    # Every sample has a real effect: no unsubscribe for a contact the demo never created.
    assert "no such contact" not in done.stdout
    samples = sorted(REPO.glob("events/*/http-*.json")) + sorted(REPO.glob("events/*/eventbridge.json"))
    for sample in samples:
        assert f"{sample.parent.name}/{sample.stem}" in done.stdout
    assert f"{len(samples)} of {len(samples)} samples applied" in done.stdout


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def run_stack() -> Iterator[tuple[list[str], list[str]]]:
    """`keap-relay run` on free ports in its own process: yields the ports (gateway, emulator, moto) and its
    banner's lines up to the curl example; stopped with Ctrl-C (SIGINT), which must end it cleanly."""
    ports = [str(_free_port()) for _ in range(3)]
    env = {k: v for k, v in os.environ.items() if k not in ("KEAP_API_KEY", "KEAP_URL", "WEBHOOK_SECRETS")}
    command = [sys.executable, "-m", "keap_relay_local", "run"]
    command += ["--gateway-port", ports[0], "--emulator-port", ports[1], "--moto-port", ports[2]]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline() if proc.stdout else ""
            if not line:
                break
            lines.append(line)
            if line.lstrip().startswith("curl "):
                break
        yield ports, lines
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode == 0


def test_run_starts_the_stack_prints_its_urls_and_its_curl_example_is_accepted() -> None:
    with run_stack() as (ports, lines):
        banner = "".join(lines)
        assert f"http://127.0.0.1:{ports[0]}/forms/generic" in banner, banner
        assert f"http://127.0.0.1:{ports[1]}/_emulator/state" in banner, banner
        curl = next(line.strip() for line in lines if line.lstrip().startswith("curl "))
        if shutil.which("curl"):
            out = subprocess.run(curl + " -w ' %{http_code}'", shell=True, capture_output=True, text=True, timeout=30)
            assert out.stdout.strip().endswith("202"), out.stdout + out.stderr


def test_demo_sends_through_the_stack_run_started_when_one_is_up() -> None:
    with run_stack() as (ports, lines):
        assert any(line.lstrip().startswith("curl ") for line in lines), "".join(lines)
        done = run_cli("demo", timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        first = done.stdout.splitlines()[0]
        assert first.startswith("Using the stack `keap-relay run` started"), first
        assert f"http://127.0.0.1:{ports[0]}" in first
        # What the table shows is in that stack's Keap: the `run` state page shows the demo's contacts.
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[1]}/_emulator/state", timeout=10) as answer:
            emails = {c.get("Email") for c in json.loads(answer.read())["contacts"]}
        assert {"edsger@example.com", "zaphod@example.com", "grace.hopper@example.com"} <= emails
        assert "no such contact" not in done.stdout
