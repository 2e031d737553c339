"""What the QNN checks see, trial after trial: placement, perf mode, cold compile vs cache.

Runs the same probes as perf_tests/test_backend.py's NPU section (three fresh processes
per trial: cold compile, writing the EPContext model, loading it) N times and prints
each trial and the medians. On x86_64 the HTP is the onnxruntime-qnn wheel's simulator:
its timings are simulator timings and say nothing about a Snapdragon NPU. Usage:

    python benchmarks/qnn_checks.py [--trials 5] [--model models/qnn-block/model.onnx]
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

from npuperf.machine.device import fingerprint  # noqa: E402
from npuperf.npu import qnn  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5, help="inference runs per probe process")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "qnn-block" / "model.onnx")
    parser.add_argument("--perf-mode", default="burst", choices=qnn.PERF_MODES)
    args = parser.parse_args()
    if qnn.available() is not None:
        print(f"onnxruntime-qnn is not importable: {qnn.available()}", file=sys.stderr)
        return 2
    dev = fingerprint()
    print(f"machine: {dev['cpu']}, {dev['cores']} cores, {dev['os']} {dev['arch']}, python {platform.python_version()}")
    rows = []
    for trial in range(1, args.trials + 1):
        with tempfile.TemporaryDirectory(prefix="npuperf-qnn-bench-") as tmp:
            r = qnn.report(args.model, args.perf_mode, args.runs, workdir=Path(tmp))
        c = r.cache
        p = c.cold.placement
        rows.append((c.cold.session_s, c.cached.session_s, c.speedup or 0.0, c.cold.first_run_ms, c.cold.warm_run_ms))
        if trial == 1:
            print(
                f"model {args.model.name}: {'HTP simulator' if c.cold.simulated else 'NPU'} "
                f"(EP device type {c.cold.device_type}), versions {dict(c.cold.versions)}"
            )
            print(
                f"placement: {len(p.on_qnn)}/{len(p.nodes)} nodes on QNN ({p.node_share:.1%}), "
                f"{p.time_share:.2%} of kernel time; fallback: {[n.name for n in p.fallback] or 'none'}"
            )
            print(f"perf mode: requested {args.perf_mode}, applied (EP log) {c.cold.applied_perf_mode}")
            print("trial  cold compile ms  cached load ms  speedup  first run ms  warm run ms")
        print(
            f"{trial:>5}  {c.cold.session_s * 1000:>15.1f}  {c.cached.session_s * 1000:>14.1f}  "
            f"{c.speedup or 0:>7.1f}  {c.cold.first_run_ms:>12.1f}  {c.cold.warm_run_ms or 0:>11.1f}"
        )
    med = [statistics.median(col) for col in zip(*[(a, b, s, f, w or 0.0) for a, b, s, f, w in rows], strict=True)]
    print(f"median  {med[0] * 1000:>14.1f}  {med[1] * 1000:>14.1f}  {med[2]:>7.1f}  {med[3]:>12.1f}  {med[4]:>11.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
