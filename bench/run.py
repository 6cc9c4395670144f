"""Run every ``bench/bench_*.py`` in turn, then print one table of all their results.

Usage: ``python bench/run.py [name ...]`` (names filter the scripts, e.g. ``batch import``);
``--strict`` exits with 1 when a goal is missed (by default only a crashed benchmark does).
Each benchmark runs in its own interpreter and writes ``bench/results/<name>.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from _common import BENCH_DIR, RESULTS_DIR, Row, format_table


def main(argv: list[str]) -> int:
    strict = "--strict" in argv
    wanted = [a for a in argv if not a.startswith("--")]
    scripts = sorted(BENCH_DIR.glob("bench_*.py"))
    if wanted:
        scripts = [s for s in scripts if any(w in s.stem for w in wanted)]
    crashed: list[str] = []
    rows: list[Row] = []
    for script in scripts:
        print(f"\n### {script.name}", flush=True)
        started = time.time()
        code = subprocess.run([sys.executable, str(script)], cwd=BENCH_DIR.parent).returncode
        took = time.time() - started
        if code != 0:
            crashed.append(script.name)
            rows.append(Row(f"[{script.stem}] crashed (exit {code})", "-", status="MISS"))
            continue
        for data in _results_of(script.name, started):
            for row in data["rows"]:
                row["measurement"] = f"[{data['name']}] {row['measurement']}"
                rows.append(Row(**row))
        print(f"({script.name}: {took:.0f} s)")
    print("\n### summary")
    print(format_table(rows))
    missed = [r.measurement for r in rows if r.status == "MISS"]
    print(
        f"\n{len(rows)} rows, {len(missed)} missed" + (": " + "; ".join(missed) if missed else "")
    )
    if crashed:
        return 1
    return 1 if strict and missed else 0


def _results_of(script: str, started: float) -> list[dict[str, Any]]:
    """The result files ``script`` wrote (they name their script; older ones: by time only)."""
    if not RESULTS_DIR.exists():
        return []
    fresh = [p for p in sorted(RESULTS_DIR.glob("*.json")) if p.stat().st_mtime >= started]
    found = [json.loads(p.read_text()) for p in fresh]
    return [d for d in found if d.get("script", script) == script and "rows" in d]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
