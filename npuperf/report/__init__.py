"""Presenting results: terminal lines, pytest-html cells and charts, JSON. Decides nothing."""

from __future__ import annotations

from dataclasses import dataclass

from npuperf.judge.verdict import CaseVerdict, Outcome
from npuperf.measure import CaseResult


@dataclass(frozen=True)
class CaseRecord:
    """A measured case with its verdict: what every report renders."""

    result: CaseResult
    verdict: CaseVerdict
    budget_ms: float
    # cores other processes kept busy while the case was measured (None: not measured)
    background_cores: float | None = None
    # when the accepted baseline of this case was recorded (None: no baseline)
    baseline_recorded_at: str | None = None
    # the decode floor (npuperf.floor) at this case's contexts, and of the whole request (None: unknown)
    floor_ms: float | None = None
    latency_floor_ms: float | None = None
    # the floor's arithmetic when the budget is below it: no engine on this memory can meet it
    infeasible: str = ""

    @property
    def efficiency(self) -> float | None:
        """The decode floor / the measured TPOT (1.0: at the physical limit)."""
        tpot = self.result.tpot
        if self.floor_ms is None or tpot is None or tpot.median <= 0:
            return None
        return self.floor_ms / tpot.median

    @property
    def case_id(self) -> str:
        return self.result.case.id


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def baseline_delta(record: CaseRecord) -> str:
    reg = record.verdict.regression
    if reg is None or reg.outcome is Outcome.NO_BASELINE or not reg.baseline_median:
        return "no baseline"  # also when --require-baseline failed the case for it
    return f"{(reg.ratio - 1) * 100:+.1f}%"


def row_values(record: CaseRecord) -> dict[str, str]:
    """The formatted figures of one case, keyed by column."""
    r = record.result
    lo, hi = r.tokens_generated
    return {
        "prompt": str(r.case.prompt.tokens),
        "tokens": str(lo) if lo == hi else f"{lo}-{hi}",
        "median": fmt_ms(r.latency.median),
        "p90": fmt_ms(r.latency.p90),
        "max": fmt_ms(r.latency.max),
        "ttft": fmt_ms(r.ttft.median),
        "tpot": fmt_ms(None if r.tpot is None else r.tpot.median),
        "decode": fmt_rate(r.decode_tps),
        "prefill": fmt_rate(r.prefill_tps),
        "budget": f"{record.budget_ms:g}",
        "delta": baseline_delta(record),
        "verdict": record.verdict.outcome.value,
    }


PROPERTY_PREFIX = "npuperf."


def properties(record: CaseRecord) -> list[tuple[str, str]]:
    """A case's figures as test properties: JUnit XML writes them on its testcase, and the HTML
    report's result table shows them (names carry their units; numbers unformatted)."""
    r = record.result
    lo, hi = r.tokens_generated
    reg = record.verdict.regression
    values: list[tuple[str, object]] = [
        ("case", record.case_id),
        ("prompt", r.case.prompt.name),
        ("prompt_tokens", r.case.prompt.tokens),
        ("new_tokens", r.case.new_tokens),
        ("tokens_generated", lo if lo == hi else f"{lo}-{hi}"),
        ("latency_median_ms", round(r.latency.median, 4)),
        ("latency_p90_ms", round(r.latency.p90, 4)),
        ("latency_max_ms", round(r.latency.max, 4)),
        ("ttft_median_ms", round(r.ttft.median, 4)),
    ]
    if r.tpot is not None:
        values.append(("tpot_median_ms", round(r.tpot.median, 4)))
    if r.decode_tps is not None:
        values.append(("decode_tokens_per_s", round(r.decode_tps, 2)))
    values.append(("budget_ms", record.budget_ms))
    if reg is not None and reg.outcome is not Outcome.NO_BASELINE and reg.baseline_median:
        values += [
            ("baseline_median_ms", round(reg.baseline_median, 4)),
            ("vs_baseline_pct", round((reg.ratio - 1) * 100, 2)),
        ]
    values.append(("verdict", record.verdict.outcome.value))
    return [(PROPERTY_PREFIX + name, str(value)) for name, value in values]


@dataclass(frozen=True)
class Line:
    """One line of the run's summary: the terminal writes it, the HTML report shows it.

    ``warn`` lines stand out (yellow in the terminal); ``table`` lines are columns that
    must keep their spacing (a <pre> block in HTML).
    """

    text: str
    warn: bool = False
    table: bool = False
