"""ArchiveDays=0 on the local stack: no archive table, no ARCHIVE_TABLE, and events are applied as before.
(A module of its own: one local stack runs per process at a time, and test_archive_e2e.py keeps one up.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import contact_of, form_event, post_webhook, stack_with_routes, unique_email
from test_archive_e2e import ROUTES, stack_client

pytestmark = pytest.mark.e2e


def test_at_archive_days_0_there_is_no_archive_and_events_are_still_applied(tmp_path: Path) -> None:
    with stack_with_routes(tmp_path, ROUTES, parameters={"ArchiveDays": "0"}) as off:
        assert "ArchiveTable" not in off.deployed.table_names
        assert [t for t in stack_client(off).list_tables()["TableNames"] if "rchive" in t] == []
        assert {off.function_environment(kind)["ARCHIVE_TABLE"] for kind in off.kinds} == {""}
        email = unique_email("unarchived")
        assert post_webhook(off.webhook_url("forms"), form_event(email))[0] == 202
        off.wait_drained()
        assert off.emulator.model.contact_tags(contact_of(off.emulator, email)) == {100}
