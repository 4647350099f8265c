"""`python -m keap_emulator`: serve prints its URLs and serves on loopback; inspect summarises; --help is right."""

import os
import re
import signal
import subprocess
import sys
import xmlrpc.client
from pathlib import Path

import pytest

from keap_emulator import EmulatorServer, FaultPlan
from keap_emulator.cli import main

LOCAL = str(Path(__file__).resolve().parents[2] / "local")


def run_module(*args, env_extra=None, **kwargs):
    env = {**os.environ, "PYTHONPATH": LOCAL, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "keap_emulator", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        **kwargs,
    )


def test_serve_help_lists_every_option():
    result = run_module("serve", "--help")
    assert result.returncode == 0
    for option in (
        "--port",
        "--db",
        "--api-key",
        "--seed",
        "--quota {pat,none}",
        "--quota-per-second",
        "--quota-per-minute",
        "--quota-per-day",
        "--latency-ms",
        "--rate-5xx",
        "--rate-429",
        "--rate-drop",
        "--rate-malformed",
        "--rate-fault",
        "--drop-after-apply",
    ):
        assert option in result.stdout
    assert "default 8765" in result.stdout
    assert "local-dev-key" in result.stdout  # the documented default, not a secret
    assert "127.0.0.1" in result.stdout


def test_serve_prints_urls_serves_and_stops_on_sigterm(tmp_path):
    secret = "env-key-not-to-be-printed"
    env = {**os.environ, "PYTHONPATH": LOCAL, "KEAP_EMULATOR_API_KEY": secret}
    db = tmp_path / "emulator.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "keap_emulator", "serve", "--port", "0", "--db", str(db), "--quota", "pat"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        first = proc.stdout.readline()
        assert first, proc.stderr.read()
        url = re.search(r"http://127\.0\.0\.1:\d+/crm/xmlrpc/v1", first).group(0)
        base = url.removesuffix("/crm/xmlrpc/v1")
        proxy = xmlrpc.client.ServerProxy(url, headers=[("X-Keap-API-Key", secret)])
        cid = proxy.ContactService.add("k", {"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com"})
        assert proxy.ContactService.addToGroup("k", cid, 100) is True
        assert proxy.ContactService.addToCampaign("k", cid, 11) is True
        assert proxy.ContactService.runActionSequence("k", cid, 21)[0]["IsError"] is False
        inspected = run_module("inspect", "--url", base)
        assert inspected.returncode == 0, inspected.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        # read through the text wrappers: readline() above may have buffered the rest already
        out, err = proc.stdout.read(), proc.stderr.read()
    assert proc.returncode == 0
    printed = first + out
    assert f"{base}/_emulator/state" in printed and f"{base}/_emulator/calls" in printed
    assert "pat" in printed or "30000" in printed
    assert "ContactService.add -> 200" in err  # one log line per call
    assert secret not in printed + err + inspected.stdout
    summary = inspected.stdout
    assert "1 contact(s), 4 call(s)" in summary
    assert "#1 Ada Lovelace <ada@example.com>" in summary
    assert "100 Lead: website form" in summary and "201 Customer: first purchase" in summary
    assert "sequence 11 Welcome: active, next step 1101" in summary
    assert "action set 21 New customer: run 1x" in summary
    assert db.exists()


def test_serve_refuses_a_bad_world_file(tmp_path):
    world = tmp_path / "world.json"
    world.write_text('{"format": 2}')
    result = run_module("serve", "--port", "0", "--seed", str(world))
    assert result.returncode == 2
    assert "format" in result.stderr


def test_inspect_in_process_reports_injections(capsys):
    with EmulatorServer(port=0, api_key="k") as emu:
        emu.model.add({"FirstName": "Bo", "Email": "bo@example.com"})
        emu.set_faults(FaultPlan(rate_fault=1.0))
        proxy = xmlrpc.client.ServerProxy(emu.url, headers=[("X-Keap-API-Key", "k")])
        with pytest.raises(xmlrpc.client.Fault):
            proxy.ContactService.addToGroup("k", 1, 300)
        assert main(["inspect", "--url", emu.url]) == 0
    out = capsys.readouterr().out
    assert "#1 Bo <bo@example.com>" in out
    assert "tags: -" in out
    assert "injected: fault: 1" in out


@pytest.mark.parametrize("url", ["http://10.0.0.5:8765", "https://127.0.0.1:8765", "http://example.com"])
def test_inspect_only_talks_to_loopback(url, capsys):
    assert main(["inspect", "--url", url]) == 2
    assert "loopback" in capsys.readouterr().err
