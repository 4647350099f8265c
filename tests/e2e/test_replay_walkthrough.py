"""docs/operations.md's replay walkthrough on the local stack: events applied under a wrong route, the route fixed,
`keap-relay replay` (dry run first), and the contacts right in the emulator; run again, nothing applies twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from e2e_support import contact_of, post_webhook, purchase_event, stack_with_routes, unique_email, unsubscribe_event

from keap_relay_local.stack import LocalStack
from keap_relay_ops.cli import main

pytestmark = pytest.mark.e2e

# The walkthrough's routes: a course buyer should get tag 201, but the route written gives 202.
WRONG = """\
version: 1
purchases:
  - match: {sku: COURSE-101}
    tags: [202]
unsubscribes:
  - match: {}
    tags: [300]
"""
FIXED = WRONG.replace("tags: [202]", "tags: [201]")
MISSING_TAG = 999  # not in the emulator's world


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Three purchases applied under the wrong route, one buyer unsubscribed since; then the route fixed."""
    folder = tmp_path_factory.mktemp("replay")
    with stack_with_routes(folder, WRONG) as stack:
        since = datetime.now(UTC) - timedelta(seconds=1)
        buyers = [unique_email("replay") for _ in range(3)]
        events = [purchase_event(email) for email in buyers]
        for event in events:
            assert post_webhook(stack.webhook_url("purchases"), event)[0] == 202
        stack.wait_drained(60)
        assert post_webhook(stack.webhook_url("unsubscribes"), unsubscribe_event(buyers[2]))[0] == 202
        stack.wait_drained(60)
        for email in buyers:
            assert 201 not in stack.emulator.model.contact_tags(contact_of(stack.emulator, email))
        # The fix, as a user makes it under `keap-relay run`: the routes file edited in place and deployed by
        # the stack's watch; a file the routes check refuses is not deployed, and the running routes stay.
        fixed = stack.routes_file
        assert stack.redeploy_edited_routes() is None  # unchanged
        fixed.write_text(FIXED.replace("tags: [201]", "tags: [two-o-one]"))
        refused = stack.redeploy_edited_routes()
        assert refused is not None and refused.startswith("routes not deployed") and "tags" in refused
        fixed.write_text(FIXED)
        assert stack.redeploy_edited_routes() == f"routes deployed: the functions restarted with {fixed}"
        assert stack.redeploy_edited_routes() is None
        yield {"stack": stack, "since": since, "buyers": buyers, "events": events, "routes": fixed}


def replay(stack: LocalStack, *args: str) -> int:
    return main(["replay", "--kind", "purchases", "--endpoint-url", stack.moto_url, *args])


def tags_of(stack: LocalStack, email: str) -> set[int]:
    return set(stack.emulator.model.contact_tags(contact_of(stack.emulator, email)))


def test_a_dry_run_prints_what_each_event_would_do_and_calls_and_sends_nothing(
    walkthrough: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    stack, since, routes = walkthrough["stack"], walkthrough["since"], walkthrough["routes"]
    calls = len(stack.emulator.calls())
    assert replay(stack, "--since", since.isoformat(), "--dry-run", "--routes", str(routes)) == 0
    out = capsys.readouterr().out
    first, second, skipped = walkthrough["events"]
    for event in (first, second):
        assert f"event {event['id']} (purchase from generic)" in out
    assert f"event {skipped['id']} (" not in out  # its contact unsubscribed after it: skipped, and listed
    assert skipped["id"] in out.split("skipped (the contact unsubscribed after the event):")[1]
    assert out.count("rest.applyTags") == 2 and "201" in out
    assert "dry run: 2 event(s) would be sent; nothing was sent" in out
    assert len(stack.emulator.calls()) == calls
    assert stack.queue_counts("purchases") == {"Visible": 0, "NotVisible": 0, "Delayed": 0}


def test_the_replay_applies_the_fixed_route_and_skips_the_unsubscribed(
    walkthrough: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    stack, since, buyers = walkthrough["stack"], walkthrough["since"], walkthrough["buyers"]
    assert replay(stack, "--since", since.isoformat(), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["name"].startswith("purchases-") and report["name"].endswith("-open")
    assert (report["sent"], report["applied"], report["dead_lettered"], report["waiting"]) == (2, 2, [], [])
    [skip] = report["skipped"]
    assert skip["event_id"] == walkthrough["events"][2]["id"] and skip["reason"].startswith("unsubscribed ")
    assert skip["contact"] != buyers[2] and skip["contact"].endswith("@example.com")  # masked, as in the logs
    assert 201 in tags_of(stack, buyers[0]) and 201 in tags_of(stack, buyers[1])
    assert 201 not in tags_of(stack, buyers[2])


def test_the_same_replay_again_applies_nothing_twice_and_another_overlapping_one_is_warned_about(
    walkthrough: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    stack, since = walkthrough["stack"], walkthrough["since"]
    calls = len(stack.emulator.calls())
    assert replay(stack, "--since", since.isoformat()) == 0
    out, err = capsys.readouterr()
    assert "sent 2, applied 2, dead-lettered 0, skipped 1" in out
    assert err == ""  # its own earlier run is no overlap; a short replay shows no progress
    assert len(stack.emulator.calls()) == calls  # every event was applied by this replay already

    until = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert (
        replay(stack, "--since", since.isoformat(), "--until", until, "--dry-run", "--routes", "config/routes.yaml")
        == 0
    )
    err = capsys.readouterr().err
    assert "warning: replay purchases-" in err and "overlaps this window" in err


def exit_status(argv: list[str]) -> int:
    """main's status, or argparse's when it refuses the arguments (SystemExit)."""
    try:
        return main(argv)
    except SystemExit as done:
        return int(done.code or 0)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--kind", "refunds", "--since", "2026-12-01"], "unknown kind 'refunds'"),
        (["--kind", "purchases", "--since", "last tuesday"], "not a time: 'last tuesday'"),
        (["--kind", "purchases", "--since", "2030-01-01T00:00Z", "--until", "2030-01-02T00:00Z"], "nothing archived"),
        (["--kind", "purchases", "--since", "2026-12-02", "--until", "2026-12-01"], "is not after --since"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(
    walkthrough: dict[str, Any], capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    assert exit_status(["replay", *args, "--endpoint-url", walkthrough["stack"].moto_url]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    assert says in line


def test_an_archive_turned_off_is_one_line_and_exit_2(
    walkthrough: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = walkthrough["stack"]
    template = (stack.root / "template.yaml").read_text()
    off = template.replace(
        "ArchiveDays:\n    Type: Number\n    Default: 30\n", "ArchiveDays:\n    Type: Number\n    Default: 0\n"
    )
    assert off != template
    (tmp_path / "template.yaml").write_text(off)
    argv = ["replay", "--kind", "purchases", "--since", walkthrough["since"].isoformat()]
    assert exit_status([*argv, "--endpoint-url", stack.moto_url, "--root", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    (line,) = err.splitlines()
    assert out == "" and "the archive is off" in line


def test_dead_lettered_replayed_events_are_listed_exit_1_and_a_redrive_is_still_that_replay(
    walkthrough: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack, since, buyers = walkthrough["stack"], walkthrough["since"], walkthrough["buyers"]
    broken = tmp_path / "broken.yaml"
    broken.write_text(WRONG.replace("tags: [202]", f"tags: [{MISSING_TAG}]"))
    stack.reconfigure(routes_file=broken)  # a route naming a tag the app does not have: a permanent failure
    assert replay(stack, "--since", since.isoformat(), "--name", "missing-tag", "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["applied"] == 0 and report["waiting"] == []
    dead = {letter["event_id"]: letter["reason"] for letter in report["dead_lettered"]}
    assert set(dead) == {walkthrough["events"][0]["id"], walkthrough["events"][1]["id"]}
    assert all(str(MISSING_TAG) in reason for reason in dead.values())
    letters = stack.dead_letters("purchases")
    assert {letter["attributes"]["ReplayName"] for letter in letters} == {"missing-tag"}

    stack.reconfigure(routes_file=walkthrough["routes"])
    calls = len(stack.emulator.calls())
    assert main(["dlq", "redrive", "--kind", "purchases", "--endpoint-url", stack.moto_url]) == 0
    stack.wait_drained(60)
    assert stack.dead_letters("purchases") == []
    assert len(stack.emulator.calls()) > calls  # applied as the replay `missing-tag`: its own key, so applied
    capsys.readouterr()
    calls = len(stack.emulator.calls())
    assert replay(stack, "--since", since.isoformat(), "--name", "missing-tag") == 0
    assert "sent 2, applied 2, dead-lettered 0, skipped 1" in capsys.readouterr().out
    assert len(stack.emulator.calls()) == calls  # the redrive applied them as that replay: nothing again
    assert 201 in tags_of(stack, buyers[0])
