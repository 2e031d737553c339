"""The 0.5B shape twin's latency grid on this machine: TTFT, TPOT, the decode floor, efficiency.

Runs ``pytest perf_tests --model synthetic:<preset>`` (the latency grid only: no NPU or service
section, no history) with the repository's grid and repetitions, reads its results JSON and
prints one line per case. docs/twins.md quotes its output. The twin is built first if the cache
does not hold it (about 35 s and 5.5 GiB for qwen2-0.5b here).

    python benchmarks/twin_grid.py [--preset qwen2-0.5b] [pytest options...]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--preset", default="qwen2-0.5b")
    args, extra = p.parse_known_args()
    with tempfile.TemporaryDirectory(prefix="npuperf-twin-grid-") as tmp:
        results = Path(tmp) / "results.json"
        cmd = [sys.executable, "-m", "pytest", "perf_tests", "-q", "-p", "no:randomly", "-m", "not npu and not service"]
        cmd += [f"--model=synthetic:{args.preset}", "--history=none", f"--results-json={results}"]
        cmd += [f"--html={Path(tmp) / 'r.html'}", f"--junitxml={Path(tmp) / 'j.xml'}", *extra]
        started = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        seconds = time.monotonic() - started
        if not results.is_file():
            print(proc.stdout[-3000:], proc.stderr[-2000:], file=sys.stderr)
            return proc.returncode or 1
        doc = json.loads(results.read_text(encoding="utf-8"))
    env, session = doc["environment"], doc["session"]
    f = session.get("floor") or {}
    print(f"machine: {env.get('Device')}, python {platform.python_version()}, {env.get('Runtime versions')}")
    print(
        f"model: {env.get('Model')} [{env.get('Model sha256')}], load {session.get('load_s', 0):.2f} s, "
        f"{session.get('loaded_rss_mb') or 0:.0f} MB resident"
    )
    print(
        f"floor: {f.get('weight_bytes', 0) / 1e6:.1f} MB weights/step ({f.get('weights_source')}), "
        f"{f.get('kv_bytes_per_position', 0) / 1e3:.1f} kB KV/position, "
        f"{f.get('bandwidth_gb_per_s', 0):.1f} GB/s ({f.get('bandwidth_source')})"
    )
    print(f"pytest exit {proc.returncode} in {seconds:.0f} s (a case over the 500 ms budget fails; expected here)")
    print(f"{'case':<18}{'TTFT ms':>9}{'TPOT ms':>9}{'floor ms':>10}{'efficiency':>11}{'median ms':>11}  outcome")
    for c in doc["cases"]:
        s, fl = c["summary"], c.get("floor") or {}
        tpot = (s.get("tpot_ms") or {}).get("median")
        eff = fl.get("efficiency")
        print(
            f"{c['id']:<18}{s['ttft_ms']['median']:>9.2f}{tpot or 0:>9.2f}{fl.get('decode_ms_per_token') or 0:>10.2f}"
            f"{'-' if eff is None else f'{eff:.0%}':>11}{s['latency_ms']['median']:>11.1f}  {c['outcome']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
