"""What HTTP adds to a generation: the reference server, streamed and whole, trial after trial.

Starts ``python -m npuperf.server`` (the embedded model unless --model says otherwise) on a
free loopback port, then for each trial and token budget sends N requests streamed (SSE)
and N answered whole, and prints medians of the client latency, the server's in-process
latency, their difference (the HTTP overhead) and TTFT as the client and the server saw
it. Usage:

    python benchmarks/http_overhead.py [--trials 5] [--requests 20] [--budgets 8,64]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from npuperf.engines.http import HttpEngine  # noqa: E402
from npuperf.machine.device import fingerprint  # noqa: E402
from npuperf.server.launch import start_process  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20, help="requests per trial, budget and mode")
    parser.add_argument("--budgets", default="8,64")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "tiny-qwen2")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    dev = fingerprint()
    print(f"machine: {dev['cpu']}, {dev['cores']} cores, {dev['os']} {dev['arch']}, python {platform.python_version()}")
    log = Path(tempfile.gettempdir()) / "npuperf-http-overhead-server.log"
    server = start_process(["--model", str(args.model)], log)
    print(f"server: {server.url} ({args.model.name}), {args.requests} requests per row, medians")
    print("trial  mode    tokens  client ms  server ms  overhead ms  client TTFT  server TTFT")
    rows: dict[tuple[str, int], list[float]] = {}
    try:
        for trial in range(1, args.trials + 1):
            for stream in (True, False):
                engine = HttpEngine(server.url, args.model / "tokenizer.json", stream=stream)
                engine.load()
                for n in budgets:
                    for _ in range(3):  # warm the connection and the path
                        engine.generate("你好", n)
                    gens = [engine.generate("你好", n) for _ in range(args.requests)]

                    def med(values: list[float]) -> float:
                        return statistics.median(values)

                    client = med([g.latency_ms for g in gens])
                    srv = med([g.device["server_latency_ms"] for g in gens])
                    over = med([g.device["http_overhead_ms"] for g in gens])
                    mode = "stream" if stream else "whole"
                    rows.setdefault((mode, n), []).append(over)
                    ttft = med([g.ttft_ms for g in gens])
                    server_ttft = med([g.device["server_ttft_ms"] for g in gens])
                    print(
                        f"{trial:>5}  {mode:<6}  {n:>6}  {client:>9.2f}  {srv:>9.2f}  {over:>11.2f}  "
                        f"{ttft:>11.2f}  {server_ttft:>11.2f}"
                    )
                engine.close()
    finally:
        server.stop()
    print("overhead ms, median of the trials' medians (range):")
    for (mode, n), values in rows.items():
        print(f"  {mode:<6} {n:>3} tokens: {statistics.median(values):.2f} ({min(values):.2f}..{max(values):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
