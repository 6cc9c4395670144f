"""scripts/build_llama_wheel.py (`make local-llm`): progress while pip builds, the log kept, its
tail shown on failure, the cache reused. A stand-in source tree whose in-tree build backend takes
a few seconds plays llama.cpp (the real build takes minutes), built by the real pip, offline."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "build_llama_wheel.py"
VERSION = "0.0.1"

BACKEND = """
import base64, hashlib, sys, time, zipfile

STEPS, FAIL = {steps}, {fail}


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    for step in range(1, STEPS + 1):
        print(f"[{{step}}/{{STEPS}}] Building C object ggml/src/part{{step}}.c.o", flush=True)
        time.sleep(0.5)
    if FAIL:
        print("error: the compiler gave up on part3.c", flush=True)
        sys.exit(1)
    info = "llama_cpp_python-{version}.dist-info"
    files = {{
        f"{{info}}/METADATA": (
            "Metadata-Version: 2.1\\nName: llama-cpp-python\\nVersion: {version}\\n"
        ),
        f"{{info}}/WHEEL": "Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }}
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{{name}},sha256={{digest.decode()}},{{len(text.encode())}}")
    files[f"{{info}}/RECORD"] = "\\n".join([*record, f"{{info}}/RECORD,,"]) + "\\n"
    wheel = "llama_cpp_python-{version}-py3-none-any.whl"
    with zipfile.ZipFile(f"{{wheel_directory}}/{{wheel}}", "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel
"""


def stand_in_source(folder: Path, *, fail: bool, steps: int = 5) -> Path:
    folder.mkdir()
    (folder / "pyproject.toml").write_text(
        textwrap.dedent("""\
            [build-system]
            requires = []
            build-backend = "backend"
            backend-path = ["."]
            """)
    )
    (folder / "backend.py").write_text(BACKEND.format(steps=steps, fail=fail, version=VERSION))
    return folder


def build(tmp_path: Path, source: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, str(SCRIPT), "--version", VERSION, "--wheel-dir",
        str(tmp_path / "wheels"), "--source", str(source), "--every", "1", *extra,
    ]  # fmt: skip
    env = {**os.environ, "PIP_NO_INDEX": "1"}  # nothing may come from the network
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def test_a_failing_build_shows_progress_then_the_end_of_its_log(tmp_path: Path) -> None:
    source = stand_in_source(tmp_path / "src", fail=True)
    result = build(tmp_path, source)
    assert result.returncode == 1
    log = tmp_path / f"llama-cpp-python-{VERSION}-build.log"  # next to the wheel cache
    assert f"the log is {log}" in result.stdout.splitlines()[0]
    progress = re.findall(r"still building: (\d+):(\d\d) so far", result.stdout)
    assert len(progress) >= 2  # the backend alone runs 2.5 s; a line every second
    seconds = [int(m) * 60 + int(s) for m, s in progress]
    assert seconds == sorted(seconds) and seconds[0] >= 1
    assert re.search(r"so far, at \[\d/5\]", result.stdout)  # the compiler's own progress
    assert "error: the compiler gave up on part3.c" in log.read_text()
    assert "[1/5] Building C object" in log.read_text()  # the whole output is in the log
    assert "error: the compiler gave up on part3.c" in result.stderr  # and its end is shown
    assert "did not build (after 0:0" in result.stderr and str(log) in result.stderr
    assert not list((tmp_path / "wheels").glob("*.whl"))


def test_a_build_fills_the_cache_once(tmp_path: Path) -> None:
    source = stand_in_source(tmp_path / "src", fail=False, steps=2)
    first = build(tmp_path, source, "--log", str(tmp_path / "first.log"))
    assert first.returncode == 0, first.stdout + first.stderr
    wheels = list((tmp_path / "wheels").glob(f"llama_cpp_python-{VERSION}-*.whl"))
    assert [w.name for w in wheels] == [f"llama_cpp_python-{VERSION}-py3-none-any.whl"]
    assert "built llama-cpp-python in 0:0" in first.stdout

    second = build(tmp_path, source, "--log", str(tmp_path / "second.log"))
    assert second.returncode == 0
    assert (
        second.stdout == f"llama-cpp-python {VERSION}: using the wheel built before, {wheels[0]}\n"
    )
    assert not (tmp_path / "second.log").exists()  # nothing was built


SETPRIV, SYSTEM_PYTHON = shutil.which("setpriv"), shutil.which("python3", path="/usr/bin")


@pytest.mark.skipif(
    os.geteuid() != 0 or not SETPRIV or not SYSTEM_PYTHON,
    reason="needs root, setpriv and /usr/bin/python3 to run the script as an unprivileged user",
)
def test_without_compiler_it_names_the_packages_to_install(tmp_path: Path) -> None:
    """As a user who cannot install packages, on a PATH with no compiler or cmake. (The script
    needs only the standard library: the system Python runs it, readable by that user.)"""
    reachable = Path(tempfile.mkdtemp(prefix="stackit-nb-build-test-"))  # pytest's tmp is 0700
    try:
        reachable.chmod(0o755)
        command = [
            str(SETPRIV), "--reuid=65534", "--regid=65534", "--clear-groups", str(SYSTEM_PYTHON),
            str(SCRIPT), "--version", VERSION, "--wheel-dir", str(reachable / "wheels"),
        ]  # fmt: skip
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=60, env={"PATH": "/nonexistent"}
        )
        assert result.returncode == 1
        assert "needs a C/C++ compiler and cmake (build-essential, cmake missing)" in result.stderr
        assert "sudo apt-get update && sudo apt-get install -y build-essential cmake" in (
            result.stderr
        )
        assert list(reachable.iterdir()) == []  # stopped before writing anything
    finally:
        shutil.rmtree(reachable)
