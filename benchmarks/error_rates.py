"""Measured error rates of the regression verdict on the embedded model, default settings.

Each trial records fresh baselines into a temp folder (two passes: the noise floor),
then runs the suite against them: A/A runs (unchanged code: any REGRESSED is a false
alarm) and canary runs with --inject-slowdown 0.05, 0.10 and 0.20 (a run that reports
REGRESSED anywhere has detected the slowdown). Prints one line per run and a table.
Run from the repository root, alone on the machine:

    python benchmarks/error_rates.py [--trials 15] [--aa-per-trial 3] [--levels 0.05,0.10,0.20]
                                     [--load none|compare|both] [--load-cores 1] [-- extra pytest options]

``--load compare`` keeps ``--load-cores`` unrelated busy-loop processes running while the
A/A and canary runs are compared (the baselines are recorded on a quiet machine: a busy
nightly laptop); ``--load both`` also while recording (the suite refuses such a recording;
the refusals are counted).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Tally:
    runs: int = 0
    flagged: int = 0
    by_grid: int = 0
    by_case: int = 0
    inconclusive_runs: int = 0
    seconds: list[float] = field(default_factory=list)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a rate k/n (sound at 0 and n, unlike k/n +- 2 SE)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def suite(folder: Path, name: str, extra: list[str], *args: str) -> tuple[dict, float]:  # type: ignore[type-arg]
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
        "--history",
        "none",
        *args,
        *extra,
    ]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if not results.is_file():
        raise SystemExit(f"error_rates: the suite wrote no results: {' '.join(cmd)}")
    return json.loads(results.read_text(encoding="utf-8")), elapsed


@contextlib.contextmanager
def load(cores: int, on: bool):  # type: ignore[no-untyped-def]
    """``cores`` processes that each keep one core busy, like a virus scan or an indexer."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores if on else 0)]
    try:
        if procs:
            time.sleep(0.5)
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def score(doc: dict, tally: Tally, seconds: float) -> str:  # type: ignore[type-arg]
    case_hits = [
        f"{c['id']} {k['name'].split()[0]}"
        for c in doc["cases"]
        for k in c["checks"]
        if k["name"].endswith("vs baseline") and k["outcome"] == "failed"
    ]
    grid = doc["session"].get("grid") or {}
    grid_hit = grid.get("outcome") == "failed"
    inconclusive = any(c["outcome"] == "inconclusive" for c in doc["cases"]) or grid.get("outcome") == "inconclusive"
    tally.runs += 1
    tally.flagged += bool(case_hits or grid_hit)
    tally.by_grid += grid_hit
    tally.by_case += bool(case_hits)
    tally.inconclusive_runs += inconclusive
    tally.seconds.append(seconds)
    ratio = grid.get("ratio")
    return (
        f"grid {'REGRESSED' if grid_hit else grid.get('outcome', '-')}"
        f" ({(ratio - 1) * 100:+.1f}%)"
        * (ratio is not None)
        + f", cases regressed {len(case_hits)}{': ' + ', '.join(case_hits[:4]) if case_hits else ''}, {seconds:.1f} s"
    )


def _refusal(doc: dict) -> str:  # type: ignore[type-arg]
    busy = [c.get("background_cores") for c in doc["cases"] if c.get("background_cores") is not None]
    return f"other processes kept up to {max(busy):.2f} cores busy" if busy else "see the suite's output"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=15, help="fresh baseline recordings")
    parser.add_argument("--aa-per-trial", type=int, default=3, help="A/A runs against each recording")
    parser.add_argument(
        "--levels", default="0.05,0.10,0.20", help="canary slowdowns per trial, comma list; 'none' for A/A only"
    )
    parser.add_argument("--load", choices=("none", "compare", "both"), default="none", help="background load")
    parser.add_argument("--load-cores", type=int, default=1, help="busy-loop processes of the background load")
    parser.add_argument("extra", nargs="*", help="extra pytest options (after --)")
    args = parser.parse_args()
    levels = () if args.levels == "none" else tuple(float(x) for x in args.levels.split(","))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{args.trials} trials x ({args.aa_per_trial} A/A + {len(levels)} canary runs); "
        f"options: {args.extra or 'defaults'}; background load: {args.load} ({args.load_cores} busy core(s))",
        flush=True,
    )
    tallies = {0.0: Tally(), **{level: Tally() for level in levels}}
    reps = None
    record_seconds = []
    refused = 0
    for trial in range(1, args.trials + 1):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            with load(args.load_cores, args.load == "both"):
                doc, seconds = suite(folder, "record", args.extra, "--update-baselines")
            reps = doc["settings"]["repetitions"]
            record_seconds.append(seconds)
            if not any(folder.rglob("*/*.json")):
                refused += 1
                print(f"trial {trial:3d} recording refused: {_refusal(doc)}", flush=True)
                continue
            with load(args.load_cores, args.load != "none"):
                for i in range(args.aa_per_trial):
                    doc, seconds = suite(folder, f"aa{i}", args.extra)
                    print(f"trial {trial:3d} A/A      : {score(doc, tallies[0.0], seconds)}", flush=True)
                for level in levels:
                    doc, seconds = suite(folder, f"slow{level}", args.extra, f"--inject-slowdown={level}")
                    print(f"trial {trial:3d} slow {level:4.0%} : {score(doc, tallies[level], seconds)}", flush=True)
    mean_record = sum(record_seconds) / len(record_seconds)
    print(f"\nrecordings refused by the suite (busy or unsteady machine): {refused} of {args.trials}")
    print(f"\nrepetitions per case: {reps}; recording baselines (two passes) took {mean_record:.1f} s on average\n")
    print(
        "| run | runs | flagged REGRESSED | rate (95% CI) | by the grid test | by a case "
        "| with an INCONCLUSIVE | suite time per run |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for level, t in tallies.items():
        lo, hi = wilson(t.flagged, t.runs)
        name = "A/A (false alarms)" if level == 0 else f"slowed {level:.0%} (detection)"
        mean = sum(t.seconds) / len(t.seconds) if t.seconds else 0.0
        print(
            f"| {name} | {t.runs} | {t.flagged} | {t.flagged / max(t.runs, 1):.1%} ({lo:.1%}..{hi:.1%}) "
            f"| {t.by_grid} | {t.by_case} | {t.inconclusive_runs} | {mean:.1f} s |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
