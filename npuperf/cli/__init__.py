"""``python -m npuperf`` (console script ``npuperf``): what happens outside pytest.

    npuperf history [--case t32-p64] [--last 30] [--plot trend.svg]   # the trend, what changed, steps
    npuperf compare A B                                              # exit 1 when B regressed against A
    npuperf accept RUN [RUN ...]                                     # make runs the accepted baseline
    npuperf summary RESULTS.json [...] [--html night.html]           # markdown for $GITHUB_STEP_SUMMARY
    npuperf floor --preset qwen2-7b --bandwidth x-elite --tokens 32  # is a latency target possible at all?
    npuperf synth tiny --force                                       # rebuild a synthetic model (cli/synth.py)
    npuperf ab --a last-good/genie_config.json --b tonight/...      # B against A, measured side by side now

A run is a results JSON file (``reports/perf-results.json``) or a run id of the history
(``reports/history.sqlite``, ``--history``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from npuperf.cli import ab, accept, compare, summary, synth, trend
from npuperf.cli import floor as floor_cli
from npuperf.cli.runs import CliError, load_run
from npuperf.judge import history

DEFAULT_HISTORY = Path("reports/history.sqlite")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="npuperf", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--history", type=Path, default=DEFAULT_HISTORY, help="history store (default: %(default)s)")
    sub = p.add_subparsers(dest="command", required=True)

    h = sub.add_parser("history", help="the trend of a case or of every case over the last runs")
    h.add_argument("--case", default=None, help="one case id, e.g. t32-p64 (default: every case)")
    h.add_argument("--metric", default="latency_ms", choices=history.METRICS)
    h.add_argument("--last", type=int, default=30, help="how many runs (default: %(default)s)")
    h.add_argument("--identity", default=None, help="identity digest (prefix) when the history holds several")
    h.add_argument("--plot", type=Path, default=None, help="also write a chart (.png or .svg)")
    h.add_argument("--alpha", type=float, default=0.01, help="change detection: significance (default: %(default)s)")
    h.add_argument("--min-step", type=float, default=0.05, help="smallest step reported (default: %(default)s)")

    c = sub.add_parser("compare", help="judge run B against run A; exit 1 on a regression")
    c.add_argument("a", help="the baseline run: results JSON or history run id")
    c.add_argument("b", help="the run to judge: results JSON or history run id")
    c.add_argument("--tolerance", type=float, default=0.10, help="per-case tolerance (default: %(default)s)")
    c.add_argument("--grid-tolerance", type=float, default=0.03, help="whole-grid tolerance (default: %(default)s)")
    c.add_argument("--alpha", type=float, default=0.05, help="family-wise error rate (default: %(default)s)")
    c.add_argument("--min-regression-ms", type=float, default=1.0, help="absolute floor (default: %(default)s)")

    a = sub.add_parser("accept", help="make past runs the accepted baseline, without measuring again")
    a.add_argument("runs", nargs="+", help="results JSON files or history run ids, of one identity and build")
    a.add_argument("--baselines-dir", type=Path, default=Path("baselines"), help="default: %(default)s")

    s = sub.add_parser("summary", help="markdown of a run, or of one run per device side by side (CI summaries)")
    s.add_argument(
        "results", nargs="+", type=Path, help="results JSON files (reports/perf-results.json), one per device"
    )
    s.add_argument("--link", action="append", default=[], metavar="NAME=URL", help="an artifact to link (repeatable)")
    s.add_argument("--output", type=Path, default=None, help="append the markdown to this file instead of printing it")
    s.add_argument("--html", type=Path, default=None, help="also write the night's page (self-contained HTML)")

    f = sub.add_parser("floor", help="the decode floor of a model; exit 1 when --budget-ms is below it")
    f.add_argument("--preset", default=None, help="a shape (qwen2-0.5b, qwen2.5-1.5b, qwen2-7b): from its config")
    f.add_argument("--model", type=Path, default=None, help="a model folder (or a Genie config) to read instead")
    f.add_argument(
        "--engine", default="ort-genai", help="the --model's engine: ort-genai or genie (default: %(default)s)"
    )
    f.add_argument("--precision", default="int4", help="a --preset's weights: int4, int8, fp16, bf16, fp32")
    f.add_argument(
        "--bandwidth", default="probe", help="probe, x-elite, x-elite-1de, x-plus or GB/s (default: %(default)s)"
    )
    f.add_argument("--prompt", type=int, default=64, help="prompt tokens (default: %(default)s)")
    f.add_argument("--tokens", type=int, default=32, help="new tokens (default: %(default)s)")
    f.add_argument("--budget-ms", type=float, default=500.0, help="the latency target (default: %(default)s)")

    synth.add_parser(sub)
    ab.add_parser(sub)
    return p


def _check(args: argparse.Namespace) -> None:
    if getattr(args, "last", 1) < 1:
        raise CliError(f"--last: {args.last} is below 1; expected a number of runs >= 1")
    for name in ("alpha",):
        value = getattr(args, name, None)
        if value is not None and not 0 < value < 1:
            raise CliError(f"--{name}: {value} is out of range; expected a probability between 0 and 1")
    for name in ("tolerance", "grid_tolerance", "min_step", "min_regression_ms"):
        value = getattr(args, name, None)
        if value is not None and not 0 <= value < 10:
            raise CliError(f"--{name.replace('_', '-')}: {value} is out of range; expected a number from 0 to 10")


def run(argv: Sequence[str] | None = None) -> tuple[int, list[str]]:
    """The command's exit status and output lines (what ``main`` prints)."""
    args = _parser().parse_args(argv)
    _check(args)
    if args.command == "history":
        t = trend.trend(history.History(args.history), args.case, args.metric, args.last, args.identity)
        lines = trend.render(t, args.alpha, args.min_step)
        if args.plot is not None:
            lines.append(trend.plot(t, args.plot))
        return 0, lines
    if args.command == "compare":
        result = compare.compare_runs(
            load_run(args.a, args.history),
            load_run(args.b, args.history),
            tolerance=args.tolerance,
            grid_tolerance=args.grid_tolerance,
            alpha=args.alpha,
            min_regression_ms=args.min_regression_ms,
        )
        return (1 if result.regressed else 0), compare.render(result)
    if args.command == "floor":
        for flag, value, ok in (
            ("--prompt", args.prompt, args.prompt >= 1),
            ("--tokens", args.tokens, args.tokens >= 1),
            ("--budget-ms", args.budget_ms, 0 < args.budget_ms < 1e9),
        ):
            if not ok:
                raise CliError(f"{flag}: {value:g} is out of range; expected a positive number of tokens or ms")
        found = floor_cli.find(args.preset, args.model, args.engine, args.precision, args.bandwidth)
        return floor_cli.render(found, args.prompt, args.tokens, args.budget_ms)
    if args.command == "synth":
        return synth.build(args), []
    if args.command == "ab":
        return ab.run(args), []
    if args.command == "summary":
        return 0, summary.summary(args.results, args.link, args.output, args.html)
    runs = [load_run(ref, args.history) for ref in args.runs]
    return 0, accept.accept(runs, args.baselines_dir)


def main(argv: Sequence[str] | None = None) -> int:
    if hasattr(sys.stdout, "reconfigure"):  # a Windows console or CI log is often cp1252; the summary has emoji
        sys.stdout.reconfigure(encoding="utf-8", errors="replace")
    try:
        status, lines = run(argv)
    except (CliError, history.HistoryError) as exc:
        print(f"npuperf: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # a build is atomic (a temporary folder, renamed at the end): an interrupted one replaced nothing
        building = "synth" in (sys.argv[1:] if argv is None else list(argv))
        print("npuperf: interrupted" + ("; nothing was written" if building else ""), file=sys.stderr)
        return 130
    try:
        print("\n".join(lines))
    except BrokenPipeError:  # piped into head: the reader has what it wanted
        sys.stdout = None  # nothing more to flush at exit
    return status
