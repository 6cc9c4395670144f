"""Shared fixtures: one local STACKIT-compatible server per test session, reset between tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"

# The suite, notebook kernels included, runs against local servers whatever the developer's shell
# holds. A real STACKIT key is set aside under REAL_KEY_ENV for the tests that need one.
REAL_KEY_ENV = "STACKIT_NB_TEST_REAL_KEY"
_key = os.environ.pop("STACKIT_API_KEY", None)
_url = os.environ.pop("STACKIT_API_BASE_URL", None)
if _key and not (_url and ("127.0.0.1" in _url or "localhost" in _url)):
    os.environ[REAL_KEY_ENV] = _key

from stackit_nb.local import LocalSTACKIT  # noqa: E402

DEFAULT_SETTINGS = {
    "ttft": 0.0,
    "tokens_per_second": None,
    "reasoning_field": "both",
    "error_shape": "openai",
}


@pytest.fixture(scope="session")
def local_server() -> Iterator[LocalSTACKIT]:
    with LocalSTACKIT() as srv:
        yield srv


@pytest.fixture
def srv(local_server: LocalSTACKIT) -> Iterator[LocalSTACKIT]:
    """The session's server with no faults, default settings and an empty request log."""
    local_server.faults.clear()
    local_server.configure(**DEFAULT_SETTINGS)
    local_server.clear_requests()
    yield local_server
    local_server.faults.clear()
    local_server.configure(**DEFAULT_SETTINGS)


@pytest.fixture(scope="module")
def server(local_server: LocalSTACKIT) -> Iterator[LocalSTACKIT]:
    """The session's server, with STACKIT_API_KEY and STACKIT_API_BASE_URL pointing at it.

    This is what ``stackit_nb.connect()`` sets up, so components built with their defaults
    (as in the documentation's examples) reach it.
    """
    local_server.faults.clear()
    local_server.configure(**DEFAULT_SETTINGS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STACKIT_API_KEY", local_server.api_key)
        mp.setenv("STACKIT_API_BASE_URL", local_server.url)
        yield local_server
    local_server.faults.clear()
    local_server.configure(**DEFAULT_SETTINGS)
