"""``npuperf ab``: is B slower than A, measured side by side now? The suite's A/B run.

    npuperf ab --a last-good/genie_config.json --b tonight/genie_config.json --engine genie
    npuperf ab --a models/tiny-qwen2 --b /tmp/tiny-qwen2-5-layers      # two model folders
    npuperf ab --a-python ../old-venv/bin/python                       # a runtime upgrade: two environments

Runs ``pytest perf_tests`` with ``--ab-model`` / ``--ab-python``: --processes pairs of fresh
processes, A and B alternating (A B, then B A, ...), each measuring every latency case; the
verdict of each case and of the grid is paired (the median of each pair's ratio), so a slow
phase of the machine or a laptop warming up hits both sides alike. Latency cases only, unless a
``-m`` is given among the pytest options. The exit status is pytest's (1: B regressed).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from npuperf.cli.runs import CliError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ab", help="A/B: B against A, measured in alternating processes now (a paired verdict)")
    p.add_argument("--a", default=None, help="the reference: a model folder or Genie config (default: B's model)")
    p.add_argument("--b", default=None, help="the model to judge (default: pytest.ini's --model)")
    p.add_argument("--a-python", default=None, help="start A's processes with this Python (another environment)")
    p.add_argument("--pairs", type=int, default=None, help="pairs of processes (default: --processes, 5)")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="more pytest options, after --")


def command(args: argparse.Namespace) -> list[str]:
    """The pytest command line of the A/B run."""
    if args.a is None and args.a_python is None:
        raise CliError("ab: name the reference: --a MODEL and/or --a-python PYTHON")
    if args.pairs is not None and args.pairs < 1:
        raise CliError(f"--pairs: {args.pairs} is below 1; expected a number of pairs >= 1")
    extra = [a for a in args.pytest_args if a != "--"]
    cmd = [sys.executable, "-m", "pytest", "perf_tests"]
    if not any(a == "-m" or a.startswith("-m=") for a in extra):
        cmd += ["-m", "not npu and not service"]
    if args.b is not None:
        cmd.append(f"--model={args.b}")
    if args.a is not None:
        cmd.append(f"--ab-model={args.a}")
    if args.a_python is not None:
        cmd.append(f"--ab-python={args.a_python}")
    if args.pairs is not None:
        cmd.append(f"--processes={args.pairs}")
    return cmd + extra


def run(args: argparse.Namespace) -> int:
    return subprocess.run(command(args), check=False).returncode
