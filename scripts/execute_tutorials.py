"""Re-execute the tutorials in notebooks/ and save them as the tests expect them.

    python scripts/execute_tutorials.py                 # every notebook, scripted engine
    python scripts/execute_tutorials.py notebooks/05_chat_widget.ipynb

(`make notebooks` runs it.) Each notebook runs top to bottom in a fresh kernel, in a temporary
copy of notebooks/ (so files a tutorial writes never land beside the originals), against the
local server's scripted engine with no key, as strict nbval does in `make test`. The saved file
keeps the final widget state, has consecutive stream outputs merged (one block per cell, not
one line per streamed token on GitHub), no per-cell timing metadata, and the kernelspec that
JupyterLab itself writes, so opening a tutorial does not change it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
#: What JupyterLab writes for the default Python kernel (ipykernel's own kernelspec).
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def tutorial_environment(engine: str = "scripted") -> dict[str, str]:
    """The environment a tutorial kernel gets: no key, no URL, the given local engine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACKIT_")}
    env["STACKIT_NB_ENGINE"] = engine
    env["HAYSTACK_TELEMETRY_ENABLED"] = "False"
    return env


def execute(path: Path, workdir: Path, *, engine: str = "scripted", timeout: int = 300) -> dict:
    """Run the notebook at ``path`` with ``workdir`` as its folder; return the executed notebook.

    A cell that raises stops the run with ``nbclient``'s ``CellExecutionError`` naming the cell.
    """
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        store_widget_state=True,
        coalesce_streams=True,
        record_timing=False,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute(env=tutorial_environment(engine))
    return nb


def tidy(nb: dict) -> dict:
    """What a saved tutorial holds besides its outputs: JupyterLab's kernelspec, no timings."""
    nb["metadata"]["kernelspec"] = dict(KERNELSPEC)
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("execution", None)
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or sorted(NOTEBOOKS.glob("*.ipynb"))
    with tempfile.TemporaryDirectory(prefix="stackit-nb-tutorials-") as tmp:
        workdir = Path(tmp) / "notebooks"
        for path in paths:
            # A fresh copy for each notebook: one tutorial's files cannot change the next one's run.
            shutil.rmtree(workdir, ignore_errors=True)
            shutil.copytree(NOTEBOOKS, workdir)
            started = time.monotonic()
            nb = tidy(execute(path, workdir))
            nbformat.write(nb, path)
            print(f"{path.name}: executed in {time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
