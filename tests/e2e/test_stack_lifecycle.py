"""A stack leaves nothing behind: processes, threads and ports end with it, even when it fails to start."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from e2e_support import pid_alive

from keap_emulator import EmulatorServer
from keap_relay.keap.defaults import DEFAULT_URL
from keap_relay_local.defaults import EMULATOR_API_KEY
from keap_relay_local.stack import LocalStack

pytestmark = pytest.mark.e2e

STACK_THREADS = ("gateway", "poller-", "fnhost-log-", "keap-emulator")


def port_open(url: str) -> bool:
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stack_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(STACK_THREADS)]


def test_stopping_a_stack_ends_its_processes_threads_and_ports(standin_root: Path) -> None:
    with LocalStack(root=standin_root, routes_file="routes.yaml") as stack:
        pid = stack.function_pid("echo")
        urls = [stack.gateway_url, stack.moto_url, stack.emulator.base_url]
        assert pid is not None and pid_alive(pid)
        assert all(port_open(url) for url in urls)
        assert stack_threads()
    assert not pid_alive(pid)
    assert not any(port_open(url) for url in urls)
    assert stack_threads() == []


def test_a_stack_that_fails_to_start_cleans_up_and_frees_moto(standin_root: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy_port = taken.getsockname()[1]
        stack = LocalStack(root=standin_root, routes_file="routes.yaml", gateway_port=busy_port)
        with pytest.raises(OSError):
            stack.start()
    assert stack_threads() == []
    assert stack.moto is None
    # moto's one-per-process slot was given back: another stack starts
    with LocalStack(root=standin_root, routes_file="routes.yaml") as again:
        assert again.invoke("echo", {"x": 1})["event"] == {"x": 1}


def test_only_one_stack_runs_per_process_and_a_refused_one_leaves_the_first_intact(standin_root: Path) -> None:
    with LocalStack(root=standin_root, routes_file="routes.yaml") as first:
        second = LocalStack(root=standin_root, routes_file="routes.yaml")
        with pytest.raises(RuntimeError, match="already running"):
            second.start()
        # the refused stack's clean-up must not have reset the first one's queues (moto state is shared)
        assert first.sqs.get_queue_attributes(QueueUrl=first.queue_url("echo"), AttributeNames=["QueueArn"])
        assert first.invoke("echo", {"x": 2})["event"] == {"x": 2}


def test_given_a_keap_url_the_stack_starts_no_emulator_and_points_the_functions_there(standin_root: Path) -> None:
    with (
        EmulatorServer(port=0) as elsewhere,
        LocalStack(root=standin_root, routes_file="routes.yaml", keap_url=elsewhere.url) as stack,
    ):
        assert stack.emulator is None and stack.external_keap
        env = stack.invoke("echo", {"env": True})
        assert env["KEAP_URL"] == elsewhere.url
        assert env["KEAP_API_KEY"] == EMULATOR_API_KEY
        assert env["KEAP_MAX_CALLS_PER_SECOND"] == ""  # no client-side throttle against an emulator


def test_from_env_reads_keap_and_webhook_settings_without_starting_anything(standin_root: Path) -> None:
    stack = LocalStack.from_env(
        {"KEAP_API_KEY": "k-123", "WEBHOOK_SECRETS": '{"typeform": "s"}'}, root=standin_root, routes_file="routes.yaml"
    )
    assert stack.external_keap and stack.keap_url == DEFAULT_URL
    assert stack.webhook_secrets == {"typeform": "s"}
    assert "k-123" not in repr(stack)
    assert not LocalStack.from_env({}, root=standin_root).external_keap
