"""How much does the same code's median latency move between processes?

Runs the latency grid of the embedded model in N fresh processes for two thread
settings of ONNX Runtime (the committed one intra_op=1, and ORT's default of one
thread per core) and prints, per case, the medians and their spread (max/min - 1).
This is the noise a baseline comparison across runs must tolerate; it is why the
embedded model pins one thread. Usage:

    python benchmarks/process_noise.py [--processes 5] [--repetitions 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "tiny-qwen2"

CHILD = """
import json, sys
from pathlib import Path
from npuperf.engines.ort_genai import OrtGenaiEngine
from npuperf.measure import Case, measure_case
from npuperf.prompts import corpus_prompt
engine = OrtGenaiEngine(Path(sys.argv[1])); engine.load()
prompts = [corpus_prompt(engine.tokenizer, p) for p in (8, 64, 256)]
for i in range(5):
    engine.generate(prompts[i % 3].text, 8)
out = {}
for n in (8, 16, 32, 64):
    for prompt in prompts:
        case = Case(n, prompt)
        out[case.id] = measure_case(engine, case, int(sys.argv[2])).latency.median
print(json.dumps(out))
"""


def variant(tmp: Path, threads: int | None) -> Path:
    if threads == 1:
        return MODEL
    folder = tmp / "default-threads"
    shutil.copytree(MODEL, folder)
    config = folder / "genai_config.json"
    doc = json.loads(config.read_text(encoding="utf-8"))
    doc["model"]["decoder"]["session_options"].pop("intra_op_num_threads", None)
    doc["model"]["decoder"]["session_options"].pop("inter_op_num_threads", None)
    config.write_text(json.dumps(doc), encoding="utf-8")
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--repetitions", type=int, default=10)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.system()}")
    print(f"{args.processes} processes x 12 cases x {args.repetitions} repetitions per setting\n")
    with tempfile.TemporaryDirectory() as tmp:
        for label, threads in (("intra_op_num_threads=1 (committed)", 1), ("ORT default threads", None)):
            model = variant(Path(tmp), threads)
            runs = []
            for i in range(args.processes):
                print(f"  {label}: process {i + 1}/{args.processes}", file=sys.stderr)
                proc = subprocess.run(
                    [sys.executable, "-c", CHILD, str(model), str(args.repetitions)],
                    capture_output=True,
                    text=True,
                    env=env,
                    check=True,
                )
                runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(label)
            worst = 0.0
            for case in runs[0]:
                medians = [r[case] for r in runs]
                spread = max(medians) / min(medians) - 1
                worst = max(worst, spread)
                print(f"  {case:9s} " + " ".join(f"{m:7.2f}" for m in medians) + f"   spread {spread * 100:5.1f}%")
            print(f"  worst spread: {worst * 100:.1f}%\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
