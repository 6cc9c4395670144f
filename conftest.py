"""The environment every test and notebook kernel runs in (pytest loads this file first).

It lives at the root so that it also applies when only the notebooks are collected
(``pytest notebooks``): their kernels inherit this process's environment.
"""

import os

import pytest

os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"

# The suite, notebook kernels included, runs against local servers whatever the developer's shell
# holds. A real STACKIT key is set aside under REAL_KEY_ENV for the tests that need one.
REAL_KEY_ENV = "STACKIT_NB_TEST_REAL_KEY"
_key = os.environ.pop("STACKIT_API_KEY", None)
_url = os.environ.pop("STACKIT_API_BASE_URL", None)
if _key and not (_url and ("127.0.0.1" in _url or "localhost" in _url)):
    os.environ[REAL_KEY_ENV] = _key

# connect() and `stackit-nb serve` pick their engine with "auto": the real small model when it is
# installed. Tests and notebook kernels (which inherit this environment) stay on the
# deterministic scripted engine; the smollm2 tests ask for smollm2 by name. A test that
# strips STACKIT_* from a child's environment must keep this one (or pass --engine scripted).
os.environ["STACKIT_NB_ENGINE"] = "scripted"


def pytest_collection_modifyitems(items: list) -> None:
    """Mark what runs in a kernel, and put the slow files first.

    The tutorial cells (nbval) and every test using a ``kernel`` fixture get the ``kernel``
    mark, so ``make check`` can leave them out by marker. Files are ordered by how long they
    take (browser, then the real model, then kernels, then the rest), so that under pytest-xdist
    (see :func:`pytest_xdist_make_scheduler`) the longest work starts first and the workers
    finish together. Within a file the order is kept (nbval runs a notebook's cells in order).
    """
    rank_of_file: dict[object, int] = {}
    for item in items:
        if item.path.suffix == ".ipynb" or "kernel" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kernel)
        marks = ("browser", "smollm2", "kernel")
        rank = next((i for i, mark in enumerate(marks) if item.get_closest_marker(mark)), 3)
        rank_of_file[item.path] = min(rank, rank_of_file.get(item.path, rank))
    items.sort(key=lambda item: rank_of_file[item.path])


def work_unit(nodeid: str) -> str:
    """What one pytest-xdist worker runs in one go: a file, the browser tests together (they
    share one JupyterLab and one Chromium), each tutorial on smollm2 on its own."""
    if nodeid.startswith("tests/browser/"):
        return "tests/browser"
    if nodeid.startswith("tests/test_tutorials_on_smollm2.py::test_tutorial_runs_on_smollm2["):
        return nodeid
    return nodeid.split("::", 1)[0]


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """``--dist loadscope`` hands out :func:`work_unit` s, in collection order (with
    ``--no-loadscope-reorder``). pytest-xdist's own ``loadgroup`` cannot be used: it renames
    items through an attribute that pytest 9.2 no longer reads."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ByWorkUnit(config, log)
