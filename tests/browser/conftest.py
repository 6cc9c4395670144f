"""Session fixtures for the browser tests: a local server, an isolated JupyterLab, Chromium.

One of each for the browser tests (starting them costs seconds), and one JupyterLab page that blocks
and records any request that would leave the machine. Every test opens its own notebooks in that
page and gets a screenshot under ``artifacts/browser/`` when it ends, passed or failed.
Everything started here is stopped after the last browser test, also after a failure.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Route, WebSocket, sync_playwright

from stackit_nb.local import LocalSTACKIT

from .lab_page import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    BrowserPage,
    JupyterLab,
    copy_without_outputs,
    outside,
)

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
SERVER_DEFAULTS = {"ttft": 0.0, "tokens_per_second": None}


def kernel_env(server: LocalSTACKIT) -> dict[str, str]:
    """The environment of a Jupyter server whose kernels talk to ``server``."""
    return {
        # what connect() finds: "a local STACKIT-compatible server", no key, no network
        "STACKIT_API_KEY": server.api_key,
        "STACKIT_API_BASE_URL": server.url,
        # kernels must stay on the deterministic engine, whatever is installed
        "STACKIT_NB_ENGINE": "scripted",
        "HAYSTACK_TELEMETRY_ENABLED": "False",
    }


@pytest.fixture(scope="package")
def stackit_server() -> Iterator[LocalSTACKIT]:
    """The local STACKIT-compatible server the notebooks' kernels talk to (scripted engine)."""
    with LocalSTACKIT(engine="scripted") as srv:
        yield srv


@pytest.fixture(scope="package")
def jupyter_lab(
    tmp_path_factory: pytest.TempPathFactory, stackit_server: LocalSTACKIT
) -> Iterator[JupyterLab]:
    """JupyterLab on a temporary copy of notebooks/ (outputs cleared), kernels on the server."""
    home = tmp_path_factory.mktemp("jupyterlab")
    root = home / "notebooks"
    root.mkdir()
    for path in NOTEBOOKS.iterdir():
        if path.suffix == ".ipynb":
            copy_without_outputs(path, root / path.name)
        elif path.is_file():
            shutil.copy2(path, root / path.name)  # what the tutorials read, e.g. apple.jpg
        elif path.is_dir() and not path.name.startswith((".", "__")):  # e.g. 07's handbook/
            shutil.copytree(path, root / path.name)
    lab = JupyterLab(root=root, home=home, env=kernel_env(stackit_server))
    try:
        yield lab.start()
    finally:
        lab.stop()


@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, driven by playwright (never a browser playwright downloads)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium package "
            "(`make browser-deps`, or `sudo apt-get install chromium`); "
            "deselect them with -m 'not browser'."
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="package")
def lab_in_browser(
    chromium: Browser, jupyter_lab: JupyterLab, stackit_server: LocalSTACKIT
) -> Iterator[BrowserPage]:
    """JupyterLab loaded once in a browser context that blocks every request to elsewhere."""
    context: BrowserContext = chromium.new_context(viewport={"width": 1280, "height": 900})
    # Only requests to elsewhere are routed: sending JupyterLab's hundreds of local requests
    # through the test process too would slow its start-up to a crawl.
    elsewhere = outside([jupyter_lab.url, stackit_server.url])
    session = BrowserPage(context.new_page(), jupyter_lab, stackit_server)

    def block(route: Route) -> None:
        session.blocked.append(route.request.url)
        route.abort("blockedbyclient")

    def watch_socket(socket: WebSocket) -> None:
        # route() does not see websockets; none may go elsewhere than the lab
        if elsewhere.match(socket.url):
            session.blocked.append(socket.url)

    context.route(elsewhere, block)
    session.page.on("websocket", watch_socket)
    try:
        yield session.load()
    finally:
        context.close()


@pytest.fixture
def browser_page(
    request: pytest.FixtureRequest, lab_in_browser: BrowserPage, stackit_server: LocalSTACKIT
) -> Iterator[BrowserPage]:
    """The JupyterLab page; fails the test if the page tried to reach outside meanwhile.

    At the end, passed or failed, a screenshot goes to ``artifacts/browser/<test>.png`` and the
    notebooks the test opened are closed and their kernels shut down.
    """
    session = lab_in_browser
    already = len(session.blocked)
    stackit_server.configure(**SERVER_DEFAULTS)
    try:
        yield session
    finally:
        try:
            name = re.sub(r"[^\w.-]+", "-", request.node.name.removeprefix("test_")).strip("-")
            session.screenshot(name)
        finally:
            session.close_all()
            stackit_server.configure(**SERVER_DEFAULTS)
    blocked = session.blocked[already:]
    if blocked:
        pytest.fail(f"the page tried to reach outside the machine: {blocked}")
