"""False alarms and detection of the nightly change detection (npuperf.changes) on A/A history.

1. Collect: run the suite N times in a row (same code, same machine) into a fresh history:
   real run-to-run noise of every case's median latency, each run its own process.
2. The real sequence: every case's series as it came, judged as ``npuperf history`` would.
   Any step is a false alarm (nothing changed).
3. A/A histories: random permutations of each case's real run medians (under A/A the
   runs are exchangeable), each judged: the share with a step is the false-alarm rate.
4. Detection: the same permuted histories with every run from a random position on made
   slower by +5%, +10%, +20%: found when a step up is named at that run (or one off).

Run from the repository root, alone on the machine:

    python benchmarks/change_detection.py [--collect 30] [--histories 100] [--history PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from npuperf.judge.changes import MIN_SIZE, change_points  # noqa: E402
from npuperf.judge.history import History  # noqa: E402


def collect(store: Path, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(1, runs + 1):
            start = time.perf_counter()
            cmd = [sys.executable, "-m", "pytest", "perf_tests", "-q", "-p", "no:cacheprovider",
                   "-m", "not npu and not service", "--history", str(store), "--baselines-dir", tmp,
                   "--results-json", str(Path(tmp) / "r.json"), "--html", str(Path(tmp) / "r.html")]  # fmt: skip
            subprocess.run(cmd, cwd=ROOT, capture_output=True, check=False)
            print(f"collected run {i}/{runs} in {time.perf_counter() - start:.1f} s", flush=True)


def series(store: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for run in History(store).runs():
        for cid, case in run.cases.items():
            value = case.median("latency_ms")
            if value:
                out.setdefault(cid, []).append(value)
    return out


def grid_series(cases: dict[str, list[float]]) -> list[float]:
    """As ``npuperf history`` builds it: per run, the median case relative to its own median."""
    typical = {cid: statistics.median(v) for cid, v in cases.items()}
    runs = len(next(iter(cases.values())))
    return [statistics.median(v[i] / typical[cid] for cid, v in cases.items()) for i in range(runs)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collect", type=int, default=30, help="suite runs to collect (0: use --history as is)")
    parser.add_argument("--history", type=Path, default=None, help="history to collect into or read")
    parser.add_argument("--histories", type=int, default=100, help="permuted A/A histories per case")
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--min-step", type=float, default=0.05)
    args = parser.parse_args()
    store = args.history or Path(tempfile.mkdtemp()) / "history.sqlite"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}", flush=True)
    if args.collect:
        collect(store, args.collect)
    data = series(store)
    n = min(len(v) for v in data.values())
    print(f"\n{len(data)} cases x {n} runs from {store}; alpha {args.alpha}, min step {args.min_step:.0%}")
    spread = sorted(max(v) / min(v) - 1 for v in data.values())
    print(f"run-to-run range of a case's median (max/min - 1): median {spread[len(spread) // 2]:.1%}, "
          f"worst {spread[-1]:.1%}")  # fmt: skip

    real = {cid: change_points(v[:n], alpha=args.alpha, min_step=args.min_step) for cid, v in data.items()}
    flagged = {cid: steps for cid, steps in real.items() if steps}
    print(f"\nthe real sequence: {len(flagged)} of {len(real)} cases with a step")
    for cid, steps in flagged.items():
        print(f"  {cid}: " + "; ".join(f"run {s.index + 1}: {s.words}" for s in steps))

    rng = random.Random(20261126)
    alarms = histories_with_any = 0
    for _ in range(args.histories):
        any_case = False
        for values in data.values():
            shuffled = rng.sample(values[:n], n)
            if change_points(shuffled, alpha=args.alpha, min_step=args.min_step, seed=rng.randrange(1 << 30)):
                alarms += 1
                any_case = True
        histories_with_any += any_case
    total = args.histories * len(data)
    print(f"\n| A/A histories ({n} runs) | judged | with a step | rate |")
    print("|---|---|---|---|")
    print(f"| per case | {total} | {alarms} | {alarms / total:.2%} |")
    print(f"| per grid ({len(data)} cases) | {args.histories} | {histories_with_any} | "
          f"{histories_with_any / args.histories:.1%} |")  # fmt: skip

    grid_alarms = 0
    runs_by_case = {cid: v[:n] for cid, v in data.items()}
    for _ in range(args.histories):
        order = rng.sample(range(n), n)  # permute whole runs: every case keeps its run's conditions
        permuted = {cid: [v[i] for i in order] for cid, v in runs_by_case.items()}
        grid_alarms += bool(change_points(grid_series(permuted), alpha=args.alpha, min_step=args.min_step))
    print(f"| grid series (median case) | {args.histories} | {grid_alarms} | {grid_alarms / args.histories:.1%} |")
    real_grid = change_points(grid_series(runs_by_case), alpha=args.alpha, min_step=args.min_step)
    print(f"\nthe real sequence, grid series: {[f'run {s.index + 1}: {s.words}' for s in real_grid] or 'no step'}")

    print("\n| injected step, grid series (every case) | histories | found at the run (+-1) | missed |")
    print("|---|---|---|---|")
    for step in (0.05, 0.10, 0.20):
        found = 0
        for _ in range(args.histories):
            order = rng.sample(range(n), n)
            at = rng.randrange(MIN_SIZE, n - MIN_SIZE + 1)
            slowed = {cid: [v[i] * (1 + step) if k >= at else v[i] for k, i in enumerate(order)]
                      for cid, v in runs_by_case.items()}  # fmt: skip
            steps = change_points(grid_series(slowed), alpha=args.alpha, min_step=args.min_step)
            found += any(abs(s.index - at) <= 1 and s.ratio > 1 for s in steps)
        print(f"| +{step:.0%} | {args.histories} | {found} ({found / args.histories:.0%}) | {args.histories - found} |")

    print("\n| injected step, one case | histories | found at the run (+-1) | missed |")
    print("|---|---|---|---|")
    for step in (0.05, 0.10, 0.20):
        found = tries = 0
        for values in list(data.values())[: max(1, len(data) // 4)]:
            for _ in range(args.histories // 2):
                shuffled = rng.sample(values[:n], n)
                at = rng.randrange(MIN_SIZE, n - MIN_SIZE + 1)
                history = [v * (1 + step) if i >= at else v for i, v in enumerate(shuffled)]
                steps = change_points(history, alpha=args.alpha, min_step=args.min_step, seed=rng.randrange(1 << 30))
                found += any(abs(s.index - at) <= 1 and s.ratio > 1 for s in steps)
                tries += 1
        print(f"| +{step:.0%} | {tries} | {found} ({found / tries:.0%}) | {tries - found} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
