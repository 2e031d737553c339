"""How much does one run's estimate of a case move from run to run: one process's median (the
suite before worker processes) against the median of P processes' medians (--processes P)?

Measures the embedded model's grid in RUNS x P fresh worker processes (npuperf.workers, the
suite's own runner, rotated case orders), in one session, nothing else changed. Then, per case:

- before: a one-process run compares one process's median. Taking the j-th process of each of
  the RUNS runs gives RUNS such estimates; their spread (max / min - 1), the median over j, is
  what the verdict had to tolerate;
- after: each run's estimate is the median of its P process medians; the spread of those RUNS
  estimates. Both spreads are over RUNS values, so they compare like with like.

Also the cost: the seconds per process (start, load, warm-up, the grid) and per run. Usage,
from the repository root, alone on the machine:

    python benchmarks/process_noise.py [--runs 6] [--processes 5] [--repetitions 4]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

from npuperf.engines.base import factory_path
from npuperf.measure import case_specs
from npuperf.workers.pool import ProcessRunner, rotations
from npuperf.workers.protocol import Job

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "tiny-qwen2"
OFF = 0.10  # the per-case tolerance: an estimate this far off is a false alarm waiting to happen


def spread(values: list[float]) -> float:
    return max(values) / min(values) - 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--repetitions", type=int, default=4)
    args = parser.parse_args()
    specs = case_specs((8, 16, 32, 64), (8, 64, 256), ("greeting-zh", "analyze-zh"))
    runner = ProcessRunner()
    total = args.runs * args.processes
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.system()}")
    print(
        f"{args.runs} runs x {args.processes} processes x {len(specs)} cases x {args.repetitions} generations, "
        f"model {MODEL.name}\n"
    )
    medians: dict[str, list[float]] = {s.id: [] for s in specs}
    seconds = []
    for k, order in enumerate(rotations(specs, total)):
        job = Job(
            engine="ort-genai",
            factory=factory_path("ort-genai") or "",
            model=str(MODEL),
            provider="cpu",
            extra={},
            specs=order,
            repetitions=args.repetitions,
            warmup=5,
            warm_tokens=8,
            warm_prompts=(8, 64, 256),
            process=k,
        )
        start = time.perf_counter()
        run = runner.run(job, lambda _m: None)
        seconds.append(time.perf_counter() - start)
        for cid, result in run.cases.items():
            medians[cid].append(result.latency.median)
        print(f"  process {k + 1}/{total}: {seconds[-1]:.1f} s", flush=True)
    p = args.processes
    print(f"\n{'case':<16} {'one process: spread':>20} {f'median of {p}: spread':>20} {'worst process':>14}")
    before, after, off_one, off_run = [], [], 0, 0
    for cid, values in medians.items():
        # the processes ran in rotation order: group every P consecutive ones into a run
        runs = [statistics.median(values[i : i + p]) for i in range(0, total, p)]
        slots = [spread(values[j::p]) for j in range(p)]
        before.append(statistics.median(slots))
        after.append(spread(runs))
        centre = statistics.median(values)
        worst = max(abs(v / centre - 1) for v in values)
        off_one += sum(abs(v / centre - 1) > OFF for v in values)
        off_run += sum(abs(r / centre - 1) > OFF for r in runs)
        print(f"{cid:<16} {before[-1] * 100:>19.1f}% {after[-1] * 100:>19.1f}% {worst * 100:>+13.1f}%")
    print(
        f"\nspread over {args.runs} runs' estimates: worst case one process {max(before) * 100:.1f}%, median of {p} "
        f"{max(after) * 100:.1f}%; median case {statistics.median(before) * 100:.1f}% -> "
        f"{statistics.median(after) * 100:.1f}%"
    )
    print(
        f"estimates more than {OFF:.0%} from the case's median of all {total} processes: one process {off_one} of "
        f"{total * len(medians)}, median of {p} {off_run} of {args.runs * len(medians)}"
    )
    per = statistics.median(seconds)
    print(
        f"cost: {per:.1f} s per process (start, load, cold call, 5 warm-ups, {len(specs)} cases x "
        f"{args.repetitions}), {per * args.processes:.1f} s per run of {args.processes}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
