"""A/A trials: how often does the suite report a regression on unchanged code?

Each trial records baselines into a temp folder (--update-baselines), then runs the
suite again against them. Every REGRESSED case is a false alarm. Prints one line per
trial and a total. Usage (from the repository root):

    python benchmarks/aa_trials.py [--trials 40] [-- extra pytest options]
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


def pytest_run(folder: Path, name: str, extra: list[str], *record: str) -> dict:  # type: ignore[type-arg]
    results = folder / f"{name}.json"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "perf_tests",
        "-q",
        "-p",
        "no:cacheprovider",
        "--baselines-dir",
        str(folder),
        "--html",
        str(folder / f"{name}.html"),
        "--results-json",
        str(results),
        *record,
        *extra,
    ]
    subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if not results.is_file():
        raise SystemExit(f"aa_trials: the suite wrote no results ({' '.join(cmd)})")
    return json.loads(results.read_text(encoding="utf-8"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("extra", nargs="*", help="extra pytest options, after --")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {args.trials} A/A trials; options: {args.extra}")
    failed_runs = first_run_alarms = inconclusive_runs = 0
    start = time.perf_counter()
    for trial in range(1, args.trials + 1):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            pytest_run(folder, "record", args.extra, "--update-baselines")
            doc = pytest_run(folder, "compare", args.extra)
        regs = [k for c in doc["cases"] for k in c["checks"] if k["name"] == "latency vs baseline"]
        regressed = [k["message"] for k in regs if k["outcome"] == "failed"]
        cleared = [k["message"] for k in regs if "not confirmed" in k["message"]]
        inconclusive = [k["message"] for k in regs if k["outcome"] == "inconclusive"]
        failed_runs += bool(regressed)
        first_run_alarms += len(cleared) + len(regressed)
        inconclusive_runs += bool(inconclusive)
        print(
            f"trial {trial:3d}: {len(regs)} cases compared, regressed {len(regressed)}, "
            f"cleared on re-run {len(cleared)}, inconclusive {len(inconclusive)}"
        )
        for message in regressed:
            print(f"    REGRESSED: {message}")
    minutes = (time.perf_counter() - start) / 60
    print(
        f"\n{args.trials} trials in {minutes:.1f} min: runs with a false REGRESSED {failed_runs} "
        f"({failed_runs / args.trials:.1%}); first-run alarms {first_run_alarms}; "
        f"runs with an INCONCLUSIVE case {inconclusive_runs}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
