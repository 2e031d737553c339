"""The report's charts: matplotlib figures as inline SVG (no network, no script at view time).

Text stays text in the SVG (``svg.fonttype: none``), so the page's font stack draws it (CJK
included) and the files stay small. Every id inside a chart is prefixed with the chart's
name: several SVGs inline in one page must not share clip-path ids.

Each chart takes the results JSON's cases (``digest.cases_of``), grouped per prompt: one
panel per prompt, the token budgets along x.
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TTFT_COLOUR = "#3b6ea8"
DECODE_COLOUR = "#9cc3e6"
FAILED_EDGE = "#c0392b"
BUDGET_COLOUR = "#e67e22"
BREAKER_COLOUR = "#c0392b"
BASELINE_COLOUR = "#222222"
FLOOR_COLOUR = "#2e8b57"
SERIES = ("#3b6ea8", "#e67e22", "#2e8b57", "#8e44ad", "#c0392b", "#7f8c8d", "#b8860b", "#17becf")
SLOWEST_GAPS = 40  # gaps above the 95th percentile drawn per case, slowest first
OFF_SCALE = 3.0  # a limit more than 3x the tallest bar is named at the top instead of squashing the bars

Case = Mapping[str, Any]


def by_prompt(cases: Sequence[Case]) -> list[tuple[str, list[Case]]]:
    """The cases grouped per prompt (in measured order), each group by token budget."""
    groups: dict[str, list[Case]] = {}
    for c in cases:
        groups.setdefault(c["prompt"], []).append(c)
    return [(p, sorted(cs, key=lambda c: c["new_tokens"])) for p, cs in groups.items()]


def title(group: Sequence[Case]) -> str:
    c = group[0]
    return f"{c['prompt']} ({c['prompt_tokens']}-token prompt)"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def matplotlib_ticker() -> Any:
    import matplotlib.ticker

    return matplotlib.ticker


RC = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
}


def prefix_ids(markup: str, prefix: str) -> str:
    """Every id in ``markup``, and every reference to one, prefixed: several SVGs (or several
    devices' sections) in one page must not share clip-path ids."""
    markup = re.sub(r'\bid="', f'id="{prefix}-', markup)
    markup = re.sub(r"url\(#", f"url(#{prefix}-", markup)
    return re.sub(r'href="#', f'href="#{prefix}-', markup)


def _svg(fig: Any, name: str) -> str:
    """The figure as an inline <svg> element with its ids prefixed by ``name``."""
    plt = _pyplot()
    out = io.StringIO()
    try:
        fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    finally:
        plt.close(fig)
    text = out.getvalue()
    text = prefix_ids(text[text.index("<svg") :], name)  # inline: no XML declaration, no DOCTYPE
    return text.replace("<svg ", f'<svg class="npuperf-chart" data-chart="{name}" role="img" ', 1)


def _panels(n: int, height: float = 2.6) -> tuple[Any, list[Any]]:
    plt = _pyplot()
    cols = min(3, max(n, 1))
    rows = math.ceil(n / cols)
    with plt.rc_context(RC):
        fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, height * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _chart(name: str, groups: Sequence[tuple[str, list[Case]]], draw: Callable[[Any, list[Case]], None]) -> str:
    """One panel per prompt group, drawn by ``draw``; '' when there is nothing to draw."""
    if not groups:
        return ""
    plt = _pyplot()
    with plt.rc_context(RC):
        fig, axes = _panels(len(groups))
        try:
            for ax, (_, group) in zip(axes, groups, strict=True):
                draw(ax, group)
                ax.set_title(title(group))
        except Exception:
            plt.close(fig)  # pyplot keeps every open figure until closed
            raise
        return _svg(_figure_legend(fig, axes), name)


def _figure_legend(fig: Any, axes: Sequence[Any]) -> Any:
    """One legend above the panels, each label once; the layout tightened around it."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    if seen:
        fig.legend(list(seen.values()), list(seen.keys()), loc="upper center", ncol=min(len(seen), 5),
                   bbox_to_anchor=(0.5, 1.0), frameon=False)  # fmt: skip
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    else:
        fig.tight_layout()
    return fig


@dataclass(frozen=True)
class Limits:
    budget_ms: float
    breaker_ms: float


def _limit_lines(ax: Any, tallest: float, limits: Limits) -> None:
    """Draw the budget and the breaker; one far above the bars is named at the top instead."""
    top = tallest * 1.15
    off = []
    for value, label, colour, style in (
        (limits.budget_ms, f"{limits.budget_ms:g} ms budget", BUDGET_COLOUR, "--"),
        (limits.breaker_ms, f"{limits.breaker_ms:g} ms breaker", BREAKER_COLOUR, "-"),
    ):
        if value <= OFF_SCALE * tallest:
            ax.axhline(value, color=colour, linestyle=style, linewidth=1.2, label=label)
            top = max(top, value * 1.08)
        else:
            off.append(f"{label} \u2191 ({value / tallest:.0f}x the tallest bar)")
    if off:
        top = max(top, tallest * 1.45)  # room for the note above the bars
    ax.set_ylim(0, top)
    if off:
        ax.text(0.02, 0.98, "\n".join(off), transform=ax.transAxes, va="top", ha="left", fontsize=7, color="#555555")


def latency_bars(cases: Sequence[Case], limits: Limits) -> str:
    """Per prompt: median latency per token budget as TTFT + the rest (decode, detokenize), the p90
    as a whisker, the accepted baseline's median as a black tick, the budget and breaker as lines."""

    def draw(ax: Any, group: list[Case]) -> None:
        xs = range(len(group))
        ttft = [c["summary"]["ttft_ms"]["median"] for c in group]
        median = [c["summary"]["latency_ms"]["median"] for c in group]
        p90 = [c["summary"]["latency_ms"]["p90"] for c in group]
        rest = [max(m - t, 0.0) for m, t in zip(median, ttft, strict=True)]
        edges = [FAILED_EDGE if c["outcome"] == "failed" else "none" for c in group]
        ax.bar(xs, ttft, color=TTFT_COLOUR, label="TTFT (median)", edgecolor=edges, linewidth=1.5)
        ax.bar(xs, rest, bottom=ttft, color=DECODE_COLOUR, label="decode and the rest", edgecolor=edges,
               linewidth=1.5)  # fmt: skip
        ax.errorbar(xs, median, yerr=[[0] * len(group), [p - m for p, m in zip(p90, median, strict=True)]],
                    fmt="none", ecolor="#444444", capsize=3, linewidth=0.8, label="p90")  # fmt: skip
        base = [((c.get("baseline") or {}).get("metrics") or {}).get("latency_ms") for c in group]
        bx = [x for x, b in zip(xs, base, strict=True) if b]
        by = [b["median"] for b in base if b]
        if bx:
            ax.scatter(bx, by, marker="_", s=500, linewidths=2.2, color=BASELINE_COLOUR, zorder=5,
                       label="baseline median")  # fmt: skip
        floors = [(x, (c.get("floor") or {}).get("latency_ms")) for x, c in zip(xs, group, strict=True)]
        floors = [(x, f) for x, f in floors if f]
        if floors:
            ax.scatter([x for x, _ in floors], [f for _, f in floors], marker="_", s=500, linewidths=2.2,
                       color=FLOOR_COLOUR, zorder=6, label="decode floor (no engine can be faster)")  # fmt: skip
        _limit_lines(ax, max([*p90, *by, *(f for _, f in floors), 1e-9]), limits)
        ax.set_xticks(list(xs), [str(c["new_tokens"]) for c in group])
        ax.set_xlabel("new tokens")
        ax.set_ylabel("latency ms")

    return _chart("latency", by_prompt(cases), draw)


def distributions(cases: Sequence[Case]) -> str:
    """Per prompt: every repetition's latency per token budget (box and the samples as dots)."""

    def draw(ax: Any, group: list[Case]) -> None:
        samples = [c["samples"]["latency_ms"] for c in group]
        ax.boxplot(samples, positions=list(range(len(group))), widths=0.5, showfliers=False,
                   medianprops={"color": TTFT_COLOUR})  # fmt: skip
        for x, values in enumerate(samples):
            n = len(values)
            jitter = [x + 0.3 * ((i + 0.5) / n - 0.5) for i in range(n)]
            ax.scatter(jitter, values, s=6, color="#555555", alpha=0.7, zorder=3,
                       label="one repetition" if x == 0 else None)  # fmt: skip
        ax.set_xticks(list(range(len(group))), [str(c["new_tokens"]) for c in group])
        ax.set_xlabel("new tokens")
        ax.set_ylabel("latency ms")

    return _chart("samples", by_prompt(cases), draw)


def token_gaps(case: Case) -> list[float]:
    """Every gap between consecutive tokens, over the case's repetitions (ms)."""
    out = []
    for times in case.get("token_ms") or []:
        out += [b - a for a, b in itertools.pairwise(times)]
    return out


def gaps(cases: Sequence[Case]) -> str:
    """Per prompt: the inter-token gaps per token budget (box 5-95%, the slower ones as dots), log scale."""
    groups = [(p, [c for c in g if token_gaps(c)]) for p, g in by_prompt(cases)]
    groups = [(p, g) for p, g in groups if g]

    def draw(ax: Any, group: list[Case]) -> None:
        data = [[max(v, 1e-3) for v in token_gaps(c)] for c in group]
        ax.boxplot(data, positions=list(range(len(group))), widths=0.5, whis=(5, 95), showfliers=False,
                   medianprops={"color": TTFT_COLOUR})  # fmt: skip
        for x, gaps_ms in enumerate(data):
            cut = sorted(gaps_ms)[int(0.95 * (len(gaps_ms) - 1))]
            slow = sorted(v for v in gaps_ms if v > cut)[-SLOWEST_GAPS:]  # a page of dots, not thousands
            ax.scatter([x] * len(slow), slow, s=5, color=FAILED_EDGE, zorder=3,
                       label="slowest 5% of gaps (up to 40)" if slow else None)  # fmt: skip
        ax.set_yscale("log")
        plain = matplotlib_ticker().FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.set_xticks(list(range(len(group))), [str(c["new_tokens"]) for c in group])
        ax.set_xlabel("new tokens")
        ax.set_ylabel("gap between tokens ms")

    return _chart("gaps", groups, draw)


@dataclass(frozen=True)
class Series:
    """One case's median latency over runs, with its accepted baseline."""

    case_id: str
    prompt: str
    prompt_tokens: int
    new_tokens: int
    points: tuple[tuple[int, float], ...]  # (run id, median ms)
    baseline_ms: float | None


def trend(series: Sequence[Series], marks: Mapping[int, str], accepted: Sequence[int]) -> str:
    """Per prompt: each case's median latency over the runs (one line per token budget), its
    accepted baseline dashed in the same colour; provenance changes as grey lines (numbered, named
    below the chart), the runs a baseline was accepted on as dotted green lines."""
    groups: dict[str, list[Series]] = {}
    for s in series:
        groups.setdefault(s.prompt, []).append(s)
    if not groups or all(len(s.points) < 2 for s in series):
        return ""
    plt = _pyplot()
    with plt.rc_context(RC):
        fig, axes = _panels(len(groups), height=2.4)
        for ax, group in zip(axes, groups.values(), strict=True):
            for i, s in enumerate(sorted(group, key=lambda s: s.new_tokens)):
                colour = SERIES[i % len(SERIES)]
                ax.plot([r for r, _ in s.points], [v for _, v in s.points], marker="o", markersize=3,
                        color=colour, label=f"{s.new_tokens} tokens")  # fmt: skip
                if s.baseline_ms:
                    ax.axhline(s.baseline_ms, color=colour, linestyle=":", linewidth=1)
            for run_id in marks:
                ax.axvline(run_id, color="#888888", linestyle="--", linewidth=0.8)
            for run_id in accepted:
                ax.axvline(run_id, color="#2e8b57", linestyle=":", linewidth=1.4)
            ax.set_title(f"{group[0].prompt} ({group[0].prompt_tokens}-token prompt)")
            ax.set_xlabel("run")
            ax.set_ylabel("median latency ms")
            ax.xaxis.get_major_locator().set_params(integer=True)
        return _svg(_figure_legend(fig, axes), "trend")
