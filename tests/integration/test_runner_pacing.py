"""The runner and the rate limiter: the calls of an event are announced before they are made (so a budget
shared in DynamoDB books them in one write), and KEAP_CONCURRENCY follow-ups are in flight at once."""

import threading

import pytest
import yaml

from keap_emulator.server import DEFAULT_API_KEY
from keap_relay.aws.config import ConfigError, Settings
from keap_relay.aws.pipeline import Pipeline
from keap_relay.keap.throttle import RateLimiter
from keap_relay.routing.keap_port import build_port
from keap_relay.routing.plan import plan
from keap_relay.routing.routes import parse_routes
from keap_relay.routing.runner import SequenceRunner

KEY = DEFAULT_API_KEY


def routes(tags: int):
    text = (
        f"version: 1\nforms:\n  - match: {{}}\n    tags: [{', '.join(str(100 + i) for i in range(tags))}]\n"
        "    campaigns: [11]\n"
    )
    return parse_routes(yaml.safe_load(text), "routes.yaml")


def event(n: int = 1) -> dict:
    return {"kind": "form_submission", "source": "test", "id": f"e{n}", "contact": {"email": f"p{n}@example.com"}}


class Recording(RateLimiter):
    """Books nothing; records the hints and the calls, and can hold follow-ups at a barrier."""

    def __init__(self, barrier: threading.Barrier | None = None) -> None:
        super().__init__()
        self.expected: list[int] = []
        self.acquired = 0
        self.barrier = barrier
        self._lock = threading.Lock()

    def expect(self, calls: int) -> None:
        self.expected.append(calls)

    def reserve(self, now: float) -> float:
        with self._lock:
            self.acquired += 1
            first = self.acquired == 1
        if self.barrier is not None and not first:
            self.barrier.wait()  # passes only once `parties` follow-ups are waiting at the same time
        return 0.0


def test_the_runner_announces_each_wave_of_calls_to_the_limiter(emu):
    limiter = Recording()
    runner = SequenceRunner(build_port("xmlrpc", url=emu.url, api_key=KEY, rate_limiter=limiter))
    result = runner.run(plan(event(), routes(3)))
    assert result.status == "applied"
    assert limiter.expected == [5, 4]  # the upsert and its 4 follow-ups, then the 4 follow-ups
    assert limiter.acquired == 5


def test_follow_ups_up_to_the_bound_are_in_flight_together(emu):
    # 7 tags + 1 sequence: the barrier lets them through only if all 8 wait at once.
    limiter = Recording(threading.Barrier(8, timeout=10))
    runner = SequenceRunner(build_port("xmlrpc", url=emu.url, api_key=KEY, rate_limiter=limiter), max_concurrency=8)
    result = runner.run(plan(event(2), routes(7)))
    assert result.status == "applied"
    assert [step.status for step in result.steps] == ["ok"] * 9
    assert limiter.acquired == 9
    assert emu.model.contact_tags(result.contact_ids[0]) == set(range(100, 107))


def test_keap_concurrency_sets_the_runners_bound(emu, tmp_path):
    routes_file = tmp_path / "routes.yaml"
    routes_file.write_text("version: 1\nforms:\n  - match: {}\n    tags: [100]\n")
    env = {"KEAP_URL": emu.url, "KEAP_API_KEY": KEY, "ROUTES_FILE": str(routes_file), "KEAP_CONCURRENCY": "8"}
    assert Pipeline("form_submission", Settings.from_env("form_submission", env)).runner.max_concurrency == 8
    assert Settings.from_env("form_submission", {}).keap_concurrency == 4
    for bad in ("0", "many"):
        with pytest.raises(ConfigError, match="KEAP_CONCURRENCY"):
            Settings.from_env("form_submission", {"KEAP_CONCURRENCY": bad})
