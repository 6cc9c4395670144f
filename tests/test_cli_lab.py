"""`stackit-nb lab` (what `make lab` runs): a local server when no key, JupyterLab on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


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


def test_lab_starts_a_local_server_and_jupyterlab_on_loopback(tmp_path: Path) -> None:
    port = free_port()
    notebooks = Path(__file__).resolve().parent.parent / "notebooks"
    command = [
        sys.executable, "-m", "stackit_nb.cli", "lab", "--no-browser",
        "--port", str(port), "--notebook-dir", str(notebooks),
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        env=isolated_jupyter_env(tmp_path),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so a failed run can end JupyterLab too, not only our process
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("stackit_nb: no STACKIT_API_KEY set - started the local")
        server_url = line.split(" at ")[1].split()[0]
        assert server_url.startswith("http://127.0.0.1:")
        assert httpx.get(server_url.removesuffix("/v1") + "/health").json() == {"status": "ok"}
        deadline = time.monotonic() + 120  # a few seconds normally; much longer on a busy machine
        last: object = None
        while True:
            try:
                last = httpx.get(f"http://127.0.0.1:{port}/api", timeout=5).status_code
                if last == 200:
                    break
            except httpx.TransportError as exc:
                last = exc
            assert time.monotonic() < deadline, f"JupyterLab did not answer in 120 s: {last!r}"
            time.sleep(0.5)
        lab = httpx.get(f"http://127.0.0.1:{port}/lab", timeout=10, follow_redirects=True)
        assert lab.status_code in (200, 403)  # 403: the token page; either way it is serving
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    with socket.socket() as probe:  # the local server went away with it
        assert probe.connect_ex(("127.0.0.1", int(server_url.split(":")[2].split("/")[0]))) != 0
