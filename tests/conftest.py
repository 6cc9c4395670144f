"""Shared fixtures: one local STACKIT-compatible server per test session, reset between tests."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator

import pytest

from stackit_nb.local import LocalSTACKIT

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


@pytest.fixture
def reset_server(server: LocalSTACKIT) -> Iterator[LocalSTACKIT]:
    """``server`` (the environment pointed at it) with no faults, default settings and an empty
    request log, before and after each test: use it with ``pytest.mark.usefixtures``."""
    server.faults.clear()
    server.configure(**DEFAULT_SETTINGS)
    server.clear_requests()
    yield server
    server.faults.clear()
    server.configure(**DEFAULT_SETTINGS)


@pytest.fixture
def no_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No key or URL in the environment, and no ``connect()`` server left behind."""
    monkeypatch.delenv("STACKIT_API_KEY", raising=False)
    monkeypatch.delenv("STACKIT_API_BASE_URL", raising=False)
    yield
    conn = importlib.import_module("stackit_nb.connection").current()
    if conn is not None:
        conn.stop()


@pytest.fixture(scope="session")
def smollm2_engine() -> None:
    """Skip a test that needs the smollm2 engine when it is not installed; under CI (``CI``
    set, where ``make test`` installs it) a missing engine is a failure instead."""
    from stackit_nb.local.engines import missing_for

    if (missing := missing_for("smollm2")) is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but the smollm2 engine cannot run: {missing}")
    pytest.skip(f"the smollm2 engine is not installed ({missing})")
