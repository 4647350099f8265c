"""`keap-relay archive list|forget` against an archive table on moto, found as a running local stack's is (its
.local-stack/stack.json): what each prints and its exit status (0 done, 1 not confirmed, 2 could not run)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from keap_relay.aws.archive import Archive
from keap_relay_local.cli import STATE_FILE
from keap_relay_ops.archive_cli import parse_time
from keap_relay_ops.cli import main

T0 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def stack_root(tmp_path: Path, moto: str, tables: dict[str, str]) -> Path:
    """A repository root where `keap-relay run` would have written its state: moto's URL and the tables."""
    (tmp_path / STATE_FILE).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / STATE_FILE).write_text(json.dumps({"moto": moto, "region": "us-east-1", "tables": tables}))
    return tmp_path


@pytest.fixture
def root(tmp_path: Path, aws_env: str, archive_table: str) -> Path:
    return stack_root(tmp_path, aws_env, {"IdempotencyTable": "idem", "ArchiveTable": archive_table})


def event(email: str, source: str = "generic", kind: str = "form_submission") -> dict[str, Any]:
    return {"kind": kind, "source": source, "id": uuid.uuid4().hex, "contact": {"email": email}}


def run(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str, str]:
    status = main(["archive", *args, "--root", str(root)])
    out, err = capsys.readouterr()
    return status, out, err


def test_forget_erases_one_persons_events_and_says_how_many(capsys, root, archive_table):
    archive = Archive(archive_table, 30)
    archive.put_many([(event("ada@example.com"), T0), (event("Ada@Example.com", kind="unsubscribe"), T0)])
    archive.put(event("bob@example.com"), T0)
    status, out, err = run(capsys, root, "forget", "ADA@example.com", "--yes")
    assert (status, err) == (0, "")
    assert out.startswith("erased 2 archived events of ada@example.com")
    assert archive.held("ada@example.com") == 0 and archive.held("bob@example.com") == 1
    status, out, _ = run(capsys, root, "forget", "ada@example.com", "--json")
    answer = json.loads(out)
    assert status == 0 and (answer["email"], answer["erased"]) == ("ada@example.com", 0) and "moto" in answer["where"]


def test_forget_of_a_person_not_held_is_done_and_says_so(capsys, root):
    status, out, err = run(capsys, root, "forget", "nobody@example.com")
    assert (status, err) == (0, "")
    assert "no archived events of nobody@example.com" in out and "nothing to erase" in out


def test_forget_not_confirmed_erases_nothing_and_exits_1(capsys, root, archive_table, monkeypatch):
    Archive(archive_table, 30).put(event("ada@example.com"), T0)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    status, _, err = run(capsys, root, "forget", "ada@example.com")
    assert (status, err.strip()) == (1, "nothing erased")
    assert Archive(archive_table, 30).held("ada@example.com") == 1


def test_list_shows_a_kinds_events_of_a_window_and_source(capsys, root, archive_table):
    archive = Archive(archive_table, 30)
    archive.put_many(
        [
            (event("a@example.com", "typeform"), T0),
            (event("b@example.com", "generic"), T0 + timedelta(hours=1)),
            (event("c@example.com", "typeform"), T0 + timedelta(days=1)),
            (event("d@example.com", "typeform"), T0 + timedelta(days=3)),
            (event("p@example.com", "typeform", kind="purchase"), T0),
        ]
    )
    status, out, _ = run(capsys, root, "list", "--kind", "forms", "--since", "2026-12-01", "--until", "2026-12-03")
    assert status == 0
    assert out.index("a@example.com") < out.index("b@example.com") < out.index("c@example.com")
    assert "d@example.com" not in out and "p@example.com" not in out
    window = ("--since", "2026-12-01", "--until", "2026-12-05")
    args = ("list", "--kind", "form_submission", *window, "--source", "typeform", "--json")
    status, out, _ = run(capsys, root, *args)
    listed = json.loads(out)
    assert status == 0 and [row["email"] for row in listed] == ["a@example.com", "c@example.com", "d@example.com"]
    assert listed[0]["received"] == "2026-12-01T09:30:00.000Z" and listed[0]["event"]["source"] == "typeform"


def test_an_archive_that_is_off_cannot_be_listed_or_erased_exit_2_one_line(capsys, tmp_path, aws_env):
    off = stack_root(tmp_path, aws_env, {"IdempotencyTable": "idem"})  # ArchiveDays=0: no archive table
    for args in (("forget", "ada@example.com", "--yes"), ("list", "--kind", "forms", "--since", "1d")):
        status, out, err = run(capsys, off, *args)
        assert status == 2 and out == ""
        assert err.count("\n") == 1 and "the archive is off (ArchiveDays=0)" in err and "Traceback" not in err


def test_a_stack_that_is_not_running_is_one_line_exit_2(capsys, tmp_path, aws_env):
    gone = stack_root(tmp_path, "http://127.0.0.1:9", {"ArchiveTable": "ArchiveTable"})
    status, _, err = run(capsys, gone, "forget", "ada@example.com", "--yes")
    assert status == 2 and err.count("\n") == 1 and "Is the local stack running" in err


def test_a_missing_table_is_one_line_exit_2(capsys, tmp_path, aws_env):
    missing = stack_root(tmp_path, aws_env, {"ArchiveTable": f"gone-{uuid.uuid4().hex[:6]}"})
    status, _, err = run(capsys, missing, "list", "--kind", "forms", "--since", "1h")
    assert status == 2 and err.count("\n") == 1 and "ResourceNotFoundException" in err


def test_times_are_utc_iso_dates_or_ages():
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert parse_time("2026-12-01T00:00Z") == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_time("2026-12-01") == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_time("2026-12-01T02:00+02:00") == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_time("7d", now) == now - timedelta(days=7)


def test_items_carry_no_more_than_the_archive_promises(archive_table, root, capsys):
    """What `list --json` shows is what the table holds: the canonical event, its source and receipt time."""
    Archive(archive_table, 30).put(event("ada@example.com"), T0)
    [item] = boto3.client("dynamodb").scan(TableName=archive_table)["Items"]
    status, out, _ = run(capsys, root, "list", "--kind", "forms", "--since", "2026-12-01", "--json")
    [row] = json.loads(out)
    assert status == 0 and json.loads(item["event"]["S"]) == row["event"]
