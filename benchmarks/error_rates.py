"""Measured error rates of the regression verdict on the embedded model, default settings, with
real changes to the model and with a neighbour on the machine.

Each trial records fresh baselines of the embedded model into a temp folder (on a quiet
machine), then runs the suite against them: A/A runs (the same model: any REGRESSED is a false
alarm) and one run per change, each a real model whose folder is also named tiny-qwen2 (the same
identity; its provenance names the new hash):

- wider-mlp: the synth recipe with a wider MLP (intermediate 704 -> 864), about +10%;
- one-more-layer: the recipe with 5 decoder layers instead of 4, about +21%;
- layer-and-option: 5 layers and the session option past_present_share_buffer off, about +25%.

The changes are built once with the synth recipe (requirements-synth.txt) into --cache. Their
real sizes are measured in the same run (--measure-changes: paired A/B runs of each against the
embedded model), since a ratio measured elsewhere would be an anecdote. A neighbour keeps the
machine busy while the runs compare (never while recording):

- cpu: one process spinning one core;
- memcopy: one process copying 64 MB arrays back and forth (memory bandwidth and a core);
- bursts: one process busy for 1-2 s, then idle for 1-2 s, again and again.

``--ab`` runs each comparison as an A/B run instead (--ab-model: the embedded model in
processes alternating with the change's; no stored baseline). Each run is classified by what
its exit status and results say: REGRESSED (a case or the grid failed against the reference),
NOT JUDGED (nothing regressed, something could not be judged: exit 6), OK (green). Prints one
line per run and a table. From the repository root:

    python benchmarks/error_rates.py [--trials 20] [--aa-per-trial 2] [--changes wider-mlp,...]
        [--neighbour none|cpu|memcopy|bursts] [--ab] [--quiet-wait-s 10] [-- extra pytest options]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "tiny-qwen2"
CHANGES = ("wider-mlp", "one-more-layer", "layer-and-option")
NEIGHBOURS = {
    "none": None,
    "cpu": "while True: pass",
    "memcopy": (
        "import numpy as np\na = np.ones(8 << 20); b = np.empty_like(a)\nwhile True: np.copyto(b, a); np.copyto(a, b)"
    ),
    "bursts": (
        "import random, time\nrandom.seed(7)\nwhile True:\n"
        "    end = time.monotonic() + random.uniform(1, 2)\n"
        "    while time.monotonic() < end: pass\n"
        "    time.sleep(random.uniform(1, 2))"
    ),
}


@dataclass
class Tally:
    runs: int = 0
    regressed: int = 0
    not_judged: int = 0
    ok: int = 0
    by_grid: int = 0
    by_case: int = 0
    inconclusive: int = 0
    seconds: list[float] = field(default_factory=list)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a rate k/n (sound at 0 and n, unlike k/n +- 2 SE)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def build_changes(cache: Path) -> dict[str, Path]:
    """The changed models, built once with the synth recipe, each in a folder named tiny-qwen2."""
    from npuperf.models import synth

    base = synth.RECIPES["tiny"]
    recipes = {"wider-mlp": replace(base, intermediate_size=864), "one-more-layer": replace(base, layers=5)}
    out = {}
    for name, recipe in recipes.items():
        folder = cache / name / "tiny-qwen2"
        if not folder.exists():
            print(f"building {name} into {folder}", flush=True)
            synth.build(recipe, folder, log=lambda _line: None)
        out[name] = folder
    option = cache / "layer-and-option" / "tiny-qwen2"
    if not option.exists():
        shutil.copytree(out["one-more-layer"], option)
        config = option / "genai_config.json"
        doc = json.loads(config.read_text(encoding="utf-8"))
        doc["search"]["past_present_share_buffer"] = False
        config.write_text(json.dumps(doc, indent=4), encoding="utf-8")
    out["layer-and-option"] = option
    return out


def suite(folder: Path, name: str, extra: list[str], *args: str) -> tuple[dict, int, float]:  # type: ignore[type-arg]
    results = folder / f"{name}.json"
    results.unlink(missing_ok=True)
    cmd = [
        sys.executable, "-m", "pytest", "perf_tests", "-q", "-p", "no:cacheprovider", "-m", "not npu and not service",
        "--baselines-dir", str(folder), "--html", str(folder / f"{name}.html"), "--results-json", str(results),
        "--history", "none", *args, *extra,
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if not results.is_file():
        raise SystemExit(f"error_rates: the suite wrote no results (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
    return json.loads(results.read_text(encoding="utf-8")), proc.returncode, elapsed


@contextlib.contextmanager
def neighbour(kind: str) -> Iterator[None]:
    """An unrelated process keeping the machine busy (not a child of the suite's process)."""
    code = NEIGHBOURS[kind]
    proc = None if code is None else subprocess.Popen([sys.executable, "-c", code])
    try:
        if proc is not None:
            time.sleep(1.0)
        yield
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


def score(doc: dict, status: int, tally: Tally, seconds: float) -> str:  # type: ignore[type-arg]
    case_hits = [
        f"{c['id']} {k['name'].split()[0]}"
        for c in doc["cases"]
        for k in c["checks"]
        if k["name"].endswith("vs baseline") and k["outcome"] == "failed"
    ]
    grid = doc["session"].get("grid") or {}
    grid_hit = grid.get("outcome") == "failed"
    unjudged = doc["session"].get("measured", {}).get("not_judged") or []
    tally.runs += 1
    tally.seconds.append(seconds)
    tally.by_grid += grid_hit
    tally.by_case += bool(case_hits)
    tally.inconclusive += any(c["outcome"] == "inconclusive" for c in doc["cases"])
    if case_hits or grid_hit:
        tally.regressed += 1
        verdict = "REGRESSED"
    elif unjudged or status == 6:
        tally.not_judged += 1
        verdict = "NOT JUDGED"
    else:
        tally.ok += 1
        verdict = "OK" if status == 0 else f"exit {status}"
    ratio = grid.get("ratio")
    shown = f" ({(ratio - 1) * 100:+.1f}%)" if ratio is not None else ""
    return (
        f"{verdict:<10} grid {grid.get('outcome', '-')}{shown}, cases regressed {len(case_hits)}"
        f"{': ' + ', '.join(case_hits[:3]) if case_hits else ''}, not judged {len(unjudged)}, {seconds:.0f} s"
    )


def measure_changes(changes: dict[str, Path], folder: Path, extra: list[str]) -> None:
    """Each change's size against the embedded model, paired in this run (what a slowdown 'is')."""
    for name, model in changes.items():
        doc, _, _ = suite(folder, f"size-{name}", extra, f"--model={model}", f"--ab-model={MODEL}")
        grid = doc["session"].get("grid") or {}
        print(f"change {name}: grid {(grid.get('ratio', 1) - 1) * 100:+.1f}% against the embedded model "
              f"(A/B, {grid.get('message', '')[:60]}...)", flush=True)  # fmt: skip


def table(tallies: dict[str, Tally]) -> None:
    print("\n| run | runs | REGRESSED | rate (95% CI) | NOT JUDGED | OK | by the grid | by a case | mean time |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, t in tallies.items():
        lo, hi = wilson(t.regressed, t.runs)
        mean = sum(t.seconds) / len(t.seconds) if t.seconds else 0.0
        print(
            f"| {name} | {t.runs} | {t.regressed} | {t.regressed / max(t.runs, 1):.1%} ({lo:.1%}..{hi:.1%}) "
            f"| {t.not_judged} | {t.ok} | {t.by_grid} | {t.by_case} | {mean:.0f} s |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="fresh baseline recordings")
    parser.add_argument("--aa-per-trial", type=int, default=2, help="A/A runs against each recording")
    parser.add_argument("--changes", default=",".join(CHANGES), help="changes per trial, comma list; 'none'")
    parser.add_argument("--neighbour", choices=tuple(NEIGHBOURS), default="none")
    parser.add_argument("--ab", action="store_true", help="A/B runs (alternating processes) instead of a baseline")
    parser.add_argument("--quiet-wait-s", default="10", help="the suite's wait for a quiet machine (default here: 10)")
    parser.add_argument("--measure-changes", action="store_true", help="first measure each change's size (A/B)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "npuperf-error-rate-models")
    parser.add_argument("extra", nargs="*", help="extra pytest options (after --)")
    args = parser.parse_args()
    wanted = () if args.changes == "none" else tuple(args.changes.split(","))
    changes = {k: v for k, v in build_changes(args.cache).items() if k in wanted}
    extra = [f"--quiet-wait-s={args.quiet_wait_s}", *args.extra]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; {args.trials} "
        f"trials x ({args.aa_per_trial} A/A + {len(changes)} changes: {', '.join(changes) or 'none'}); "
        f"{'A/B runs' if args.ab else 'against a fresh baseline'}; neighbour while comparing: {args.neighbour}; "
        f"options: {extra}",
        flush=True,
    )
    tallies = {"A/A (false alarms)": Tally(), **{f"{name} (detection)": Tally() for name in changes}}
    record_seconds, refused = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.measure_changes:
            measure_changes(changes, folder, extra)
        for trial in range(1, args.trials + 1):
            for old in folder.rglob("*.json"):
                old.unlink()
            if not args.ab:
                doc, status, seconds = suite(folder, "record", extra, "--update-baselines")
                record_seconds.append(seconds)
                if status != 0:
                    refused += 1
                    print(f"trial {trial:3d} recording failed (exit {status})", flush=True)
                    continue
            runs = [("A/A (false alarms)", MODEL)] * args.aa_per_trial + [
                (f"{n} (detection)", m) for n, m in changes.items()
            ]
            random.Random(trial).shuffle(runs)  # no change always right after the recording
            with neighbour(args.neighbour):
                for name, model in runs:
                    ab = [f"--ab-model={MODEL}"] if args.ab else []
                    doc, status, seconds = suite(folder, "compare", extra, f"--model={model}", *ab)
                    print(f"trial {trial:3d} {name:<30}: {score(doc, status, tallies[name], seconds)}", flush=True)
    if record_seconds:
        mean = sum(record_seconds) / len(record_seconds)
        print(f"\nrecordings: {len(record_seconds)}, failed {refused}; {mean:.0f} s each")
    table(tallies)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
