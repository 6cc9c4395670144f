"""`stackit-nb lab` (what `make lab` runs): a working copy of the tutorials, the scripted engine,
JupyterLab on 127.0.0.1 without the news prompt."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from stackit_nb.lab import MANIFEST, NEWS_PLUGIN, prepare_working_copy

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def isolated_jupyter_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STACKIT_", "JUPYTER"))}
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        env[name] = str(tmp_path / name.lower())
    env["JUPYTERLAB_SETTINGS_DIR"] = str(tmp_path / "lab-settings")
    return env


def committed_tutorials(folder: Path) -> Path:
    """A copy of the tutorials as committed in ``folder``: a test that ran one in notebooks/
    (tutorial 11 records a cassette beside itself) leaves files no learner gets."""
    tracked = (
        subprocess.run(
            ["git", "ls-files", "-z", "notebooks"], cwd=ROOT, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, tracked):
        target = folder / Path(name).relative_to("notebooks")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    return folder


def top_level(files: dict[str, str]) -> list[str]:
    """The names a folder listing shows for these files (a subfolder once)."""
    return sorted({name.split("/")[0] for name in files})


def digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def wait_for_jupyterlab(port: int, runtime: Path) -> str:
    """JupyterLab's token, once its API answers."""
    deadline = time.monotonic() + 120  # a few seconds normally; much longer on a busy machine
    last: object = None
    while True:
        try:
            last = httpx.get(f"http://127.0.0.1:{port}/api", timeout=5).status_code
            servers = list(runtime.glob("jpserver-*.json"))
            if last == 200 and servers:
                return str(json.loads(servers[0].read_text())["token"])
        except httpx.TransportError as exc:
            last = exc
        assert time.monotonic() < deadline, f"JupyterLab did not answer in 120 s: {last!r}"
        time.sleep(0.5)


def start_lab(tmp_path: Path, port: int, *args: str) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "stackit_nb.cli", "lab", "--no-browser", "--port", str(port), *args,
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        cwd=tmp_path,
        env=isolated_jupyter_env(tmp_path),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job has
    )


def stop_lab(proc: subprocess.Popen[str], sig: signal.Signals) -> None:
    """Send ``sig`` to the whole process group, as Ctrl+C in a terminal (SIGINT) or a service
    manager (SIGTERM) does: `stackit-nb lab` and JupyterLab get it at the same moment."""
    os.killpg(proc.pid, sig)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


def port_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_lab_serves_a_working_copy_on_the_scripted_engine_without_news(tmp_path: Path) -> None:
    port, workdir = free_port(), tmp_path / "my-notebooks"
    originals = committed_tutorials(tmp_path / "tutorials")
    committed = digests(originals)
    proc = start_lab(tmp_path, port, "--notebooks", str(originals), "--workdir", str(workdir))
    try:
        assert proc.stdout is not None
        copy_line, server_line, engine_line = (proc.stdout.readline() for _ in range(3))
        assert copy_line == (
            "stackit_nb: your working copy of the tutorials is my-notebooks/ (copied from "
            "tutorials/, which stays as committed)\n"
        )
        assert server_line.startswith("stackit_nb: no STACKIT_API_KEY set - started the local")
        assert "(scripted engine)" in server_line
        assert engine_line.startswith("  engine scripted: deterministic replies")
        assert "ENGINE=smollm2" in engine_line
        server_url = server_line.split(" at ")[1].split()[0]
        assert server_url.startswith("http://127.0.0.1:")
        base = server_url.removesuffix("/v1")
        assert httpx.get(f"{base}/health").json() == {"status": "ok"}

        token = wait_for_jupyterlab(port, tmp_path / "jupyter_runtime_dir")
        auth = {"Authorization": f"token {token}"}
        lab = f"http://127.0.0.1:{port}"
        # it serves the working copy, a copy of every tutorial
        listed = httpx.get(f"{lab}/api/contents", headers=auth, timeout=10).json()["content"]
        assert sorted(item["name"] for item in listed) == top_level(committed)
        assert {k: v for k, v in digests(workdir).items() if k != MANIFEST} == committed
        # no "get notified about news?" prompt (its plugin is off) and nothing fetched
        page = httpx.get(f"{lab}/lab", headers=auth, timeout=10).text
        config = re.search(r'id="jupyter-config-data"[^>]*>(.*?)</script>', page, re.S)
        assert config is not None
        assert NEWS_PLUGIN in json.loads(config.group(1))["disabledExtensions"]
        assert httpx.get(f"{lab}/lab/api/news", headers=auth).json() == {"news": []}
        assert httpx.get(f"{lab}/lab/api/update", headers=auth).json() == {"notification": None}
        # a running kernel, for the shutdown below
        kernel = httpx.post(f"{lab}/api/kernels", headers=auth, json={}, timeout=60).json()
        runtime = tmp_path / "jupyter_runtime_dir"
        assert (runtime / f"kernel-{kernel['id']}.json").exists()
    finally:
        stop_lab(proc, signal.SIGINT)  # Ctrl+C in a terminal
    assert proc.returncode == 0
    assert list(runtime.glob("kernel-*.json")) == []  # JupyterLab shut its kernel down
    assert port_closed(port)
    assert port_closed(int(server_url.split(":")[2].split("/")[0]))  # the local server too
    assert digests(originals) == committed
    assert not (tmp_path / "lab-settings").exists()  # the learner's settings folder: untouched


def test_lab_opens_the_originals_for_authors_and_stops_on_sigterm(tmp_path: Path) -> None:
    originals = committed_tutorials(tmp_path / "notebooks")
    port = free_port()
    proc = start_lab(tmp_path, port, "--originals", "--engine", "scripted")
    try:
        assert proc.stdout is not None
        opening, server_line, engine_line = (proc.stdout.readline() for _ in range(3))
        assert opening.startswith("stackit_nb: opening the tutorials themselves in notebooks/")
        assert "(scripted engine)" in server_line
        assert engine_line == "  engine scripted, as asked\n"
        token = wait_for_jupyterlab(port, tmp_path / "jupyter_runtime_dir")
        listed = httpx.get(
            f"http://127.0.0.1:{port}/api/contents",
            headers={"Authorization": f"token {token}"},
            timeout=10,
        ).json()["content"]
        assert sorted(item["name"] for item in listed) == top_level(digests(originals))
    finally:
        stop_lab(proc, signal.SIGTERM)
    assert proc.returncode == 0 and port_closed(port)
    assert not (tmp_path / "my-notebooks").exists()
    assert not (originals / MANIFEST).exists()


@pytest.fixture
def originals(tmp_path: Path) -> Path:
    return committed_tutorials(tmp_path / "notebooks")


def test_a_later_start_keeps_the_learners_work_and_adds_new_tutorials(
    originals: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "my-notebooks"
    first = prepare_working_copy(originals, workdir)
    assert first.created and first.added == [] and first.kept_as is None
    assert {k: v for k, v in digests(workdir).items() if k != MANIFEST} == digests(originals)
    # the learner runs a tutorial (its saved outputs change) and deletes another
    (workdir / "01_quickstart.ipynb").write_text('{"learner": "edited"}')
    (workdir / "09_magic.ipynb").unlink()
    (workdir / "notes.md").write_text("mine")
    # upstream: a new tutorial with a data file, and a changed one
    (originals / "10_new.ipynb").write_text("{}")
    (originals / "data").mkdir()
    (originals / "data" / "table.csv").write_text("a,b\n")
    (originals / "02_pipelines.ipynb").write_text('{"upstream": "changed"}')
    (originals / ".ipynb_checkpoints").mkdir()
    (originals / ".ipynb_checkpoints" / "10_new-checkpoint.ipynb").write_text("{}")

    second = prepare_working_copy(originals, workdir)
    assert not second.created
    assert second.added == ["10_new.ipynb", "data/table.csv"]
    assert second.changed_upstream == ["02_pipelines.ipynb"]
    assert (workdir / "01_quickstart.ipynb").read_text() == '{"learner": "edited"}'
    assert not (workdir / "09_magic.ipynb").exists()  # deleted on purpose: not brought back
    assert (workdir / "notes.md").read_text() == "mine"
    assert (workdir / "02_pipelines.ipynb").read_bytes() == (
        NOTEBOOKS / "02_pipelines.ipynb"
    ).read_bytes()
    assert (workdir / "data" / "table.csv").read_text() == "a,b\n"
    assert not (workdir / ".ipynb_checkpoints").exists()
    report = "\n".join(second.report())
    assert "kept from earlier sessions; new from" in report
    assert "10_new.ipynb, data/table.csv" in report
    assert "changed in" in report and "02_pipelines.ipynb" in report and "REFRESH=1" in report

    third = prepare_working_copy(originals, workdir)  # nothing new since: nothing copied
    assert third.added == [] and third.changed_upstream == ["02_pipelines.ipynb"]


def test_refresh_copies_again_and_keeps_the_old_copy(originals: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "my-notebooks"
    prepare_working_copy(originals, workdir)
    (workdir / "01_quickstart.ipynb").write_text('{"learner": "edited"}')
    (workdir / "notes.md").write_text("mine")

    refreshed = prepare_working_copy(originals, workdir, refresh=True)
    assert refreshed.created and refreshed.kept_as is not None
    assert re.fullmatch(r"my-notebooks\.old-\d{8}-\d{6}", refreshed.kept_as.name)
    assert (refreshed.kept_as / "01_quickstart.ipynb").read_text() == '{"learner": "edited"}'
    assert (refreshed.kept_as / "notes.md").read_text() == "mine"
    assert {k: v for k, v in digests(workdir).items() if k != MANIFEST} == digests(originals)
    assert "previous working copy is kept in" in refreshed.report()[0]

    again = prepare_working_copy(originals, workdir, refresh=True)  # within the same second
    assert again.kept_as is not None and again.kept_as != refreshed.kept_as
    assert refreshed.kept_as.is_dir() and again.kept_as.is_dir()


def run_lab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "stackit_nb.cli", "lab", "--no-browser", *args]
    return subprocess.run(
        command, cwd=cwd, env=isolated_jupyter_env(cwd), capture_output=True, text=True, timeout=60
    )


def test_lab_refuses_folders_it_cannot_use(originals: Path, tmp_path: Path) -> None:
    missing = run_lab("--notebooks", "nowhere", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stdout == ""
    assert "no tutorials folder at nowhere/" in missing.stderr and "--notebooks" in missing.stderr

    inside = run_lab("--workdir", "notebooks/mine", cwd=tmp_path)
    assert inside.returncode == 2
    assert "must be separate folders" in inside.stderr and "--originals" in inside.stderr
    assert not (originals / "mine").exists()

    both = run_lab("--refresh", "--originals", cwd=tmp_path)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def make_dry_run(*variables: str, tmp_path: Path) -> str:
    """The commands `make lab` would run in a fresh clone (a venv that does not exist yet)."""
    result = subprocess.run(
        ["make", "--dry-run", "--always-make", "lab", f"VENV={tmp_path / 'venv'}", *variables],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout


def test_make_lab_starts_the_scripted_engine_and_builds_no_model(tmp_path: Path) -> None:
    default = make_dry_run(tmp_path=tmp_path)
    assert f"{tmp_path / 'venv'}/bin/stackit-nb lab\n" in default  # lab's default: scripted
    assert "build_llama_wheel" not in default and "local-llm" not in default

    smollm2 = make_dry_run("ENGINE=smollm2", "REFRESH=1", tmp_path=tmp_path)
    assert "scripts/build_llama_wheel.py" in smollm2 and "local-llm" in smollm2
    assert "stackit-nb lab --engine smollm2 --refresh" in smollm2

    authors = make_dry_run("ORIGINALS=1", "LAB_ARGS=--no-browser", tmp_path=tmp_path)
    assert "stackit-nb lab --originals --no-browser\n" in authors
