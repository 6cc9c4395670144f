"""The environment every test and notebook kernel runs in (pytest loads this file first).

It lives at the root so that it also applies when only the notebooks are collected
(``pytest notebooks``): their kernels inherit this process's environment.
"""

import os

os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"

# The suite, notebook kernels included, runs against local servers whatever the developer's shell
# holds. A real STACKIT key is set aside under REAL_KEY_ENV for the tests that need one.
REAL_KEY_ENV = "STACKIT_NB_TEST_REAL_KEY"
_key = os.environ.pop("STACKIT_API_KEY", None)
_url = os.environ.pop("STACKIT_API_BASE_URL", None)
if _key and not (_url and ("127.0.0.1" in _url or "localhost" in _url)):
    os.environ[REAL_KEY_ENV] = _key

# connect(), `stackit-nb serve` and `lab` pick their engine with "auto": the real small model when
# it is installed. Tests and notebook kernels (which inherit this environment) stay on the
# deterministic scripted engine; tests/test_local_smollm2.py asks for smollm2 by name. A test that
# strips STACKIT_* from a child's environment must keep this one (or pass --engine scripted).
os.environ["STACKIT_NB_ENGINE"] = "scripted"


def pytest_collection_modifyitems(items: list) -> None:
    """Mark what runs in a kernel, and run the browser tests last.

    The tutorial cells (nbval) and every test using a ``kernel`` fixture get the ``kernel``
    mark, so ``make check`` can leave them out by marker. Browser tests go last: playwright's
    sync API keeps an event loop running in the main thread until the session ends, which would
    break every asyncio test and notebook after it.
    """
    import pytest

    for item in items:
        if item.path.suffix == ".ipynb" or "kernel" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kernel)
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
