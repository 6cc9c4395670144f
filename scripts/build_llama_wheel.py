"""Build llama-cpp-python once per machine into a wheel cache, saying what it does meanwhile.

The smollm2 engine needs llama-cpp-python, which has no prebuilt wheel for most machines: pip
compiles llama.cpp (3-5 minutes on 2 cores, more on one). ``make local-llm`` runs this script
first; the wheel lands in the cache (``~/.cache/stackit-nb/wheels``), and every later install on
the machine, from any clone, takes seconds. With the wheel already cached it does nothing.

While it builds it prints a line every 30 s with the time so far and the compiler's progress;
the whole build output goes to a log file, whose last lines are shown if the build fails. A C/C++
compiler and cmake are needed: Debian's ``build-essential`` and ``cmake``, installed with apt-get
when running as root, else named.

    python scripts/build_llama_wheel.py --version 0.3.36 --wheel-dir ~/.cache/stackit-nb/wheels
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

# No multimodal helper (the engine sends images as text), and portable code rather than code
# tuned to this CPU: the wheel also runs on other machines sharing the cache, and builds in
# about half the time.
CMAKE_ARGS = "-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF"
# The commands the build needs, and the Debian packages that provide them.
TOOLS = {"cc": "build-essential", "c++": "build-essential", "cmake": "cmake"}
TAIL_LINES = 30
# The compiler's progress, as ninja ("[87/152]") or make ("[ 57%]") prints it.
_PROGRESS = re.compile(rb"\[\s*\d+/\d+\]|\[\s*\d+%\]")


def cached_wheel(wheel_dir: Path, version: str) -> Path | None:
    return next(iter(sorted(wheel_dir.glob(f"llama_cpp_python-{version}-*.whl"))), None)


def missing_packages() -> list[str]:
    """The Debian packages whose commands are not on PATH."""
    return sorted({package for tool, package in TOOLS.items() if shutil.which(tool) is None})


def install_packages(packages: list[str]) -> bool:
    """Install ``packages`` with apt-get when root; otherwise say how, and return False."""
    names = " ".join(packages)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(
            f"Building llama-cpp-python needs a C/C++ compiler and cmake ({', '.join(packages)} "
            "missing). On Debian or Ubuntu: "
            f"sudo apt-get update && sudo apt-get install -y {names}",
            file=sys.stderr,
        )
        return False
    print(f"installing {names} (needed once to build llama-cpp-python)", flush=True)
    update = subprocess.run(["apt-get", "update"])
    return (
        update.returncode == 0
        and subprocess.run(["apt-get", "install", "-y", *packages]).returncode == 0
    )


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}:{seconds:02d}"


def _last_progress(log: Path) -> str:
    with log.open("rb") as file:
        file.seek(max(0, log.stat().st_size - 8192))
        found = _PROGRESS.findall(file.read())
    return f", at {found[-1].decode()}" if found else ""


def build(requirement: str, wheel_dir: Path, log: Path, every: float) -> int:
    """Run ``pip wheel`` for ``requirement`` into ``wheel_dir``, its output into ``log``."""
    command = [
        sys.executable, "-m", "pip", "wheel", "--verbose", "--no-deps",
        "--wheel-dir", str(wheel_dir), requirement,
    ]  # fmt: skip
    started = time.monotonic()
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "CMAKE_ARGS": CMAKE_ARGS, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
        try:
            while True:
                try:
                    returncode = process.wait(timeout=every)
                    break
                except subprocess.TimeoutExpired:
                    elapsed = _clock(time.monotonic() - started)
                    print(f"  still building: {elapsed} so far{_last_progress(log)}", flush=True)
        except KeyboardInterrupt:
            process.terminate()
            process.wait()
            raise
    took = _clock(time.monotonic() - started)
    if returncode != 0:
        lines = log.read_text(errors="replace").splitlines()[-TAIL_LINES:]
        print("\n".join(lines), file=sys.stderr)
        print(
            f"llama-cpp-python did not build (after {took}); the last {len(lines)} lines of its "
            f"log are above, the whole log is {log}",
            file=sys.stderr,
        )
        return 1
    print(f"built llama-cpp-python in {took}; the log is {log}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", required=True, help="llama-cpp-python version, e.g. 0.3.36")
    parser.add_argument("--wheel-dir", type=Path, required=True, help="the wheel cache")
    parser.add_argument(
        "--source",
        default=None,
        help="build from this sdist or source folder instead of downloading the version",
    )
    parser.add_argument(
        "--log", type=Path, default=None, help="build log (default: next to the wheel cache)"
    )
    parser.add_argument("--every", type=float, default=30.0, help="seconds between progress lines")
    args = parser.parse_args(argv)
    wheel_dir: Path = args.wheel_dir.expanduser()
    if (wheel := cached_wheel(wheel_dir, args.version)) is not None:
        print(f"llama-cpp-python {args.version}: using the wheel built before, {wheel}")
        return 0
    if (packages := missing_packages()) and not install_packages(packages):
        return 1
    wheel_dir.mkdir(parents=True, exist_ok=True)
    log = args.log or wheel_dir.parent / f"llama-cpp-python-{args.version}-build.log"
    with (wheel_dir / ".build.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("another build of llama-cpp-python is running on this machine; waiting for it")
            sys.stdout.flush()
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (wheel := cached_wheel(wheel_dir, args.version)) is not None:
                print(f"llama-cpp-python {args.version}: built meanwhile, {wheel}")
                return 0
        print(
            f"building llama-cpp-python {args.version} once for this machine (3-5 minutes on 2 "
            f"cores; a line every {args.every:g} s); the log is {log}",
            flush=True,
        )
        return build(args.source or f"llama-cpp-python=={args.version}", wheel_dir, log, args.every)


if __name__ == "__main__":
    raise SystemExit(main())
