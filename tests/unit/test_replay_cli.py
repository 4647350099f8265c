"""`keap-relay replay`'s own parts: its options, the default name, the record of replays and the overlap check,
the unsubscribed contacts it skips, and its progress lines."""

from datetime import UTC, datetime, timedelta

import pytest

from keap_relay.events.kinds import kind_named
from keap_relay_ops import replay
from keap_relay_ops.cli import build_parser, main
from keap_relay_ops.replay import Progress, Record, ReplayError, Window, check_earlier, select

DEC1 = datetime(2026, 12, 1, tzinfo=UTC)
PURCHASES = kind_named("purchases")


def parse(*argv):
    return build_parser(["replay"]).parse_args(["replay", *argv])


def test_help_shows_the_options_the_issue_names(capsys):
    with pytest.raises(SystemExit) as done:
        main(["replay", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for option in ("--kind", "--since", "--until", "--source", "--dry-run", "--include-sequences",
                   "--include-once-only", "--stack", "--name", "--json", "--wait"):  # fmt: skip
        assert option in text
    assert "docs/operations.md" in text


def test_the_options_read_into_a_window():
    args = parse("--kind", "purchase", "--since", "2026-12-01T00:00Z", "--until", "2026-12-08", "--source", "shopify")
    assert (args.kind, args.since, args.until, args.source) == ("purchases", DEC1, DEC1 + timedelta(days=7), "shopify")
    assert (args.sequences, args.once_only, args.dry_run, args.wait) == (False, False, False, replay.DEFAULT_WAIT)
    assert parse("--kind", "forms", "--since", "2026-12-01T01:00+01:00").since == DEC1
    assert parse("--kind", "forms", "--since", "2026-12-01", "--wait", "0").wait == 0


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--kind", "refunds", "--since", "2026-12-01"], "unknown kind 'refunds'"),
        (["--kind", "purchases", "--since", "yesterday"], "not a time: 'yesterday'"),
        (["--kind", "purchases", "--since", "7d"], "not a time: '7d' (give a date and time"),
        (["--kind", "purchases", "--since", "2026-12-01", "--name", "a#b"], "not a replay name"),
        (["--kind", "purchases"], "--since"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(capsys, argv, says):
    with pytest.raises(SystemExit) as done:
        main(["replay", *argv])
    assert done.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert says in line


def test_the_default_name_is_stable_readable_and_says_what_it_replays():
    window = Window(PURCHASES, DEC1, DEC1 + timedelta(days=7))
    assert window.default_name() == "purchases-20261201T0000Z-20261208T0000Z"
    assert Window(PURCHASES, DEC1, DEC1 + timedelta(days=7)).default_name() == window.default_name()
    later = DEC1.replace(second=30)
    everything = Window(PURCHASES, later, None, "shopify", ("sequences", "once-only"))
    assert everything.default_name() == "purchases-20261201T000030Z-open-shopify+sequences+once-only"
    assert replay.NAME_PATTERN.match(everything.default_name())


def record(name, since_day, until_day=None, source=None, include=(), ran_day=20):
    day = lambda n: DEC1 + timedelta(days=n - 1)  # noqa: E731
    return Record(name, day(since_day), day(until_day) if until_day else None, source, include, day(ran_day))


def test_a_record_reads_back_as_written():
    written = record("fix", 1, 8, "shopify", ("sequences",))
    assert Record.of(written.item(PURCHASES)) == written
    item = record("open", 1).item(PURCHASES)
    assert item["pk"] == {"S": "replay#purchase"} and item["sk"] == {"S": "open"}
    assert Record.of(item).until is None


def test_only_earlier_replays_overlapping_the_window_and_source_are_warned_about():
    this = record("now", 5, 10, "shopify", ran_day=21)
    earlier = [
        record("before", 1, 4),  # ends before this one starts
        record("inside", 6, 7),
        record("open-ended", 1, None, ran_day=6),  # ran on day 6: it covered up to then
        record("other-source", 5, 10, "stripe"),
        record("now", 5, 10, "shopify"),  # this replay's own earlier run
    ]
    warnings = check_earlier(this, earlier)
    assert [w.split()[2] for w in warnings] == ["inside", "open-ended"]
    assert all("overlaps this window" in w for w in warnings)


def test_a_name_used_for_other_parts_is_refused():
    with pytest.raises(ReplayError, match="another --name"):
        check_earlier(record("fix", 1, 8, include=("sequences",)), [record("fix", 1, 8)])


class Archived:
    def __init__(self, event_id, email, minute, kind="purchase"):
        self.kind, self.source, self.event_id, self.email = kind, "shopify", event_id, email
        self.received = DEC1 + timedelta(minutes=minute)
        self.event = {"kind": kind, "source": "shopify", "id": event_id, "contact": {"email": email}}


class StubArchive:
    """Archive.events over a list (the real one is tested on moto in tests/integration/test_archive.py)."""

    def __init__(self, events):
        self.held = events

    def events(self, kind, since, until=None, source=None):
        held = [e for e in self.held if e.kind == kind and since <= e.received]
        return sorted((e for e in held if until is None or e.received <= until), key=lambda e: e.received)


def test_contacts_who_unsubscribed_after_the_event_are_skipped_and_those_before_are_not():
    archive = StubArchive(
        [
            Archived("p1", "ada@example.com", 1),
            Archived("p2", "bob@example.com", 2),
            Archived("u1", "ada@example.com", 3, "unsubscribe"),
            Archived("u2", "cy@example.com", 0, "unsubscribe"),
            Archived("p3", "cy@example.com", 4),  # bought again after unsubscribing: replayed
        ]
    )
    chosen = select(archive, Window(PURCHASES, DEC1, None), DEC1 + timedelta(days=1))
    assert [e.event_id for e in chosen.events] == ["p2", "p3"]
    assert [(e.event_id, why) for e, why in chosen.skipped] == [("p1", "unsubscribed 2026-12-01T00:03:00Z")]
    unsubscribes = select(archive, Window(kind_named("unsubscribes"), DEC1, None), DEC1 + timedelta(days=1))
    assert [e.event_id for e in unsubscribes.events] == ["u2", "u1"]  # an unsubscribe replay skips none
    assert unsubscribes.skipped == []


def test_progress_is_a_line_every_hundred_events_when_not_on_a_terminal(capsys):
    progress = Progress("fix", 250)
    for sent in range(10, 251, 10):
        progress.sent(sent, 10)
    progress.settled(250, 0, 0)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "replay fix: sent 100 of 250",
        "replay fix: sent 200 of 250",
        "replay fix: sent 250 of 250",
        "replay fix: applied 250, dead-lettered 0, waiting 0",
    ]
    short = Progress("short", 12)
    short.sent(12, 10)
    short.settled(12, 0, 0)
    assert capsys.readouterr().err == ""
