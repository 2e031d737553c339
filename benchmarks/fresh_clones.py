"""Does the README's first command pass on fresh copies of the checkout? Each run clones this
repository into a temporary folder and runs ``pytest perf_tests`` there (the whole default suite:
the grid against the committed baseline, the NPU section on the HTP simulator, the service
section), with this interpreter's packages (the install step is not what is measured). Prints
one line per run (exit status, the grid's verdict, what the cases were compared with, time) and
the tally. From the repository root, alone on the machine:

    python benchmarks/fresh_clones.py [--runs 20] [--pause-s 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one(run: int) -> tuple[int, str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "npuperf"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "perf_tests", "-q", "-p", "no:cacheprovider"],
            cwd=clone,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - start
        results = clone / "reports" / "perf-results.json"
        if not results.is_file():
            return proc.returncode, f"no results: {proc.stdout[-500:]}", seconds
        doc = json.loads(results.read_text(encoding="utf-8"))
        grid = doc["session"].get("grid") or {}
        base = doc["session"].get("baseline") or {}
        against = f"another host's ({base['other_host']})" if base.get("other_host") else "this host's"
        states = sorted({c["outcome"] for c in doc["cases"]})
        ratio = grid.get("ratio")
        shown = f"{(ratio - 1) * 100:+.1f}%" if ratio is not None else "-"
        return (
            proc.returncode,
            f"grid {grid.get('outcome', '-')} ({shown}), cases {states}, {against} baseline",
            seconds,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--pause-s", type=float, default=30.0, help="between runs (the runs spread over time)")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; {args.runs} runs"
    )
    statuses, seconds = [], []
    for run in range(1, args.runs + 1):
        status, what, took = one(run)
        statuses.append(status)
        seconds.append(took)
        print(f"run {run:3d} {time.strftime('%H:%M:%S')}: exit {status}, {what}, {took:.0f} s", flush=True)
        if run < args.runs:
            time.sleep(args.pause_s)
    passed = sum(s == 0 for s in statuses)
    print(f"\npassed (exit 0): {passed} of {len(statuses)}; exit statuses {sorted(set(statuses))}")
    print(f"time per run: median {sorted(seconds)[len(seconds) // 2]:.0f} s, max {max(seconds):.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
