"""The cost of measuring: a case with and without the suite's instruments, in the same run.

The instruments (issue #13): the per-token callback that stamps the first token's CPU time,
the process CPU clock read at the start and end of every generation, and the thread that
samples resident memory every 10 ms. Token timestamps themselves are what latency is made
of, so every engine takes them in both arms; keeping them (the results JSON, the history)
happens after the case, outside any timed call.

The default case is the embedded model's largest grid case, 64 tokens / 256-token prompt.
The two arms alternate in blocks (A B B A ...) so a slow phase of the host hits both; the
result is the ratio of the median latencies with its bootstrap 95% interval.

Run from the repository root, alone on the machine:

    python benchmarks/measure_overhead.py [--blocks 20] [--reps 10] [--tokens 64] [--prompt 256]
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from npuperf.engines.ort_genai import OrtGenaiEngine  # noqa: E402
from npuperf.judge.stats import median, ratio_of_medians  # noqa: E402
from npuperf.measure import Case, measure_case  # noqa: E402
from npuperf.prompts import corpus_prompt  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=20, help="blocks per arm (alternating A B B A)")
    parser.add_argument("--reps", type=int, default=10, help="repetitions per block")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--prompt", type=int, default=256)
    args = parser.parse_args()
    engine = OrtGenaiEngine(ROOT / "models" / "tiny-qwen2")
    engine.load()
    case = Case(args.tokens, corpus_prompt(engine.tokenizer, args.prompt))
    measure_case(engine, case, 20, instruments=False)  # warm-up
    arms: dict[bool, list[float]] = {True: [], False: []}
    for block in range(args.blocks):
        order = (True, False) if block % 2 == 0 else (False, True)
        for instrumented in order:
            result = measure_case(engine, case, args.reps, instruments=instrumented)
            arms[instrumented] += list(result.samples("latency_ms"))
    engine.close()
    test = ratio_of_medians(arms[True], arms[False], line=1.0)
    where = platform.processor() or platform.platform()
    print(f"machine: {platform.machine()}, {where}, Python {platform.python_version()}")
    print(f"case: {case.label} on the embedded model (ort-genai, CPU), {args.blocks} blocks x {args.reps} per arm")
    print(f"median latency without instruments: {median(arms[False]):.3f} ms ({len(arms[False])} generations)")
    print(f"median latency with instruments:    {median(arms[True]):.3f} ms ({len(arms[True])} generations)")
    low, high = (test.ci_low - 1) * 100, (test.ci_high - 1) * 100
    print(f"overhead: {(test.ratio - 1) * 100:+.2f}% (95% CI {low:+.2f}..{high:+.2f}%)")


if __name__ == "__main__":
    main()
