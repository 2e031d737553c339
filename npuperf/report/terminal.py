"""The terminal summary table, built as lines; the plugin writes them."""

from __future__ import annotations

from collections.abc import Sequence

from npuperf.judge.verdict import Outcome
from npuperf.models.floor import Floor
from npuperf.report import CaseRecord, planner, row_values

COLUMNS = (
    ("case", "case"),
    ("prompt", "prompt"),
    ("tokens", "tokens"),
    ("median", "median ms"),
    ("p90", "p90 ms"),
    ("max", "max ms"),
    ("ttft", "TTFT ms"),
    ("tpot", "TPOT ms"),
    ("decode", "decode tok/s"),
    ("prefill", "prefill tok/s"),
    ("budget", "budget ms"),
    ("delta", "vs baseline"),
    ("verdict", "verdict"),
)


def _aligned(header: list[str], rows: list[list[str]], text_last: bool = False) -> list[str]:
    """Header and rows in columns: the first left-aligned, numbers right-aligned so magnitudes
    line up; with ``text_last`` the last column is text, left as it is."""
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i]) for i in range(len(header))]
    numeric = len(header) - (1 if text_last else 0)

    def line(c: list[str]) -> str:
        cells = [c[0].ljust(widths[0]), *(v.rjust(w) for v, w in zip(c[1:numeric], widths[1:numeric], strict=True))]
        return "  ".join(cells + c[numeric:])

    return [line(c) for c in (header, *rows)]


def case_table(records: Sequence[CaseRecord]) -> list[str]:
    """One header line, one line per case, columns aligned.

    Numeric columns are right-aligned so magnitudes line up.
    """
    rows = []
    for rec in records:
        values = row_values(rec)
        values["case"] = rec.case_id
        rows.append([values[key] for key, _ in COLUMNS])
    return _aligned([title for _, title in COLUMNS], rows, text_last=True)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def phase_table(records: Sequence[CaseRecord]) -> list[str]:
    """Where each case's latency went (median ms per phase), its token gaps, CPU and memory.

    Phases are the engine's (docs/metrics.md); they add up to the latency. ITL: every gap
    between consecutive tokens of every repetition; 'gaps' says how many the p99 rests on.
    """
    if not records:
        return []
    names = list(dict.fromkeys(k for rec in records for k in rec.result.phases))
    header = [
        "case",
        *(f"{n} ms" for n in names),
        "ITL p50",
        "p90",
        "p99",
        "worst gap",
        "gaps",
        "CPU cores",
        "decode CPU",
        "peak MB",
    ]
    floors = any(rec.floor_ms is not None for rec in records)
    header += ["floor ms", "efficiency"] if floors else []
    rows = []
    for rec in records:
        r = rec.result
        gaps = r.itl
        rows.append(
            [
                rec.case_id,
                *(_ms(r.phases.get(n)) for n in names),
                *(
                    (_ms(gaps.p50), _ms(gaps.p90), _ms(gaps.p99), _ms(gaps.worst), str(gaps.count))
                    if gaps
                    else ("-",) * 5
                ),
                "-" if r.cpu_cores is None else f"{r.cpu_cores:.2f}",
                "-" if r.decode_cpu_cores is None else f"{r.decode_cpu_cores:.2f}",
                "-" if r.peak_rss_mb is None else f"{r.peak_rss_mb:.0f}",
                *((_ms(rec.floor_ms), "-" if rec.efficiency is None else f"{rec.efficiency:.0%}") if floors else ()),
            ]
        )
    return _aligned(header, rows)


def points(records: Sequence[CaseRecord]) -> list[planner.Point]:
    """The planner's points from the suite's records (as planner.points_from_results does from the JSON)."""
    out = []
    for rec in records:
        r = rec.result
        lo, hi = r.tokens_generated
        out.append(
            planner.Point(
                case_id=rec.case_id,
                prompt=r.case.prompt.name,
                prompt_tokens=r.case.prompt.tokens,
                tokens=(lo + hi) / 2,
                latency_ms=r.latency.median,
                ttft_ms=r.ttft.median,
                tpot_ms=None if r.tpot is None else r.tpot.median,
            )
        )
    return out


def fit_lines(
    records: Sequence[CaseRecord],
    target_ms: float,
    breaker_ms: float,
    floor: Floor | None = None,
    context: int | None = None,
) -> list[str]:
    """Per prompt, how many new tokens fit the latency budget (npuperf.report.planner's fit), and
    how many the decode floor would allow at best."""
    lines = []
    for p in planner.plan(points(records), target_ms, breaker_ms, floor, context):
        how = (
            f"{p.formula()}, fit over {p.cases} cases, RMS error {p.rms_ms:.2f} ms"
            if p.fitted
            else f"{p.formula()}, from its one case"
        )
        beyond = f", extrapolated beyond {p.largest_measured}" if p.extrapolated else ""
        physical = "" if p.floor_max is None else f"; the decode floor allows at most {p.floor_max}"
        if p.fit_said is not None:
            physical += f" (capped by {p.capped_by}: the fit alone said {p.fit_said})"
        lines.append(
            f"{p.prompt_tokens:>5}-token prompt ({p.prompt}): {p.fits_target} new tokens would fit "
            f"{target_ms:g} ms, {p.fits_breaker} the {breaker_ms:g} ms breaker ({how}{beyond}){physical}"
        )
    return lines


def over_tolerance_lines(records: Sequence[CaseRecord]) -> list[str]:
    """Comparisons above their threshold that did not fail, and why: worth a look.

    (INCONCLUSIVE, under the absolute floor, or not confirmed on re-run.)
    """
    lines = []
    for rec in records:
        for reg in rec.verdict.regressions:
            if reg.failed or reg.outcome is Outcome.NO_BASELINE:
                continue
            if reg.ratio > 1 + reg.threshold or "not confirmed" in reg.message:
                lines.append(f"{reg.outcome.value.upper():>12}  {reg.message}")
    return lines
