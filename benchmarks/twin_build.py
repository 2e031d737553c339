"""Time and peak memory of building a shape twin (npuperf synth <preset>).

Runs the build in a child process into a fresh cache folder and samples the resident memory
of the child and everything it starts (the model builder runs as its own process) every
100 ms; prints one line per preset. docs/twins.md quotes its output.

    python benchmarks/twin_build.py qwen2-0.5b [qwen2.5-1.5b ...] [--cache DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from npuperf.machine import device

ROOT = Path(__file__).resolve().parent.parent


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def build(preset: str, cache: Path) -> tuple[int, float, int, str]:
    env = {**os.environ, "NPUPERF_CACHE": str(cache)}
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "npuperf", "synth", preset],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    watched = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        peak = max(peak, tree_rss(watched))
        time.sleep(0.1)
    out = child.stdout.read() if child.stdout else ""
    return child.returncode, time.monotonic() - started, peak, out


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("presets", nargs="+")
    p.add_argument("--cache", type=Path, default=None, help="cache folder (default: a fresh temporary one)")
    args = p.parse_args()
    mem = psutil.virtual_memory().total
    print(
        f"machine: {device.cpu_model()} ({platform.machine()}), {psutil.cpu_count()} cores, "
        f"{mem / 2**30:.1f} GiB, python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="npuperf-twins-") as tmp:
        cache = args.cache or Path(tmp)
        for preset in args.presets:
            rc, seconds, peak, out = build(preset, cache)
            folder = next((line for line in out.splitlines() if line.startswith(str(cache))), "")
            size = sum(f.stat().st_size for f in Path(folder).iterdir()) if folder else 0
            print(
                f"{preset}: exit {rc}, {seconds:.0f} s, peak memory {peak / 2**30:.2f} GiB, "
                f"model {size / 2**20:.0f} MiB"
            )
            if rc != 0:
                print(out[-2000:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
