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


# First, before pytest-xdist's own hook reads the xdist_group marks added here.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list) -> None:
    """Mark what runs in a kernel, keep the browser tests together, and put slow files first.

    The tutorial cells (nbval) and every test using a ``kernel`` fixture get the ``kernel``
    mark, so ``make check`` can leave them out by marker. The browser tests share one JupyterLab
    and one Chromium: under pytest-xdist (``--dist loadgroup``) they form one group, run by one
    worker. Files are ordered by how long they take (browser, then the real model, then kernels,
    then the rest), so that with ``--no-loadscope-reorder`` the longest work starts first and the
    workers finish together. Within a file the order is kept (nbval needs its cells in order).
    """
    rank_of_file: dict[object, int] = {}
    for item in items:
        if item.path.suffix == ".ipynb" or "kernel" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kernel)
        if item.get_closest_marker("browser") is not None:
            item.add_marker(pytest.mark.xdist_group("browser"))
        rank = next(
            (
                i
                for i, mark in enumerate(("browser", "smollm2", "kernel"))
                if item.get_closest_marker(mark)
            ),
            3,
        )
        rank_of_file[item.path] = min(rank, rank_of_file.get(item.path, rank))
    items.sort(key=lambda item: rank_of_file[item.path])
