"""What the Keap client tests share: the emulator they call, recorded backoffs, and an error's dead-letter name.

A test module loads it with `pytest_plugins = ("keap_fixtures",)` (and imports nothing from it, so that pytest
rewrites its asserts); the emulator's key is the module's KEY (default local-dev-key), and a module that needs
another emulator (a fake clock) defines its own `server`.
"""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from keap_emulator import EmulatorServer
from keap_relay.keap.errors import KeapError

KEY = "local-dev-key"


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[EmulatorServer]:
    """One emulator for the module, on 127.0.0.1, accepting the module's KEY."""
    with EmulatorServer(port=0, api_key=getattr(request.module, "KEY", KEY)) as emulator:
        yield emulator


@pytest.fixture
def emu(server: EmulatorServer) -> EmulatorServer:
    """The module's emulator with no contacts, faults or quota left from the test before."""
    server.reset()
    server.set_faults(None)
    server.set_quota(None)
    return server


class Sleeps(list):
    """A client's `sleep` that records each backoff instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@contextmanager
def _raises_named(error_class: str, match: str | None = None) -> Iterator[pytest.ExceptionInfo[KeapError]]:
    with pytest.raises(KeapError, match=match) as caught:
        yield caught
    assert caught.value.error_class == error_class


@pytest.fixture
def raises_named() -> Callable[..., AbstractContextManager[pytest.ExceptionInfo[KeapError]]]:
    """`with raises_named("KeapRecordNotFound"):` is pytest.raises(KeapError) that also checks the error's
    dead-letter name (error_class)."""
    return _raises_named
