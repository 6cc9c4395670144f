"""JupyterLab and a notebook in Chromium, as the browser tests drive them.

``JupyterLab`` starts an isolated JupyterLab on 127.0.0.1 (its own config, data, runtime and
settings folders, no news or update checks, the default kernel started on open) and stops it and
every kernel it started. ``NotebookPage`` is one notebook open in a browser page: run a cell or
all of them the way a user does (keyboard, menu) and read what the page shows.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nbformat
import psutil
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page

from stackit_nb.lab import QUIET_FLAGS
from stackit_nb.local import LocalSTACKIT

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
# A fresh profile comes from playwright; these keep Chromium itself from phoning home
# (component updates, sync, field trials) and from needing a GPU or a sandbox in a container.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# JupyterLab user settings, written into the isolated settings folder.
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    # Without a started kernel a "Select Kernel" dialog blocks the first run. Windowing off: every
    # cell stays attached to the page, so its outputs can be read wherever it is scrolled.
    "@jupyterlab/notebook-extension/tracker": {
        "autoStartDefaultKernel": True,
        "windowingMode": "none",
    },
    # No "get notified about news?" toast and no news or update requests.
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}

# The server side of the same: news and update checks are fetched by the Jupyter server, and the
# default extension manager searches PyPI; the read-only one lists installed extensions only.
# `make lab`'s own quiet flags (no news feed, no update check), and no extension installs.
LAB_FLAGS = [*QUIET_FLAGS, "--LabApp.extension_manager=readonly"]

EXECUTED = re.compile(r"^\[\d+\]:$")
_PROMPT_JS = "el => el.textContent.replace(/\\s/g, '')"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_notebook(path: Path, sources: Iterable[str]) -> Path:
    """Write a notebook of code cells with the given sources (no outputs)."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, path)
    return path


def copy_without_outputs(source: Path, target: Path) -> Path:
    """Copy a notebook with its outputs and execution counts removed.

    What the page then shows was produced by this run, and "every cell has an execution count"
    means "every cell ran".
    """
    notebook = nbformat.read(source, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbformat.write(notebook, target)
    return target


def _gone() -> contextlib.suppress:
    """Signalling a process that has already exited is fine."""
    return contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess)


def stop_process_tree(process: subprocess.Popen[Any], grace: float = 15.0) -> None:
    """Stop ``process`` and everything it started, even children in their own sessions.

    Jupyter starts kernels with ``start_new_session``, so killing JupyterLab's process group
    alone would leave them running: the descendants are collected first and killed last.
    """
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    if process.poll() is None:
        with _gone():
            os.killpg(process.pid, signal.SIGTERM)  # JupyterLab shuts its kernels down
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with _gone():
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    _, alive = psutil.wait_procs(descendants, timeout=3)
    for child in alive:
        with _gone():
            child.kill()
    psutil.wait_procs(alive, timeout=3)


@dataclass
class JupyterLab:
    """An isolated JupyterLab on 127.0.0.1, serving ``root``; no token (loopback only).

    :param root: The folder it serves (a temporary copy of the notebooks).
    :param home: A temporary folder for its config, data, runtime and settings folders.
    :param env: Extra environment for JupyterLab and its kernels (the local server's URL, key).
    :param app: ``"lab"``, or ``"notebook"`` for Jupyter Notebook 7 (built on JupyterLab's
        parts: the same settings, server extensions and quiet flags apply).
    """

    root: Path
    home: Path
    env: Mapping[str, str]
    app: str = "lab"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> JupyterLab:
        """Start JupyterLab and return once its API answers."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "STACKIT_"))}
        folders = {
            "JUPYTER_CONFIG_DIR": "config",
            "JUPYTER_DATA_DIR": "data",
            "JUPYTER_RUNTIME_DIR": "runtime",
            "JUPYTERLAB_SETTINGS_DIR": "settings",
            "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
            "IPYTHONDIR": "ipython",
        }
        for name, folder in folders.items():
            env[name] = str(self.home / folder)
        env.update(self.env)
        for plugin, values in LAB_SETTINGS.items():
            path = self.home / "settings" / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values), encoding="utf-8")
        command = [
            sys.executable, "-m", "jupyter", self.app, "--no-browser",
            "--ip=127.0.0.1", f"--port={self.port}", f"--ServerApp.root_dir={self.root}",
            "--IdentityProvider.token=", "--ServerApp.password=", *LAB_FLAGS,
        ]  # fmt: skip
        if os.geteuid() == 0:
            command.append("--allow-root")
        log = (self.home / "jupyterlab.log").open("wb")
        self.process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/api", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"JupyterLab did not start; its log:\n{self.log()[-3000:]}")
            time.sleep(0.2)

    def log(self) -> str:
        """What JupyterLab printed so far."""
        path = self.home / "jupyterlab.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Shut JupyterLab and all its kernels down (killing what does not stop in time)."""
        if self.process is not None:
            stop_process_tree(self.process)
            self.process = None

    def sessions(self) -> list[dict[str, Any]]:
        """The notebook sessions (a notebook path and its kernel) the server has now."""
        return list(httpx.get(f"{self.url}/api/sessions", timeout=5).json())

    def shutdown_sessions(self) -> None:
        """End every session and its kernel: a test leaves no kernel running for the next."""
        for session in self.sessions():
            httpx.delete(f"{self.url}/api/sessions/{session['id']}", timeout=30)

    def wait_for_idle_kernel(
        self,
        path: str,
        steady: float = 1.5,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> str:
        """Wait until ``path``'s kernel is the same idle kernel for ``steady`` seconds.

        JupyterLab sometimes restarts the first kernel right after starting it; code sent to
        the first one is then lost. Returns the kernel id.

        :param sleep: How to wait between polls; with a page open, the page's own wait, since
            playwright's sync API handles the page's events only inside its calls.
        """
        deadline = time.monotonic() + timeout
        seen: tuple[str, float] | None = None
        while time.monotonic() < deadline:
            kernel = next(
                (s["kernel"] for s in self.sessions() if s.get("path") == path and s["kernel"]),
                None,
            )
            if kernel is not None and kernel.get("execution_state") == "idle":
                if seen is None or seen[0] != kernel["id"]:
                    seen = (kernel["id"], time.monotonic())
                elif time.monotonic() - seen[1] >= steady:
                    return str(kernel["id"])
            else:
                seen = None
            sleep(0.2)
        raise TimeoutError(f"no idle kernel for {path} within {timeout:.0f} s: {self.sessions()}")


@dataclass
class NotebookPage:
    """One notebook open in a browser page, driven as a user would."""

    page: Page
    lab: JupyterLab
    path: str

    def open(self) -> NotebookPage:
        """File > Open from Path…, then wait for the notebook's idle kernel."""
        menu(self.page, "File", "Open from Path…")
        self.page.locator(".jp-Dialog input").fill(self.path)
        self.page.keyboard.press("Enter")
        self.page.locator(
            f'.lm-TabBar-tab.lm-mod-current[data-id] >> text="{self.path}"'
        ).wait_for()
        self.cells.first.wait_for(timeout=30_000)
        self.lab.wait_for_idle_kernel(self.path, sleep=self.pause)
        return self

    def close(self) -> None:
        """File > Close and Shut Down Notebook, confirmed: its kernel stops too."""
        menu(self.page, "File", "Close and Shut Down Notebook…")
        self.page.locator(".jp-Dialog .jp-mod-accept").click()
        self.page.locator(".jp-Dialog").wait_for(state="detached")

    def pause(self, seconds: float) -> None:
        """Wait while the page keeps running (``time.sleep`` would stall its event handlers)."""
        self.page.wait_for_timeout(seconds * 1000)

    @property
    def notebook(self) -> Locator:
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")

    @property
    def cells(self) -> Locator:
        """The code cells (Markdown cells are not counted: indexes are code cell numbers)."""
        return self.notebook.locator(".jp-CodeCell")

    def cell(self, index: int) -> Locator:
        return self.cells.nth(index)

    def output(self, index: int) -> Locator:
        """The output area of code cell ``index``."""
        return self.cell(index).locator(".jp-OutputArea")

    def prompt(self, index: int) -> str:
        """The cell's input prompt without spaces: ``[ ]:``, ``[*]:`` or ``[3]:``."""
        return str(self.cell(index).locator(".jp-InputPrompt").evaluate(_PROMPT_JS))

    def run_cell(self, index: int, *, wait: bool = True, timeout: float = 60.0) -> None:
        """Click into cell ``index`` and press Shift+Enter; by default wait until it ran."""
        before = self.prompt(index)
        self.cell(index).locator(".jp-InputArea-editor").click()
        self.page.keyboard.press("Shift+Enter")
        if wait:
            self.wait_until_ran(index, before, timeout)

    def wait_until_ran(self, index: int, before: str, timeout: float = 60.0) -> None:
        """Wait until cell ``index`` shows an execution count other than ``before``."""
        deadline = time.monotonic() + timeout
        while True:
            prompt = self.prompt(index)
            if prompt != before and EXECUTED.match(prompt):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"cell {index} did not finish within {timeout:.0f} s: {prompt}")
            self.pause(0.05)

    def run_all(self) -> None:
        """Run > Run All Cells, from the menu bar."""
        menu(self.page, "Run", "Run All Cells")

    def wait_for_all(self, timeout: float = 90.0) -> None:
        """Wait until every non-empty code cell ran, or a cell failed and the run stopped."""
        state_js = """() => {
          const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
          const prompts = [...nb.querySelectorAll('.jp-CodeCell')]
            .filter(cell => cell.querySelector('.cm-content')?.textContent.trim())
            .map(cell => cell.querySelector('.jp-InputPrompt').textContent.replace(/\\s/g, ''));
          const running = prompts.some(p => p === '[*]:');
          const done = prompts.every(p => /^\\[\\d+\\]:$/.test(p));
          const failed = nb.querySelector('[data-mime-type="application/vnd.jupyter.error"]');
          return !running && (done || !!failed);
        }"""
        self.page.wait_for_function(state_js, timeout=timeout * 1000, polling=100)

    def errors(self) -> list[str]:
        """The text of every error output (a traceback) and stderr output that has one."""
        found = []
        for output in self.notebook.locator(
            '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"],'
            ' .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
        ).all():
            text = output.inner_text()
            error = output.get_attribute("data-mime-type") == "application/vnd.jupyter.error"
            if error or "Traceback (most recent call last)" in text:
                found.append(text)
        return found


def menu(page: Page, top: str, item: str) -> None:
    """Choose ``item`` from the menu bar's ``top`` menu, with the mouse."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(top)}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def outside(origins: Iterable[str]) -> re.Pattern[str]:
    """A pattern for every network URL except those of ``origins`` (``http://host:port``).

    Routing only these keeps the local traffic (hundreds of JupyterLab requests) off the
    interception path, which would otherwise pass each of them through the test process.
    data:, blob: and about: URLs never leave the machine and do not match.
    """
    allowed = "|".join(re.escape(origin.split("://", 1)[1].split("/", 1)[0]) for origin in origins)
    return re.compile(rf"^(?:https?|wss?)://(?!(?:{allowed})(?:[/?#]|$))")


@dataclass
class BrowserPage:
    """The JupyterLab page a test drives, and the requests it was refused.

    One page (one JupyterLab start-up in the browser) serves the whole session: each test opens
    its notebooks from the File menu and closes them, and their kernels, when it ends.
    """

    page: Page
    lab: JupyterLab
    server: LocalSTACKIT
    blocked: list[str] = field(default_factory=list)
    opened: list[NotebookPage] = field(default_factory=list)

    def load(self) -> BrowserPage:
        """(Re)load JupyterLab in a fresh workspace and wait until it shows the notebooks."""
        self.page.goto(f"{self.lab.url}/lab?reset")
        self.page.locator(".jp-DirListing-item").first.wait_for(timeout=60_000)
        return self

    def open(self, path: str) -> NotebookPage:
        """Open notebook ``path`` (relative to the lab's root) with an idle kernel."""
        notebook = NotebookPage(self.page, self.lab, path)
        self.opened.append(notebook)
        return notebook.open()

    def save_and_reopen(self, notebook: NotebookPage, path: Path) -> NotebookPage:
        """Save ``notebook`` (whose file is ``path``) with Ctrl+S, wait until its second cell's
        outputs are in the file, reload JupyterLab and open the notebook again from the file."""
        notebook.cell(0).locator(".jp-InputArea-editor").click()
        self.page.keyboard.press("Control+s")
        deadline = time.monotonic() + 20
        while not nbformat.read(path, as_version=4).cells[1].outputs:
            assert time.monotonic() < deadline, "the notebook was not saved"
            notebook.pause(0.1)
        self.opened.remove(notebook)
        self.load()
        return self.open(path.relative_to(self.lab.root).as_posix())

    def close_all(self) -> None:
        """Close what the test opened; reload the page if that fails (e.g. a stuck dialog)."""
        try:
            while self.opened:
                self.opened.pop().close()
        except PlaywrightError:
            self.opened.clear()
            self.load()
        finally:
            self.lab.shutdown_sessions()  # whatever is left, e.g. after a reload

    def screenshot(self, name: str) -> Path:
        """Save what the page shows now as ``artifacts/browser/<name>.png``."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=path)
        return path
