"""The learner's JupyterLab (``stackit-nb lab``, ``make lab``): a working copy, a quiet JupyterLab.

The tutorials in ``notebooks/`` are tests: strict nbval compares every output with the committed
one. A learner therefore runs and edits a working copy (``my-notebooks/`` by default, ignored by
git), made on the first start and kept between sessions. Later starts add what is new in
``notebooks/`` and never overwrite the learner's files; ``refresh`` moves the copy aside (named
with the time) and copies again. Authors open the originals instead.

JupyterLab runs without the news prompt and without update checks, through command-line flags and
a page config of its own (a temporary folder on ``JUPYTER_CONFIG_PATH``), so nothing is written to
the user's Jupyter settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

#: Where the tutorials are, and where a learner's copy of them goes (relative to the current
#: folder, the repository root for ``make lab``).
ORIGINALS = "notebooks"
WORKDIR = "my-notebooks"
#: Inside the working copy: each copied file with the digest of the original it came from, so a
#: later start knows what is new or changed upstream and what the learner deleted on purpose.
MANIFEST = ".stackit-nb-copy.json"
_NOT_COPIED = {".ipynb_checkpoints", "__pycache__"}

#: The JupyterLab plugin that asks "Would you like to get notified about official Jupyter news?"
#: and shows news and update notices.
NEWS_PLUGIN = "@jupyterlab/apputils-extension:announcements"
#: The server side of the same: it fetches neither the news feed nor the latest version.
QUIET_FLAGS = (
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
)


class LabError(Exception):
    """A folder problem that stops ``stackit-nb lab`` before anything starts."""


@dataclass
class WorkingCopy:
    """What :func:`prepare_working_copy` did."""

    path: Path
    originals: Path
    created: bool = False
    added: list[str] = field(default_factory=list)
    changed_upstream: list[str] = field(default_factory=list)
    kept_as: Path | None = None

    def report(self) -> list[str]:
        """The lines ``stackit-nb lab`` prints: where the copy is and what changed."""
        where, originals = _shown(self.path), _shown(self.originals)
        lines = []
        if self.kept_as is not None:
            lines.append(
                f"stackit_nb: your previous working copy is kept in {_shown(self.kept_as)}"
            )
        if self.created:
            how = f"copied from {originals}, which stays as committed"
        elif self.added:
            how = f"kept from earlier sessions; new from {originals}: {', '.join(self.added)}"
        else:
            how = "kept from earlier sessions"
        lines.append(f"stackit_nb: your working copy of the tutorials is {where} ({how})")
        if self.changed_upstream:
            lines.append(
                f"  changed in {originals} since they were copied: "
                f"{', '.join(self.changed_upstream)}; `make lab REFRESH=1` (stackit-nb lab "
                "--refresh) copies the tutorials again and keeps this copy aside"
            )
        return lines


def prepare_working_copy(originals: Path, workdir: Path, *, refresh: bool = False) -> WorkingCopy:
    """Make or update the learner's copy of ``originals`` in ``workdir``.

    The first call copies every file. Later calls copy only files that are new in
    ``originals`` (never one the learner deleted or changed) and report files changed there since.
    ``refresh=True`` first renames an existing ``workdir`` to ``<workdir>.old-<YYYYmmdd-HHMMSS>``.

    :raises LabError: ``originals`` is missing, or one folder holds the other.
    """
    originals, workdir = Path(originals), Path(workdir)
    if not originals.is_dir():
        raise LabError(
            f"no tutorials folder at {_shown(originals)}: run this from the repository root, or "
            "pass --notebooks DIR"
        )
    source, target = originals.resolve(), workdir.resolve()
    if source == target or source in target.parents or target in source.parents:
        raise LabError(
            f"the working copy ({_shown(workdir)}) and the tutorials ({_shown(originals)}) must be "
            "separate folders; to open the tutorials themselves, use --originals"
        )
    copy = WorkingCopy(workdir, originals)
    if refresh and workdir.exists():
        copy.kept_as = _aside(workdir)
        workdir.rename(copy.kept_as)
    copy.created = not workdir.exists()
    workdir.mkdir(parents=True, exist_ok=True)
    copied = _read_manifest(workdir / MANIFEST)
    for path in _tutorial_files(originals):
        name = path.relative_to(originals).as_posix()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if name in copied:
            if copied[name] != digest:
                copy.changed_upstream.append(name)
            continue
        destination = workdir / name
        if not destination.exists():  # a file of the learner's own with that name stays
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
            if not copy.created:
                copy.added.append(name)
        copied[name] = digest
    (workdir / MANIFEST).write_text(json.dumps(copied, indent=1, sort_keys=True) + "\n")
    return copy


def _tutorial_files(originals: Path) -> list[Path]:
    return sorted(
        path
        for path in originals.rglob("*")
        if path.is_file()
        and not any(
            part in _NOT_COPIED or part.startswith(".")
            for part in path.relative_to(originals).parts
        )
    )


def _read_manifest(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # a first start, or a damaged list: files already there are still never replaced
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _aside(workdir: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = workdir.with_name(f"{workdir.name}.old-{stamp}")
    number = 2
    while candidate.exists():
        candidate = workdir.with_name(f"{workdir.name}.old-{stamp}-{number}")
        number += 1
    return candidate


def _shown(path: Path) -> str:
    """``path`` as a learner reads it: relative to the current folder when inside it."""
    try:
        shown = str(path.resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        shown = str(path)
    return shown.rstrip("/") + "/"


def jupyterlab_command(root: Path, port: int, *, open_browser: bool) -> list[str]:
    """The ``jupyter lab`` command line: loopback only, serving ``root``, no news or updates."""
    command = [
        sys.executable, "-m", "jupyter", "lab", "--ip=127.0.0.1", f"--port={port}",
        f"--ServerApp.root_dir={Path(root).resolve()}", *QUIET_FLAGS,
    ]  # fmt: skip
    if os.geteuid() == 0:
        command.append("--allow-root")
    if not open_browser:
        command.append("--no-browser")
    return command


@contextmanager
def quiet_jupyter_config(env: dict[str, str]) -> Iterator[dict[str, str]]:
    """``env`` plus a config folder, for as long as JupyterLab runs, that disables the news plugin.

    JupyterLab merges ``labconfig/page_config.json`` from every folder on its config path; one
    added through ``JUPYTER_CONFIG_PATH`` applies to this JupyterLab only, and the learner's own
    settings (``~/.jupyter``) are neither read differently nor written.
    """
    with tempfile.TemporaryDirectory(prefix="stackit-nb-lab-") as folder:
        page_config = Path(folder) / "labconfig" / "page_config.json"
        page_config.parent.mkdir()
        page_config.write_text(json.dumps({"disabledExtensions": {NEWS_PLUGIN: True}}))
        path = [folder, *filter(None, [env.get("JUPYTER_CONFIG_PATH")])]
        yield {**env, "JUPYTER_CONFIG_PATH": os.pathsep.join(path)}
