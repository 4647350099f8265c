"""The fault-injection run, small: a few hundred events under Keap faults, a 5 s outage and kills lose nothing,
and kills inside the once-only window (Keap applied the action set and holds its answer) repeat nothing."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any

import pytest
from e2e_support import REPO

pytestmark = pytest.mark.e2e


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fault_run", REPO / "bench" / "fault_run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fault_run"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report() -> Any:
    bench = _bench()
    config = bench.RunConfig(
        events=200,
        # Fewer faults than the full run: each injected 429 holds its batch for Keap's 1 s Retry-After.
        transient={"rate_5xx": 0.04, "rate_429": 0.02, "rate_drop": 0.04, "rate_malformed": 0.01},
        seed=11,
        later_copy_seconds=(0.5, 4.0),
        outage_seconds=5.0,
        slow_windows=0,  # an answer slower than the 20 s read timeout would hold the run for 20 s
        kill_every=2.0,
        kill_window=0.5,  # a killed event waits for its "in progress" record to expire: kill early
        window_kills=3,  # functions ended while Keap holds an applied action set's answer
        window_timeouts=1,  # one of them by the function's own 8 s timeout (below the client's 20 s read timeout)
        send_rate=50.0,
        visibility_timeout=1,
        function_timeout=8.0,  # a killed event's "in progress" record expires after this, not the template's 30 s
        drain_timeout=40.0,
    )
    return bench.run(config, log=lambda line: None)


def test_nothing_is_lost(report: Any) -> None:
    assert report.drained
    assert report.still_queued == 0
    assert report.applied_once + report.dead_lettered + report.lost == report.events
    unexplained = [lost for lost in report.lost_details if lost["cause"] == "unexplained"]
    assert unexplained == []


def test_no_effect_is_left_undone_without_a_dead_letter(report: Any) -> None:
    assert report.lost == 0, report.lost_details


def test_the_faults_happened(report: Any) -> None:
    injected = report.calls_injected
    for kind in ("5xx", "429", "drop", "outage"):
        assert injected.get(kind, 0) > 0, injected
    assert report.kills_mid_batch >= 1
    assert report.deliveries["duplicates"] >= report.events * 0.2
    assert 0.06 <= report.transient_share_outside_outage <= 0.16


def test_every_dead_letter_has_a_permanent_reason(report: Any) -> None:
    assert report.dead_lettered >= 1  # the event routed to sequence 99 at least
    assert report.dlq_entries_without_permanent_reason == 0
    # the injected permanent faults, and action sets whose answer was lost (left to a person, never rerun)
    assert set(report.dead_letter_reasons) <= {"KeapLoadingError", "KeapRecordNotFound", "OutcomeUnknown"}


def test_no_effect_is_repeated_even_by_kills_inside_the_once_only_window(report: Any) -> None:
    assert report.kills_in_window >= 2, report.window_kill_details  # placed: the function ended, Keap had run it
    assert {kill["how"] for kill in report.window_kill_details} == {"SIGKILL", "timeout"}
    assert report.duplicate_effects == 0, report.duplicate_details
    assert report.duplicate_once_only_effects == 0
    # Each killed event: the action set ran once (before the kill), and the redelivery left it to a person.
    for kill in report.window_kill_details:
        assert kill["method"] == "ContactService.runActionSequence"
        assert kill["outcome"] == f"{kill['how']}: once-only step run 1 time(s), dead-lettered OutcomeUnknown", kill


def test_every_dead_letter_is_permanent_or_outcome_unknown(report: Any) -> None:
    assert report.dlq_entries_not_permanent_or_unknown == 0, report.dlq_entry_classes
    assert report.dlq_entry_classes.get("OutcomeUnknown: the function ended with the call in flight", 0) >= 2


def test_calls_outside_injected_failures_stay_near_the_minimum(report: Any) -> None:
    assert report.calls_clean <= 1.1 * report.calls_minimum
